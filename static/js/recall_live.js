// The recall's admin page follows its clinics' notices: while an email is unsent or a clinic has
// not confirmed that its patients were told, it asks the server for those two columns every few
// seconds and updates them in place (the page itself, with its patient lists, is not reloaded).
// The requests say they are the page's own ("X-Background-Poll"): they do not count as the
// person's activity, so an unattended page does not keep the session open.
(function () {
  "use strict";
  const table = document.getElementById("recall-notice-table");
  if (!table || !table.dataset.noticesUrl) return;
  const every = 1000 * Number(table.dataset.pollSeconds || 5);
  const summary = document.getElementById("recall-live");

  function show(state) {
    const row = table.querySelector(`tr[data-notice="${state.id}"]`);
    if (!row) return;
    row.querySelector('[data-field="email"]').textContent = state.email;
    row.querySelector('[data-field="confirmation"]').textContent = state.confirmation;
  }

  function poll() {
    fetch(table.dataset.noticesUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-Background-Poll": "1" },
    })
      .then((response) => {
        if (response.redirected) {
          // Signed out: the sign-in page answered. Show it, with the reason.
          window.location.reload();
          return null;
        }
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
        return response.json();
      })
      .then((answer) => {
        if (!answer) return;
        answer.notices.forEach(show);
        if (answer.live) {
          window.setTimeout(poll, every);
        } else if (summary) {
          summary.textContent =
            "Every notice is sent and every clinic has confirmed that its patients were told.";
        }
      })
      .catch(() => window.setTimeout(poll, 4 * every)); // the network or the server: later
  }

  window.setTimeout(poll, every);
})();
