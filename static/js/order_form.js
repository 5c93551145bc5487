// The order form's schedule builder and live dose check. The server runs the same rules again
// on submit; this only shows them while the prescriber types. The server's refusal of a submit
// (#acknowledge-refusal) is never redrawn here: it stays until the next submit.
(function () {
  "use strict";
  const form = document.getElementById("order-form");
  if (!form) return;

  const field = (name) => form.elements.namedItem(name);
  const STEP = /^(\d{1,4}(?:\.\d{1,3})?)\s*(?:mg)?\s*(?:x|×|\*|for)\s*(\d{1,4})\s*(?:days?|d)?$/i;
  const concentrations = JSON.parse(document.getElementById("concentrations").textContent);
  const budLimits = JSON.parse(document.getElementById("bud-limits").textContent);
  let timer = null;
  let sequence = 0;
  // A schedule changed and the quantity was cleared: the answer to the latest check fills it
  // (a check that a newer one overtook is dropped, and the newer one fills instead).
  let filling = false;

  function parseSteps(text) {
    const parts = text.split(/[,;\n]+/).map((part) => part.trim()).filter(Boolean);
    const steps = [];
    for (const part of parts) {
      const match = STEP.exec(part);
      if (!match) return null;
      steps.push({ dose_mg: match[1], days: Number(match[2]) });
    }
    return steps;
  }

  function formatNumber(value) {
    return String(Number(value.toFixed(3)));
  }

  // Start, start + step, ... up to the target; each step for "days per step", the target for
  // "days at target".
  function buildSteps() {
    const read = (id) => Number(document.getElementById(id).value.trim());
    const [start, step, days, target, hold] = ["b-start", "b-step", "b-days", "b-target", "b-hold"].map(read);
    const error = document.getElementById("builder-error");
    error.textContent = "";
    if (![start, step, days, target, hold].every(Number.isFinite) || start <= 0 || target < start ||
        days < 1 || hold < 1 || (target > start && step <= 0)) {
      error.textContent = "Enter a start dose above 0, a target not below it, a step above 0 and days of at least 1.";
      return;
    }
    const doses = [];
    for (let dose = start; dose < target - 1e-9 && doses.length < 11; dose += step) doses.push(dose);
    doses.push(target);
    field("steps").value = doses
      .map((dose, i) => `${formatNumber(dose)} x ${i === doses.length - 1 ? hold : days}`)
      .join(", ");
    check(true);
  }

  // The beyond-use limit of the product chosen: the days' supply cannot be longer.
  function showBudLimit() {
    const byAmount = budLimits[field("dosage_form").value] || {};
    const texts = field("dosage_form").value === "capsule"
      ? [...new Set(Object.values(byAmount))]
      : [byAmount[field("concentration_mg_per_ml").value]].filter(Boolean);
    document.getElementById("bud-limit").textContent = texts.length
      ? `Beyond-use limit: ${texts.join(" or ")}; the days' supply cannot be longer.`
      : "";
  }

  function showConcentrations() {
    const select = field("concentration_mg_per_ml");
    const made = concentrations[field("dosage_form").value] || [];
    const group = document.getElementById("concentration-group");
    group.hidden = made.length === 0;
    const current = select.value;
    for (const option of select.options) {
      option.hidden = option.value !== "" && !made.includes(option.value);
    }
    if (!made.includes(current)) select.value = made.length ? made[0] : "";
  }

  function renderSteps(steps) {
    const table = document.getElementById("steps-preview");
    const body = table.querySelector("tbody");
    body.replaceChildren();
    (steps || []).forEach((step, i) => {
      const row = body.insertRow();
      [String(i + 1), `${step.dose_mg} mg`, String(step.days)].forEach((text) => {
        row.insertCell().textContent = text;
      });
    });
    table.hidden = !steps || steps.length === 0;
  }

  function clearMessages() {
    form.querySelectorAll(".live-finding").forEach((node) => node.remove());
  }

  function messageUnder(name, finding) {
    const input = field(name);
    const target = input && (input.length && !input.tagName ? input[0] : input);
    if (!target || !target.parentNode) return false;
    const note = document.createElement("div");
    note.className = `live-finding small mt-1 ${finding.severity === "error" ? "text-danger" : "text-warning-emphasis"}`;
    note.textContent = finding.message;
    target.closest(".mb-3, .form-group, div").appendChild(note);
    return true;
  }

  function renderFindings(findings) {
    clearMessages();
    const panel = document.getElementById("findings");
    panel.replaceChildren();
    if (findings.length === 0) {
      const ok = document.createElement("p");
      ok.className = "text-success small mb-0";
      ok.textContent = "No problems found.";
      panel.appendChild(ok);
    }
    for (const finding of findings) {
      const item = document.createElement("div");
      item.className = `alert ${finding.severity === "error" ? "alert-danger" : "alert-warning"} py-2 small mb-2`;
      item.dataset.code = finding.code;
      item.dataset.field = finding.field;
      // Name the field the finding is about, unless its message already starts with it.
      const label = finding.field_label || finding.field;
      if (label && !finding.message.startsWith(label)) {
        const about = document.createElement("strong");
        about.textContent = `${label}: `;
        item.appendChild(about);
      }
      item.append(finding.message);
      const source = document.createElement("div");
      source.className = "text-body-secondary";
      source.textContent = `Source: ${finding.source}`;
      item.appendChild(source);
      panel.appendChild(item);
      messageUnder(finding.field.split(".")[0], finding);
    }
    renderAcknowledgements(findings.filter((finding) => finding.severity === "warning"));
  }

  // One tick per warning; ticks already given stay ticked while the warning stays. Duplicate
  // therapy and an early refill also need a reason.
  function renderAcknowledgements(warnings) {
    const box = document.getElementById("acknowledgements");
    if (!box) return; // a draft: the prescriber confirms the warnings when signing
    const ticked = new Set(
      Array.from(form.querySelectorAll('input[name="acknowledge"]:checked')).map((input) => input.value)
    );
    box.replaceChildren();
    document.getElementById("reason-group").hidden = !warnings.some((warning) => warning.reason_required);
    if (warnings.length === 0) return;
    const heading = document.createElement("p");
    heading.className = "fw-semibold small mb-1";
    heading.textContent = "I have reviewed:";
    box.appendChild(heading);
    warnings.forEach((warning, i) => {
      const key = warning.key || `${warning.code}@${warning.field}`;
      const wrapper = document.createElement("div");
      wrapper.className = "form-check";
      const input = document.createElement("input");
      Object.assign(input, { type: "checkbox", name: "acknowledge", value: key, id: `ack-${i}`, className: "form-check-input" });
      input.checked = ticked.has(key);
      const label = document.createElement("label");
      const text = warning.field_label ? `${warning.field_label}: ${warning.message}` : warning.message;
      Object.assign(label, { htmlFor: `ack-${i}`, className: "form-check-label small", textContent: text });
      wrapper.append(input, label);
      box.appendChild(wrapper);
    });
  }

  function payload(steps) {
    const value = (name) => field(name).value.trim();
    const codes = value("diagnosis_codes").split(/[,;\s]+/).filter(Boolean);
    const body = {
      dosage_form: value("dosage_form"),
      steps,
      doses_per_day: value("doses_per_day") || null,
      quantity: value("quantity") || null,
      days_supply: value("days_supply") || null,
      refills: value("refills") || null,
      time_of_day: value("time_of_day"),
      patient_id: Number(form.dataset.patientId),
      diagnosis_codes: codes,
    };
    if (body.dosage_form !== "capsule") body.concentration_mg_per_ml = value("concentration_mg_per_ml") || null;
    // The clinic's staff name the prescriber who signs: the rules check that prescriber.
    const signer = field("signer");
    if (signer && signer.value) body.signer_id = Number(signer.value);
    return body;
  }

  async function check(fillQuantity) {
    const steps = parseSteps(field("steps").value);
    renderSteps(steps);
    if (!steps || steps.length === 0) return;
    if (fillQuantity) {
      field("days_supply").value = steps.reduce((sum, step) => sum + step.days, 0);
      field("quantity").value = "";
      filling = true; // until a check's answer fills it, even a later check's
    }
    const mine = ++sequence;
    let response;
    try {
      response = await fetch(form.dataset.checkUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": field("csrfmiddlewaretoken").value },
        body: JSON.stringify(payload(steps)),
        credentials: "same-origin",
      });
    } catch (error) {
      return; // offline: the server checks again on submit
    }
    if (mine !== sequence) return; // a newer check is on its way
    const data = await response.json();
    if (!response.ok) {
      renderFindings((data.errors || []).map((error) => ({
        code: "input", severity: "error", field: error.field, field_label: error.field, message: error.message,
        source: "this form",
      })));
      return;
    }
    // The answer holds for the quantity the schedule needs too: no rule but the quantity's own
    // reads the quantity, and it finds nothing wrong with the needed one (the server checks
    // again on submit; tests/orders/test_dose_check.py holds the two answers equal). So the
    // quantity is filled in from this answer, with no second request.
    if (filling && data.quantity_needed !== null) field("quantity").value = data.quantity_needed;
    filling = false;
    document.getElementById("directions").textContent = data.directions;
    document.getElementById("capsule-lines").textContent = data.capsule_lines.length > 1
      ? "Dispensed as " + data.capsule_lines.map((line) => `${line.quantity} × ${line.strength_mg} mg`).join(", ") + " capsules."
      : "";
    document.getElementById("refill-plan").textContent = data.refill_plan;
    renderFindings(data.findings);
  }

  // One check per pause in typing; a schedule change during the pause still refills the
  // quantity and days' supply, whatever was typed after it.
  let pendingFill = false;
  function later(fillQuantity) {
    clearTimeout(timer);
    pendingFill = pendingFill || fillQuantity;
    timer = setTimeout(() => {
      const fill = pendingFill;
      pendingFill = false;
      check(fill);
    }, 300);
  }

  const schedule = ["steps", "doses_per_day", "dosage_form", "concentration_mg_per_ml"];
  form.addEventListener("input", (event) => {
    if (!event.target.name || event.target.name === "acknowledge") return;
    later(schedule.includes(event.target.name));
  });
  form.addEventListener("change", (event) => {
    if (event.target.name === "dosage_form") showConcentrations();
    if (["dosage_form", "concentration_mg_per_ml"].includes(event.target.name)) showBudLimit();
    if (["dosage_form", "concentration_mg_per_ml", "time_of_day", "ship_to"].includes(event.target.name)) {
      later(schedule.includes(event.target.name));
    }
  });
  document.getElementById("b-build").addEventListener("click", buildSteps);
  document.getElementById("builder").hidden = false;
  showConcentrations();
  showBudLimit();
  if (field("steps").value.trim()) check(!field("quantity").value.trim());
})();
