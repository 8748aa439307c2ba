// The owner's dashboard: login, figures, leads, a transcript and the hand-off. Everything
// people wrote is put on the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let csrf = null;
let current = null; // the lead shown in the detail panel
const CLASS_NAMES = { caliente: "Caliente", tibio: "Tibio", frio: "Frío" };
const CHANNEL_NAMES = { web: "Web", whatsapp: "WhatsApp", instagram: "Instagram" };

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  if (csrf && options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) { showLogin(); throw new Error("sesión terminada"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || "error");
  return body;
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
  await Promise.all([loadStats(), loadLeads()]);
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
    row.addEventListener("click", () => openLead(lead.id));
  }
}

async function openLead(id) {
  const lead = (await api("/api/leads/" + id)).data;
  current = lead;
  $("detail").hidden = false;
  $("detail-title").textContent = (lead.name || "Lead #" + lead.id) + " — " +
    (CLASS_NAMES[lead.classification] || lead.classification);
  $("detail-reasons").textContent = (lead.reasons || []).join(" · ");
  const digits = (lead.phone || "").replace(/\D/g, "");
  $("detail-wa").hidden = digits.length < 8;
  $("detail-wa").href = "https://wa.me/" + digits;
  $("detail-status").value = lead.status;
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

(async () => {
  try {
    const response = await fetch("/api/auth/session", { credentials: "same-origin" });
    if (!response.ok) { showLogin(); return; }
    csrf = (await response.json()).csrfToken;
    await showApp();
  } catch (_) { showLogin(); }
})();
