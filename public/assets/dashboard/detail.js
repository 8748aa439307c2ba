// One lead: its reasons and fields, status and notes (editable), its follow-ups, and the
// whole conversation, newest message in view, with the hand-off (pause, reply, resume).
import {
  $, api, el, say, busy, when, CHANNEL_NAMES, CLASS_NAMES, STATUS_NAMES, leadsChanged,
} from "./common.js";
import { submitter } from "./forms.js";
import { showIdentity } from "./identity.js";
import { leadHistory, sendNow } from "./followups.js";

const AUTHORS = { user: "Cliente", assistant: "Asistente", human: "Equipo" };
let current = null; // the lead shown

export function initDetail() {
  $("detail-close").addEventListener("click", closeLead);
  $("detail-status").addEventListener("change", saveStatus);
  $("notes-form").addEventListener("submit", saveNotes);
  $("followup-send").addEventListener("click", () => (
    sendNow(current.id, $("followup-send"), $("followup-status"))));
  for (const action of ["pause", "resume"]) {
    $(action).addEventListener("click", async () => {
      const conversation = latestConversation();
      if (!conversation) return;
      await api("/api/conversations/" + conversation.id + "/" + action, { method: "POST" });
      await openLead(current.id);
    });
  }
  $("reply-form").addEventListener("submit", reply);
}

export async function openLead(id, focus = false) {
  const [lead, identity] = await Promise.all([
    api("/api/leads/" + id).then((body) => body.data),
    api("/api/leads/" + id + "/identidad").then((body) => body.data),
  ]);
  const other = !current || current.id !== lead.id;
  current = lead;
  const detail = $("detail");
  detail.hidden = false;
  detail.dataset.leadId = lead.id;
  $("detail-title").textContent = (lead.name || "Lead #" + lead.id) + " — " +
    (CLASS_NAMES[lead.classification] || lead.classification);
  $("detail-reasons").textContent = (lead.reasons || []).join(" · ");
  $("detail-meta").textContent = [
    CHANNEL_NAMES[lead.channel] || lead.channel, "puntaje " + lead.score,
    "creado " + when(lead.created_at),
    lead.last_user_message_at ? "último mensaje " + when(lead.last_user_message_at) : null,
  ].filter(Boolean).join(" · ");
  const digits = (lead.phone || "").replace(/\D/g, "");
  $("detail-wa").hidden = digits.length < 8;
  $("detail-wa").href = "https://wa.me/" + digits;
  $("detail-status").value = lead.status;
  if (other) {
    $("detail-notes").value = lead.notes || "";
    for (const id of ["status-saved", "notes-status", "followup-status"]) say($(id), "");
  }
  showIdentity(lead, identity, openLead);
  showTranscript(lead);
  await leadHistory(lead.id);
  if (focus) {
    detail.scrollIntoView({ block: "start" });
    $("detail-title").focus({ preventScroll: true });
  }
}

function closeLead() {
  $("detail").hidden = true;
  const row = current && document.querySelector(`#leads tr[data-id="${current.id}"] button`);
  current = null;
  delete $("detail").dataset.leadId;
  if (row) row.focus();
}

function showTranscript(lead) {
  const channels = new Set(lead.mensajes.map((m) => m.channel));
  const list = $("transcript");
  list.replaceChildren();
  for (const m of lead.mensajes) {
    const author = m.source === "human" ? "human" : m.role;
    const item = el("li", "msg msg--" + author);
    const meta = el("span", "msg__meta");
    meta.append(el("span", "msg__who", AUTHORS[author] || author));
    if (channels.size > 1) meta.append(" · " + (CHANNEL_NAMES[m.channel] || m.channel));
    const time = el("time", "msg__time", when(m.created_at));
    time.dateTime = m.created_at;
    meta.append(" · ", time);
    item.append(meta, el("p", "msg__text", m.content));
    list.appendChild(item);
  }
  $("transcript-empty").hidden = lead.mensajes.length > 0;
  list.scrollTop = list.scrollHeight; // open at the newest message
  const conversation = latestConversation();
  const paused = Boolean(conversation && conversation.paused_at);
  $("pause").hidden = paused || !conversation;
  $("resume").hidden = !paused;
  $("handoff-state").textContent = paused
    ? "El bot está en pausa en esta conversación: responde tú."
    : "El bot responde esta conversación.";
}

function latestConversation() {
  return current && current.conversaciones[current.conversaciones.length - 1];
}

async function saveStatus() {
  const select = $("detail-status");
  const status = $("status-saved");
  const saved = await busy(select, status, () => api("/api/leads/" + current.id, {
    method: "PATCH", body: JSON.stringify({ seguimiento: select.value }),
  }));
  if (!saved) { select.value = current.status; return; }
  current.status = saved.data.status;
  say(status, "Guardado: " + STATUS_NAMES[current.status], "ok");
  leadsChanged();
}

async function saveNotes(event) {
  event.preventDefault();
  const status = $("notes-status");
  const saved = await busy(submitter(event), status, () => api("/api/leads/" + current.id, {
    method: "PATCH", body: JSON.stringify({ notas: $("detail-notes").value }),
  }));
  if (saved) say(status, "Notas guardadas " + when(saved.data.updated_at), "ok");
}

async function reply(event) {
  event.preventDefault();
  const conversation = latestConversation();
  const text = $("reply").value.trim();
  if (!conversation || !text) return;
  const status = $("reply-status");
  const sent = await busy(submitter(event), status,
    () => api("/api/conversations/" + conversation.id + "/reply", {
      method: "POST", body: JSON.stringify({ texto: text }),
    }), "No se envió");
  if (!sent) return;
  say(status, "");
  $("reply").value = "";
  await openLead(current.id);
}
