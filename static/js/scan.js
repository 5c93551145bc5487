// Scanning lots at dispensing: a keyboard-wedge scanner types the code and Enter. Enter in a
// scan field moves to the next empty one; in the last one it sends the form.
(function () {
  "use strict";
  const fields = Array.from(document.querySelectorAll("input[data-scan]"));
  fields.forEach((input, index) => {
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      const next = fields.slice(index + 1).find((field) => !field.value.trim());
      if (next) {
        event.preventDefault();
        next.focus();
      }
    });
  });
})();
