// Web chat: streams the assistant's reply (Server-Sent Events over fetch), keeps the
// session in localStorage, and renders every message as text, never as HTML.
// With ?embed=1 it is the panel of widget.js on a business's site: no page around it, a
// close button, the launcher's open/close told by postMessage, and the session kept by the
// site's page (a frame from another site often may not keep storage: blocked or cleared).
"use strict";

const SESSION_KEY = "iaComercial.sessionId";
const list = document.getElementById("messages");
const scroller = document.getElementById("scroller");
const form = document.getElementById("composer");
const input = document.getElementById("input");
const sendButton = document.getElementById("send");
const statusLine = document.getElementById("status");
const chips = document.getElementById("chips");
const POLL_MS = 3000; // a person may answer from the dashboard: their reply shows up here
const GREETING_MAX_CHARS = 280;
const COLOUR = /^#[0-9a-f]{3}([0-9a-f]{3})?$/i;
const SESSION_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const params = new URLSearchParams(location.search);
// Only inside a frame (which frame-ancestors allows to the listed sites alone): a link to
// /?embed=1 can neither put words in the business's mouth nor choose someone's session.
const embedded = params.get("embed") === "1" && window.parent !== window;
let shown = 0; // messages of the stored history already on screen
let unsent = false; // a session made on this page that has sent nothing: no history to read
let busy = false;
let panelOpen = true; // embedded: no polling while the launcher's panel is closed
// Embedded: widget.js passes the session in the fragment (never sent to a server).
let session = embedded ? new URLSearchParams(location.hash.slice(1)).get("session") || "" : "";
if (!SESSION_ID.test(session)) session = "";

function storage(action) {
  try { return action(localStorage); } catch (_) { return null; } // storage refused: memory
}

function sessionId() {
  if (!embedded) session = storage((s) => s.getItem(SESSION_KEY)) || session;
  if (!session) {
    const random = crypto.getRandomValues(new Uint8Array(12));
    session = "session_" + Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
    unsent = true;
    // To any parent: frame-ancestors lets only the listed sites (and this origin) be one.
    if (embedded) window.parent.postMessage({ type: "ia-comercial:session", sessionId: session }, "*");
    else storage((s) => s.setItem(SESSION_KEY, session));
  }
  return session;
}

function forgetSession() {
  session = "";
  if (!embedded) storage((s) => s.removeItem(SESSION_KEY));
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = "msg msg--" + role;
  item.dataset.role = role;
  item.textContent = text;
  list.appendChild(item);
  scroller.scrollTop = scroller.scrollHeight;
  showChips();
  return item;
}

// The quick replies are for starting a conversation: gone once there is one.
function showChips() {
  chips.hidden = list.childElementCount > 0 || chips.childElementCount === 0;
}

function addChips(services) {
  for (const service of services) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip";
    chip.textContent = service.name;
    chip.addEventListener("click", () => submit(service.name));
    chips.appendChild(chip);
  }
  showChips();
}

async function loadBranding() {
  try {
    const response = await fetch("/api/business");
    if (!response.ok) throw new Error(response.statusText);
    const b = await response.json();
    document.title = b.displayName + " — Chat";
    document.getElementById("business-name").textContent = b.displayName;
    document.getElementById("business-slogan").textContent = b.slogan || "";
    document.documentElement.style.setProperty("--primary", b.primaryColor);
    document.documentElement.style.setProperty("--secondary", b.secondaryColor);
    if (b.greeting) document.getElementById("greeting").textContent = b.greeting;
    addChips(b.services || []);
  } catch (_) { /* the page still works with its default look */ }
  if (embedded) applyWidgetOptions();
}

// The site's own data-greeting and data-color, passed on by widget.js.
function applyWidgetOptions() {
  const greeting = (params.get("greeting") || "").trim().slice(0, GREETING_MAX_CHARS);
  if (greeting) document.getElementById("greeting").textContent = greeting;
  const colour = params.get("color") || "";
  if (COLOUR.test(colour)) document.documentElement.style.setProperty("--primary", colour);
}

// One read at a time: the first load, the poll and the launcher's "open" may overlap.
let reading = null;
function loadHistory() {
  if (!reading) reading = readHistory().finally(() => { reading = null; });
  return reading;
}

async function readHistory() {
  const id = sessionId();
  if (unsent) return; // the server has no conversation for it yet (it would answer 404)
  const response = await fetch("/api/chat/session/" + encodeURIComponent(id));
  if (!response.ok) return;
  const body = await response.json();
  const history = body.data.historial;
  for (const m of history.slice(shown)) if (m.content) addMessage(m.role, m.content);
  shown = history.length;
}

async function poll() {
  if (!busy && panelOpen) {
    try { await loadHistory(); } catch (_) { /* try again on the next tick */ }
  }
  setTimeout(poll, POLL_MS);
}

function parseEvents(buffer, onEvent) {
  let index;
  while ((index = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, index);
    buffer = buffer.slice(index + 2);
    let event = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    onEvent(event, data ? JSON.parse(data) : null);
  }
  return buffer;
}

async function send(text) {
  busy = true;
  addMessage("user", text);
  const bubble = addMessage("assistant", "");
  bubble.classList.add("msg--pending");
  bubble.setAttribute("aria-busy", "true"); // read out once complete, not token by token
  statusLine.textContent = "";
  try {
    const response = await fetch("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
      body: JSON.stringify({ message: text, sessionId: sessionId() }),
    });
    unsent = false; // stored by the server now (even when its answer is an error)
    if (!response.ok || !response.body) {
      let message = "No se pudo enviar el mensaje.";
      try { message = (await response.json()).error || message; } catch (_) {}
      throw new Error(message);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let streamed = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = parseEvents(buffer + value, (event, data) => {
        if (event === "token") {
          streamed += data.text;
          bubble.textContent = streamed;
        } else if (event === "done") {
          bubble.textContent = data.data.respuesta;
        } else if (event === "error") {
          throw new Error(data.error);
        }
        scroller.scrollTop = scroller.scrollHeight;
      });
    }
    if (bubble.textContent) {
      shown += 2;
    } else {
      bubble.remove(); // a person has the conversation: their reply comes by polling
      shown += 1;
    }
  } catch (error) {
    bubble.remove();
    statusLine.textContent = error.message;
  } finally {
    bubble.classList.remove("msg--pending");
    bubble.removeAttribute("aria-busy");
    busy = false;
    showChips();
  }
}

async function submit(text) {
  sendButton.disabled = true;
  try { await send(text); } finally { sendButton.disabled = false; input.focus(); }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  await submit(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

document.getElementById("reset").addEventListener("click", async () => {
  const old = sessionId();
  forgetSession();
  sessionId(); // the new one now: embedded, the site's page keeps it for its next load
  list.replaceChildren();
  showChips();
  shown = 0;
  statusLine.textContent = "";
  try {
    await fetch("/api/chat/reset", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sessionId: old }),
    });
  } catch (_) { /* a new session starts anyway */ }
  input.focus();
});

function embed() {
  document.documentElement.classList.add("embed");
  const close = document.getElementById("close");
  const askToClose = () => window.parent.postMessage({ type: "ia-comercial:close" }, "*");
  close.hidden = false;
  close.addEventListener("click", askToClose);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") askToClose(); });
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || !event.data) return;
    if (event.data.type === "ia-comercial:open") {
      panelOpen = true;
      if (event.data.focus) input.focus();
      loadHistory().catch(() => {}); // a person may have answered while it was closed
    } else if (event.data.type === "ia-comercial:closed") {
      panelOpen = false;
    }
  });
}

if (embedded) embed();
loadBranding();
loadHistory().finally(() => setTimeout(poll, POLL_MS));
