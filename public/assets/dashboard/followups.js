// Follow-ups: the leads due one, a lead's attempts and what became of each, and one sent now
// (Meta's 24-hour window, the approved template and an opt-out still hold on the server).
import {
  $, api, el, button, classTag, say, busy, timeElement, when, CHANNEL_NAMES, leadsChanged,
} from "./common.js";

const OUTCOMES = {
  pending: "En cola",
  sent: "Enviado",
  failed: "No se pudo enviar",
  reminded: "No enviado: se avisó al dueño",
  skipped: "No enviado",
};

let openLead = async () => {};

export function initFollowUps(onOpen) {
  openLead = onOpen;
}

export async function loadDue() {
  const { pendientes, totales, total, totalExacto } = (await api("/api/followups")).data;
  const list = $("followups-due");
  list.replaceChildren();
  for (const due of pendientes) list.appendChild(dueItem(due));
  $("followups-empty").hidden = pendientes.length > 0;
  if (total > pendientes.length) {  // the longest silent are listed, the rest counted
    list.appendChild(el("li", "due__item hint", totalExacto
      ? `… y ${total - pendientes.length} más` : `… de más de ${total} en total`));
  }
  const shown = Object.entries(totales).filter(([, n]) => n > 0)
    .map(([status, n]) => (OUTCOMES[status] || status) + ": " + n);
  $("followups-totals").textContent = shown.length
    ? "Seguimientos hasta hoy — " + shown.join(" · ") : "Aún no se ha enviado ningún seguimiento.";
}

function dueItem(due) {
  const item = el("li", "due__item");
  const who = el("span", "due__who");
  who.append(el("strong", "", due.nombre || "Lead #" + due.leadId), " ", classTag(due.estado));
  const meta = el("span", "due__meta");
  meta.append(CHANNEL_NAMES[due.canal] || due.canal, " · último mensaje ",
    timeElement(due.ultimoMensaje));
  const status = el("span", "due__status status-line");
  status.setAttribute("role", "status");
  const open = button("Ver lead");
  open.addEventListener("click", () => openLead(due.leadId, true));
  const send = button("Enviar ahora", "btn");
  send.addEventListener("click", () => sendNow(due.leadId, send, status));
  const actions = el("span", "due__actions");
  actions.append(open, send);
  item.append(who, meta, actions, status);
  return item;
}

export async function sendNow(leadId, trigger, status) {
  say(status, "Enviando…");
  const attempt = await busy(trigger, status, async () => (
    await api("/api/followups/" + leadId + "/send", { method: "POST" })).data,
  "No se envió");
  if (!attempt) return;
  say(status, "Seguimiento n.º " + attempt.number + ": " + outcome(attempt), "ok");
  await Promise.all([loadDue(), leadHistory(leadId)]);
  leadsChanged();
}

function outcome(attempt) {
  const text = OUTCOMES[attempt.status] || attempt.status;
  return attempt.reason ? text + " (" + attempt.reason + ")" : text;
}

// The open lead's attempts, in the detail panel.
export async function leadHistory(leadId) {
  if ($("detail").dataset.leadId !== String(leadId)) return;
  const attempts = (await api("/api/followups/" + leadId)).data;
  const list = $("lead-followups");
  list.replaceChildren();
  for (const attempt of attempts) {
    const item = el("li");
    item.append(el("span", "", "N.º " + attempt.number + " por " +
      (CHANNEL_NAMES[attempt.channel] || attempt.channel) + ", " + when(attempt.created_at) + ": "),
    el("strong", "", outcome(attempt)));
    list.appendChild(item);
  }
  $("lead-followups-empty").hidden = attempts.length > 0;
}
