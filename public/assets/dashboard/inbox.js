// What the assistant could not read (newest first, a page at a time), and the demo's sandbox.
import { $, api, el, when, CHANNEL_NAMES } from "./common.js";

const UNSUPPORTED_PAGE = 20;
let unsupportedBefore = null; // the cursor of the next page of unread messages

export function initInbox() {
  $("unsupported-more").addEventListener("click", async () => {
    const more = $("unsupported-more");
    more.disabled = true;
    try { await loadUnsupported(true); } finally { more.disabled = false; }
  });
  $("clear-sandbox").addEventListener("click", clearSandbox);
}

export async function loadUnsupported(more = false) {
  const params = new URLSearchParams({ limit: UNSUPPORTED_PAGE });
  if (more && unsupportedBefore != null) params.set("before", unsupportedBefore);
  const body = await api("/api/admin/unsupported?" + params);
  const list = $("unsupported");
  if (!more) list.replaceChildren();
  for (const event of body.data) list.appendChild(unsupportedItem(event));
  unsupportedBefore = body.before;
  $("unsupported-more").hidden = body.before == null;
  $("unsupported-empty").hidden = list.children.length > 0;
  list.hidden = list.children.length === 0;
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

async function clearSandbox() {
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
}
