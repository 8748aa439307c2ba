// What every part of the dashboard shares: the API call (session, CSRF, errors with their
// fields), building nodes as text (never HTML), the Spanish names of stored values, dates.

export const $ = (id) => document.getElementById(id);

export const CLASS_NAMES = { caliente: "Caliente", tibio: "Tibio", frio: "Frío" };
export const CLASS_ORDER = ["caliente", "tibio", "frio"];
export const CHANNEL_NAMES = { web: "Web", whatsapp: "WhatsApp", instagram: "Instagram" };
export const CHANNELS = ["web", "whatsapp", "instagram"];
export const STATUS_NAMES = {
  new: "Nuevo", contacted: "Contactado", won: "Ganado", lost: "Perdido",
};

const WHEN = new Intl.DateTimeFormat("es-CL", {
  day: "2-digit", month: "2-digit", year: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const TIME = new Intl.DateTimeFormat("es-CL", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const DAY = new Intl.DateTimeFormat("es-CL", { day: "numeric", month: "short" });

export class ApiError extends Error {
  constructor(message, status, details) {
    super(message);
    this.status = status;
    this.details = details || []; // [{campo, mensaje}]
  }
}

const session = { csrf: null, onLoggedOut: () => {} };

export function setSession(csrf, onLoggedOut) {
  session.csrf = csrf;
  if (onLoggedOut) session.onLoggedOut = onLoggedOut;
}

export async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  if (session.csrf && options.method && options.method !== "GET") {
    headers["X-CSRF-Token"] = session.csrf;
  }
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) {
    session.onLoggedOut();
    throw new ApiError("sesión terminada", 401);
  }
  let body = {};
  try { body = await response.json(); } catch (_) { /* an empty or non-JSON answer */ }
  if (!response.ok) throw new ApiError(body.error || "error " + response.status, response.status, body.details);
  return body;
}

// Something changed leads (a status, a merge, a follow-up): the figures and lists reload.
export function leadsChanged() {
  document.dispatchEvent(new CustomEvent("dashboard:leads-changed"));
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

export function button(text, className = "btn btn--secondary") {
  const node = el("button", className, text);
  node.type = "button";
  return node;
}

function parse(iso) {
  if (!iso) return null;
  // The store writes UTC as "2026-11-29T14:05:00.123Z" or "2026-11-29 14:05:00".
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso.replace(" ", "T") + "Z");
  return Number.isNaN(date.getTime()) ? null : date;
}

export function when(iso) {
  const date = parse(iso);
  return date ? WHEN.format(date) : "";
}

export function timeOf(iso) {
  const date = parse(iso);
  return date ? TIME.format(date) : "";
}

export function dayOf(iso) {
  const date = parse(iso);
  return date ? DAY.format(date) : "";
}

// A <time> with the full date for machines and `format(iso)` for people.
export function timeElement(iso, format = when, className = "") {
  const node = el("time", className, format(iso) || "—");
  if (iso) node.dateTime = iso;
  return node;
}

export function classTag(classification) {
  return el("span", "tag tag--" + classification, CLASS_NAMES[classification] || classification);
}

export function say(node, text, kind = "") {
  node.textContent = text;
  node.classList.toggle("is-error", kind === "error");
  node.classList.toggle("is-ok", kind === "ok");
}

// Run `work` with `trigger` disabled; its error goes to `status` in Spanish.
export async function busy(trigger, status, work, failure = "No se pudo guardar") {
  trigger.disabled = true;
  try {
    return await work();
  } catch (error) {
    if (status) say(status, failure + ": " + error.message, "error");
    return undefined;
  } finally {
    trigger.disabled = false;
  }
}
