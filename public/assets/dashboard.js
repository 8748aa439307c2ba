// The owner's dashboard: login, figures, leads, a transcript and the hand-off, where each
// field of a lead came from, possible duplicates and their merge, and what the assistant
// could not read. Everything people wrote is put on the page as text (textContent), never
// as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = null;
let current = null; // the lead shown in the detail panel
const CLASS_NAMES = { caliente: "Caliente", tibio: "Tibio", frio: "Frío" };
const CHANNEL_NAMES = { web: "Web", whatsapp: "WhatsApp", instagram: "Instagram" };
const FIELD_NAMES = [
  ["name", "Nombre"], ["phone", "Teléfono"], ["email", "Correo"],
  ["service", "Servicio"], ["area", "Comuna"], ["urgency", "Urgencia"],
];
const ORIGIN_NAMES = {
  typed: "escrito por la persona",
  asked: "respuesta a la pregunta",
  correction: "corrección",
  channel: "número de WhatsApp",
  model: "sugerido por el modelo",
};
const QUOTE_CHARS = 240; // a longer message is quoted this far (the transcript has it all)
const UNSUPPORTED_PAGE = 20;
const WHEN = new Intl.DateTimeFormat("es-CL", { dateStyle: "short", timeStyle: "short" });
let unsupportedBefore = null; // the cursor of the next page of unread messages

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  if (csrf && options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) { showLogin(); throw new Error("sesión terminada"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || "error");
  return body;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

function when(iso) {
  const date = new Date(iso);
  return iso && !Number.isNaN(date.getTime()) ? WHEN.format(date) : "";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null || text === "" ? "—" : String(text);
  row.appendChild(td);
  return td;
}

function showLogin() {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("password").focus();
}

async function showApp() {
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  await Promise.all([loadStats(), loadLeads(), loadUnsupported()]);
}

async function loadStats() {
  const s = (await api("/api/leads/estadisticas")).data;
  $("stat-total").textContent = s.total;
  for (const k of ["caliente", "tibio", "frio"]) $("stat-" + k).textContent = s.porClase[k];
  const body = $("channels").tBodies[0];
  body.replaceChildren();
  for (const [channel, byClass] of Object.entries(s.canalPorClase)) {
    const row = body.insertRow();
    cell(row, CHANNEL_NAMES[channel] || channel);
    for (const k of ["caliente", "tibio", "frio"]) cell(row, byClass[k] || 0);
    const funnel = s.embudo[channel] || {};
    cell(row, funnel.contacted || 0);
    cell(row, funnel.won || 0);
  }
  const totals = { new: 0, contacted: 0, won: 0 };
  for (const f of Object.values(s.embudo)) for (const k in totals) totals[k] += f[k] || 0;
  const funnel = $("funnel");
  funnel.replaceChildren();
  for (const [key, label] of [["new", "Leads"], ["contacted", "Contactados"], ["won", "Ganados"]]) {
    const step = document.createElement("div");
    step.textContent = label + ": " + totals[key];
    step.style.width = Math.max(8, Math.round((totals[key] / Math.max(1, totals.new)) * 100)) + "%";
    funnel.appendChild(step);
  }
  const bars = $("per-day");
  bars.replaceChildren();
  const top = Math.max(1, ...s.porDia.map((d) => d.leads));
  for (const d of s.porDia) {
    const bar = document.createElement("div");
    bar.title = d.day + ": " + d.leads;
    bar.style.height = Math.round((d.leads / top) * 100) + "%";
    bars.appendChild(bar);
  }
}

async function loadLeads() {
  const params = new URLSearchParams();
  if ($("f-estado").value) params.set("estado", $("f-estado").value);
  if ($("f-canal").value) params.set("canal", $("f-canal").value);
  if ($("f-q").value.trim()) params.set("q", $("f-q").value.trim());
  $("export").href = "/api/leads/export.csv?" + params;
  const { data } = await api("/api/leads?" + params);
  const body = $("leads").tBodies[0];
  body.replaceChildren();
  for (const lead of data) {
    const row = body.insertRow();
    row.dataset.id = lead.id;
    cell(row, lead.name);
    cell(row, lead.phone);
    cell(row, lead.service);
    cell(row, lead.area);
    const tag = document.createElement("span");
    tag.className = "tag tag--" + lead.classification;
    tag.textContent = CLASS_NAMES[lead.classification] || lead.classification;
    cell(row, "").replaceChildren(tag);
    cell(row, CHANNEL_NAMES[lead.channel] || lead.channel);
    cell(row, lead.status);
    row.addEventListener("click", async () => {
      await openLead(lead.id);
      $("detail").scrollIntoView({ block: "start" });
    });
  }
}

async function loadUnsupported(more = false) {
  const params = new URLSearchParams({ limit: UNSUPPORTED_PAGE });
  if (more && unsupportedBefore != null) params.set("before", unsupportedBefore);
  const body = await api("/api/admin/unsupported?" + params);
  const list = $("unsupported");
  if (!more) list.replaceChildren();
  for (const event of body.data) list.appendChild(unsupportedItem(event));
  unsupportedBefore = body.before;
  $("unsupported-more").hidden = body.before == null;
  $("unsupported-empty").hidden = list.children.length > 0;
}

function unsupportedItem(event) {
  const item = el("li");
  item.title = event.kind;
  item.appendChild(el("span", "reason", event.reason));
  const time = el("time", "", when(event.created_at));
  time.dateTime = event.created_at;
  const parts = [
    CHANNEL_NAMES[event.channel] || event.channel,
    event.sender ? "de " + event.sender : null,
    time,
    event.in_conversation ? "quedó en la conversación" : null,
  ];
  const line = el("span", "meta");
  for (const part of parts.filter(Boolean)) {
    if (line.childNodes.length) line.append(" · ");
    line.append(part);
  }
  item.appendChild(line);
  return item;
}

async function openLead(id) {
  const [lead, identity] = await Promise.all([
    api("/api/leads/" + id).then((body) => body.data),
    api("/api/leads/" + id + "/identidad").then((body) => body.data),
  ]);
  current = lead;
  $("detail").hidden = false;
  $("detail-title").textContent = (lead.name || "Lead #" + lead.id) + " — " +
    (CLASS_NAMES[lead.classification] || lead.classification);
  $("detail-reasons").textContent = (lead.reasons || []).join(" · ");
  const digits = (lead.phone || "").replace(/\D/g, "");
  $("detail-wa").hidden = digits.length < 8;
  $("detail-wa").href = "https://wa.me/" + digits;
  $("detail-status").value = lead.status;
  showFields(lead, identity.origen);
  showMatches(identity.posibleMismaPersona);
  showMerges(identity.uniones);
  const list = $("transcript");
  list.replaceChildren();
  for (const m of lead.mensajes) {
    const item = document.createElement("li");
    item.className = m.source === "human" ? "human" : m.role;
    item.textContent = m.content;
    list.appendChild(item);
  }
  const conversation = lead.conversaciones[lead.conversaciones.length - 1];
  const paused = Boolean(conversation && conversation.paused_at);
  $("pause").hidden = paused;
  $("resume").hidden = !paused;
}

function showFields(lead, origins) {
  const list = $("detail-fields");
  list.replaceChildren();
  for (const [field, label] of FIELD_NAMES) {
    const value = el("dd");
    value.dataset.field = field;
    value.appendChild(el("span", "value", lead[field] || "—"));
    if (lead[field] && origins[field]) value.appendChild(originLine(origins[field]));
    list.append(el("dt", "", label), value);
  }
}

// "escrito por la persona «me llamo Ana…» Web, 29-11-26 14:05"
function originLine(origin) {
  const line = el("span", "origin");
  line.appendChild(el("span", "how", ORIGIN_NAMES[origin.como] || origin.como));
  if (origin.texto) {
    const text = origin.texto;
    const quote = el("q", "", text.length > QUOTE_CHARS ? text.slice(0, QUOTE_CHARS) + "…" : text);
    line.append(" ", quote);
  }
  const where = [CHANNEL_NAMES[origin.canal] || origin.canal, when(origin.fecha)];
  if (where.some(Boolean)) {
    const time = el("time", "", where.filter(Boolean).join(", "));
    if (origin.fecha) time.dateTime = origin.fecha;
    line.append(" ", time);
  }
  return line;
}

// One line per other lead, even when both its phone and its e-mail match.
function showMatches(matches) {
  const byLead = new Map();
  for (const match of matches) {
    const same = "mismo " + match.coincide + ": " + match.valor;
    const seen = byLead.get(match.leadId);
    if (seen) seen.same.push(same);
    else byLead.set(match.leadId, { ...match, same: [same] });
  }
  const list = $("matches-list");
  list.replaceChildren();
  $("matches-status").textContent = "";
  $("detail-matches").hidden = byLead.size === 0;
  for (const match of byLead.values()) {
    const item = el("li");
    item.appendChild(el("span", "", match.texto + " — " + match.same.join(" · ")));
    const button = el("button", "", "Unir con este lead");
    button.type = "button";
    button.addEventListener("click", () => mergeInto(current, match));
    item.appendChild(button);
    list.appendChild(item);
  }
}

async function mergeInto(lead, match) {
  const other = "#" + match.leadId + (match.nombre ? " (" + match.nombre + ")" : "");
  const question = "¿Unir el lead " + other + " con este (#" + lead.id + ")? Sus conversaciones" +
    " pasan a este lead, sus datos completan los que falten y el " + other +
    " deja de aparecer en la lista.";
  if (!confirm(question)) return;
  try {
    await api("/api/leads/" + lead.id + "/unir", {
      method: "POST", body: JSON.stringify({ con: match.leadId }),
    });
  } catch (error) {
    $("matches-status").textContent = "No se pudo unir: " + error.message;
    return;
  }
  await Promise.all([openLead(lead.id), loadLeads(), loadStats()]);
}

function showMerges(merges) {
  const list = $("merges-list");
  list.replaceChildren();
  $("detail-merges").hidden = merges.length === 0;
  for (const merge of merges) {
    const gone = merge.merged_lead || {};
    const who = [gone.name, gone.phone, gone.email, CHANNEL_NAMES[gone.channel] || gone.channel];
    const known = who.filter(Boolean).join(", ");
    list.appendChild(el("li", "", "Lead #" + merge.merged_id + (known ? " (" + known + ")" : "") +
      " — unido el " + when(merge.created_at) + " por " + merge.actor));
  }
}

function latestConversation() {
  return current && current.conversaciones[current.conversaciones.length - 1];
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("password").value }),
  });
  const body = await response.json();
  if (!response.ok) { $("login-error").textContent = body.error; return; }
  csrf = body.csrfToken;
  $("password").value = "";
  await showApp();
});

$("logout").addEventListener("click", async () => {
  try { await api("/api/auth/logout", { method: "POST" }); } catch (_) {}
  csrf = null;
  showLogin();
});

$("filters").addEventListener("submit", (event) => { event.preventDefault(); loadLeads(); });

$("detail-status").addEventListener("change", async () => {
  await api("/api/leads/" + current.id, {
    method: "PATCH", body: JSON.stringify({ seguimiento: $("detail-status").value }),
  });
  await Promise.all([loadLeads(), loadStats()]);
});

for (const [button, action] of [["pause", "pause"], ["resume", "resume"]]) {
  $(button).addEventListener("click", async () => {
    const conversation = latestConversation();
    if (!conversation) return;
    await api("/api/conversations/" + conversation.id + "/" + action, { method: "POST" });
    await openLead(current.id);
  });
}

$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const conversation = latestConversation();
  const text = $("reply").value.trim();
  if (!conversation || !text) return;
  await api("/api/conversations/" + conversation.id + "/reply", {
    method: "POST", body: JSON.stringify({ texto: text }),
  });
  $("reply").value = "";
  await openLead(current.id);
});

$("unsupported-more").addEventListener("click", async () => {
  const button = $("unsupported-more");
  button.disabled = true;
  try { await loadUnsupported(true); } finally { button.disabled = false; }
});

$("clear-sandbox").addEventListener("click", async () => {
  const status = $("sandbox-status");
  status.textContent = "Vaciando…";
  try {
    const { eliminadas } = await api("/api/simulate/sandbox", { method: "DELETE" });
    status.textContent = eliminadas === 1
      ? "Sandbox vaciado: 1 conversación de prueba eliminada."
      : "Sandbox vaciado: " + eliminadas + " conversaciones de prueba eliminadas.";
  } catch (error) {
    status.textContent = "No se pudo vaciar el sandbox: " + error.message;
  }
});

(async () => {
  try {
    const response = await fetch("/api/auth/session", { credentials: "same-origin" });
    if (!response.ok) { showLogin(); return; }
    csrf = (await response.json()).csrfToken;
    await showApp();
  } catch (_) { showLogin(); }
})();
