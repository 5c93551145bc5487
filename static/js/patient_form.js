// The patient form: warns at once when the answer "no opioids" contradicts the medication list
// (the server's medication screen names the opioids; the form refuses the same on save).
(function () {
  "use strict";
  const form = document.getElementById("patient-form");
  if (!form) return;

  const medications = form.elements.namedItem("current_medications");
  const note = document.getElementById("opioid-contradiction");
  let timer = null;
  let sequence = 0;

  function answer() {
    const checked = form.querySelector('input[name="takes_opioids"]:checked');
    return checked ? checked.value : "";
  }

  async function screen() {
    const mine = ++sequence;
    if (answer() !== "no" || !medications.value.trim()) {
      note.hidden = true;
      return;
    }
    let response;
    try {
      response = await fetch(form.dataset.screenUrl, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-CSRFToken": form.elements.namedItem("csrfmiddlewaretoken").value,
        },
        body: JSON.stringify({ medications: medications.value }),
        credentials: "same-origin",
      });
    } catch (error) {
      return; // offline: the server checks again on save
    }
    if (mine !== sequence || !response.ok) return;
    const data = await response.json();
    note.textContent = data.contradiction;
    note.hidden = !data.contradiction;
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(screen, 300);
  }

  medications.addEventListener("input", later);
  form.addEventListener("change", (event) => {
    if (event.target.name === "takes_opioids") screen();
  });
  screen();
})();
