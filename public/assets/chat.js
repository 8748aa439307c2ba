// Web chat: streams the assistant's reply (Server-Sent Events over fetch), keeps the
// session in localStorage, and renders every message as text, never as HTML.
"use strict";

const SESSION_KEY = "iaComercial.sessionId";
const list = document.getElementById("messages");
const form = document.getElementById("composer");
const input = document.getElementById("input");
const sendButton = document.getElementById("send");
const statusLine = document.getElementById("status");
const POLL_MS = 3000; // a person may answer from the dashboard: their reply shows up here
let shown = 0; // messages of the stored history already on screen
let busy = false;

function sessionId() {
  let id = localStorage.getItem(SESSION_KEY);
  if (!id) {
    const random = crypto.getRandomValues(new Uint8Array(12));
    id = "session_" + Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem(SESSION_KEY, id);
  }
  return id;
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = "msg msg--" + role;
  item.dataset.role = role;
  item.textContent = text;
  list.appendChild(item);
  list.scrollTop = list.scrollHeight;
  return item;
}

async function loadBranding() {
  try {
    const response = await fetch("/api/business");
    if (!response.ok) return;
    const b = await response.json();
    document.title = b.displayName + " — Chat";
    document.getElementById("business-name").textContent = b.displayName;
    document.getElementById("business-slogan").textContent = b.slogan || "";
    document.documentElement.style.setProperty("--primary", b.primaryColor);
    document.documentElement.style.setProperty("--secondary", b.secondaryColor);
  } catch (_) { /* the page still works with its default look */ }
}

async function loadHistory() {
  const response = await fetch("/api/chat/session/" + encodeURIComponent(sessionId()));
  if (!response.ok) return;
  const body = await response.json();
  const history = body.data.historial;
  for (const m of history.slice(shown)) if (m.content) addMessage(m.role, m.content);
  shown = history.length;
}

async function poll() {
  if (!busy) {
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
  statusLine.textContent = "";
  try {
    const response = await fetch("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
      body: JSON.stringify({ message: text, sessionId: sessionId() }),
    });
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
        list.scrollTop = list.scrollHeight;
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
    busy = false;
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  sendButton.disabled = true;
  try { await send(text); } finally { sendButton.disabled = false; input.focus(); }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

document.getElementById("reset").addEventListener("click", async () => {
  const old = sessionId();
  localStorage.removeItem(SESSION_KEY);
  list.replaceChildren();
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

loadBranding();
loadHistory().finally(() => setTimeout(poll, POLL_MS));
