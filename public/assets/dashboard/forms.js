// A 400's `details: [{campo, mensaje}]` shown next to the fields they name: a control
// carries `data-campo` ("business.name", "services.0.price"); an error about a deeper path
// ("coverage.communes.3") goes to the nearest named one; the rest to the form's list.

let errorCount = 0;

export function clearErrors(form, general) {
  for (const node of form.querySelectorAll(".field-error[data-generated]")) node.remove();
  for (const node of form.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
    node.removeAttribute("aria-describedby");
  }
  if (general) { general.hidden = true; general.querySelector("ul").replaceChildren(); }
}

function controlFor(form, campo) {
  const parts = String(campo).split(".");
  for (let n = parts.length; n > 0; n -= 1) {
    const name = parts.slice(0, n).join(".");
    const control = [...form.querySelectorAll("[data-campo]")].find((c) => c.dataset.campo === name);
    if (control) return control;
  }
  return null;
}

export function showErrors(form, details, general) {
  clearErrors(form, general);
  let first = null;
  for (const { campo, mensaje } of details) {
    const control = controlFor(form, campo);
    if (!control) {
      if (general) {
        const item = document.createElement("li");
        item.textContent = campo + ": " + mensaje;
        general.querySelector("ul").appendChild(item);
        general.hidden = false;
      }
      continue;
    }
    const note = document.createElement("p");
    note.className = "field-error";
    note.dataset.generated = "";
    note.id = "field-error-" + (errorCount += 1);
    note.textContent = mensaje;
    (control.closest(".field") || control).insertAdjacentElement("afterend", note);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", note.id);
    first = first || control;
  }
  if (first) first.focus();
  else if (general && !general.hidden) general.focus();
}

// Lines of a textarea as a list, without blank ones.
export function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

// The button that submitted a form (Enter in a field: its first submit button).
export function submitter(event) {
  return event.submitter || event.target.querySelector("[type=submit]");
}
