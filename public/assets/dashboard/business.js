// The business's own config (business.json) as a form: the business, its services, the
// communes it covers, opening hours, prices and payment, and who gets the alerts; the whole
// file as JSON under "Avanzado". The server validates, names each wrong field (shown beside
// it) and puts a valid config in force at once. Keys the form does not show are kept.
import { $, api, el, button, say } from "./common.js";
import { clearErrors, showErrors, lines, submitter } from "./forms.js";

const WEEKDAYS = [
  ["monday", "Lunes"], ["tuesday", "Martes"], ["wednesday", "Miércoles"], ["thursday", "Jueves"],
  ["friday", "Viernes"], ["saturday", "Sábado"], ["sunday", "Domingo"],
];
const NUMBER = /^\d+(\.\d+)?$/;
let loaded = null; // the config as the server has it
const originals = new WeakMap(); // a service's row -> its object in `loaded` (keeps its keys)

export function initBusiness() {
  $("business-form").addEventListener("submit", saveForm);
  $("business-reset").addEventListener("click", () => { fill(loaded); say($("business-status"), ""); });
  $("service-add").addEventListener("click", () => {
    const row = serviceRow({});
    $("services").appendChild(row);
    renumber();
    row.querySelector("input").focus();
  });
  $("business-json-form").addEventListener("submit", saveJson);
}

export async function loadBusiness() {
  let data;
  try {
    data = (await api("/api/admin/business")).data;
  } catch (error) {
    $("business-unavailable").hidden = false;
    $("business-unavailable").textContent = "No se pudo leer la configuración: " + error.message;
    $("business-form").hidden = true;
    $("business-advanced").hidden = true;
    return;
  }
  loaded = data.config;
  $("business-path").textContent = data.path;
  fill(loaded);
}

const byCampo = (campo) => $("business-form").querySelector(`[data-campo="${campo}"]`);

function fill(config) {
  clearErrors($("business-form"), $("business-errors"));
  const business = config.business || {};
  for (const key of ["name", "shortName", "phone", "email"]) byCampo("business." + key).value = business[key] || "";
  $("services").replaceChildren(...(config.services || []).map(serviceRow));
  renumber();
  const coverage = config.coverage || {};
  byCampo("coverage.communes").value = (coverage.communes || []).join("\n");
  const schedule = config.schedule || {};
  byCampo("schedule.timezone").value = schedule.timezone || "";
  $("schedule-days").replaceChildren(...WEEKDAYS.map(([day, label]) => (
    dayRow(day, label, (schedule.workingDays || {})[day] || {}))));
  const pricing = config.pricing || {};
  byCampo("pricing.showPrices").checked = Boolean(pricing.showPrices);
  byCampo("pricing.message").value = pricing.message || "";
  byCampo("pricing.paymentMethods").value = (pricing.paymentMethods || []).join("\n");
  const notifications = config.notifications || {};
  byCampo("notifications.ownerEmail").value = notifications.ownerEmail || "";
  byCampo("notifications.ownerPhone").value = notifications.ownerPhone || "";
  byCampo("notifications.emailSubjectPrefix").value = notifications.emailSubjectPrefix || "";
  const notifyOn = notifications.notifyOn || ["caliente", "tibio"];
  for (const box of document.querySelectorAll("input[name=notify-on]")) box.checked = notifyOn.includes(box.value);
  $("business-json").value = JSON.stringify(config, null, 2);
  say($("business-json-status"), "");
}

function input(labelText, campo, value, { type = "text", multiline = false, className = "field" } = {}) {
  const label = el("label", className);
  label.appendChild(el("span", "field__label", labelText));
  const control = el(multiline ? "textarea" : "input");
  if (!multiline) control.type = type;
  else control.rows = 2;
  control.dataset.campo = campo;
  control.value = value == null ? "" : String(value);
  label.appendChild(control);
  return label;
}

function serviceRow(service) {
  const row = el("li", "service");
  originals.set(row, service);
  const box = el("fieldset", "service__box");
  box.appendChild(el("legend"));
  box.append(
    input("Nombre", "name", service.name),
    input("Precio", "price", service.price, { className: "field field--price" }),
    input("Descripción", "description", service.description, { multiline: true, className: "field field--wide" }),
  );
  const remove = button("Quitar", "btn btn--danger service__remove");
  remove.addEventListener("click", () => {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    if (next) next.querySelector("input").focus(); else $("service-add").focus();
  });
  box.appendChild(remove);
  row.appendChild(box);
  return row;
}

// Rows carry their index in their field names ("services.2.price"): after an add or a
// removal they are numbered again, as the list the server will see.
function renumber() {
  [...$("services").children].forEach((row, i) => {
    const name = row.querySelector("[data-campo$=name]").value.trim();
    row.querySelector("legend").textContent = "Servicio " + (i + 1) + (name ? ": " + name : "");
    for (const control of row.querySelectorAll("[data-campo]")) {
      control.dataset.campo = "services." + i + "." + control.dataset.campo.split(".").pop();
    }
    const remove = row.querySelector(".service__remove");
    remove.setAttribute("aria-label", "Quitar el servicio " + (i + 1) + (name ? " (" + name + ")" : ""));
  });
}

function dayRow(day, label, hours) {
  const row = el("div", "day-hours");
  const open = el("label", "check");
  const enabled = el("input");
  enabled.type = "checkbox";
  enabled.checked = Boolean(hours.enabled);
  enabled.dataset.campo = `schedule.workingDays.${day}.enabled`;
  open.append(enabled, " " + label);
  const from = input("Abre", `schedule.workingDays.${day}.open`, hours.open || "09:00", { type: "time" });
  const to = input("Cierra", `schedule.workingDays.${day}.close`, hours.close || "18:00", { type: "time" });
  const times = [from, to].map((field) => field.querySelector("input"));
  for (const time of times) time.setAttribute("aria-label", time.parentElement.textContent + " el " + label.toLowerCase());
  const closed = () => { for (const time of times) time.disabled = !enabled.checked; };
  enabled.addEventListener("change", closed);
  closed(); // a closed day's hours are kept, not edited
  row.append(open, from, to);
  return row;
}

function text(campo) {
  return byCampo(campo).value.trim();
}

// "" leaves an optional key out (or null when the file had it).
function optional(target, key, value) {
  if (value) target[key] = value;
  else if (key in target) target[key] = null;
}

function price(original, typed) {
  if (!typed) return undefined;
  return typeof original === "number" && NUMBER.test(typed) ? Number(typed) : typed;
}

function slug(name, taken) {
  const base = name.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
    .replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "servicio";
  let id = base;
  for (let n = 2; taken.has(id); n += 1) id = base + "-" + n;
  taken.add(id);
  return id;
}

function fromForm() {
  const config = structuredClone(loaded);
  config.business = config.business || {};
  config.business.name = text("business.name");
  for (const key of ["shortName", "phone", "email"]) optional(config.business, key, text("business." + key));
  const rows = [...$("services").children];
  const taken = new Set(rows.map((row) => originals.get(row).id).filter(Boolean));
  config.services = rows.map((row, i) => {
    const service = structuredClone(originals.get(row));
    service.name = text(`services.${i}.name`);
    service.description = text(`services.${i}.description`);
    const typed = price(service.price, text(`services.${i}.price`));
    if (typed === undefined) delete service.price; else service.price = typed;
    if (!service.id) service.id = slug(service.name, taken);
    return service;
  });
  config.coverage = { regions: [], ...config.coverage, communes: lines(byCampo("coverage.communes").value) };
  config.schedule = config.schedule || {};
  config.schedule.timezone = text("schedule.timezone");
  config.schedule.workingDays = config.schedule.workingDays || {};
  for (const [day] of WEEKDAYS) {
    config.schedule.workingDays[day] = {
      ...config.schedule.workingDays[day],
      enabled: byCampo(`schedule.workingDays.${day}.enabled`).checked,
      open: text(`schedule.workingDays.${day}.open`),
      close: text(`schedule.workingDays.${day}.close`),
    };
  }
  config.pricing = {
    ...config.pricing,
    showPrices: byCampo("pricing.showPrices").checked,
    message: text("pricing.message"),
    paymentMethods: lines(byCampo("pricing.paymentMethods").value),
  };
  const notifications = { ...config.notifications };
  optional(notifications, "ownerEmail", text("notifications.ownerEmail"));
  optional(notifications, "ownerPhone", text("notifications.ownerPhone"));
  notifications.emailSubjectPrefix = text("notifications.emailSubjectPrefix");
  notifications.notifyOn = [...document.querySelectorAll("input[name=notify-on]:checked")].map((b) => b.value);
  config.notifications = notifications;
  return config;
}

async function put(config, trigger, status, form, general) {
  say(status, "Guardando…");
  trigger.disabled = true;
  try {
    const { data } = await api("/api/admin/business", { method: "PUT", body: JSON.stringify(config) });
    say(status, "Guardado y en uso desde ahora (la versión anterior quedó en " + data.anterior + ").", "ok");
    return true;
  } catch (error) {
    say(status, "No se guardó: " + error.message, "error");
    if (error.details && error.details.length) showErrors(form, error.details, general);
    return false;
  } finally {
    trigger.disabled = false;
  }
}

async function saveForm(event) {
  event.preventDefault();
  const form = $("business-form");
  clearErrors(form, $("business-errors"));
  const status = $("business-status");
  if (await put(fromForm(), submitter(event), status, form, $("business-errors"))) {
    const message = status.textContent;
    await loadBusiness();
    say(status, message, "ok");
  }
}

async function saveJson(event) {
  event.preventDefault();
  const form = $("business-json-form");
  const status = $("business-json-status");
  clearErrors(form, $("business-json-errors"));
  let config;
  try {
    config = JSON.parse($("business-json").value);
  } catch (error) {
    showErrors(form, [{ campo: "(json)", mensaje: "No es JSON válido: " + error.message }]);
    return;
  }
  if (await put(config, submitter(event), status, form, $("business-json-errors"))) {
    const message = status.textContent;
    await loadBusiness();
    say(status, message, "ok");
  }
}
