// The five-minute demo: scripted prospects talk through /api/simulate/chat (the web chat's
// pipeline, in the sandbox: never among the real leads), and the lead card beside them fills
// in with the classifier's verdict. The owner's session (or a DEMO_MODE server) lets it in.
// Phones and e-mails are obviously fake: a demo never claims a real customer's number.
"use strict";

const SCENARIOS = {
  urgente: [
    "Hola, mi aire acondicionado no funciona y hace mucho calor",
    "Me llamo Daniela Soto",
    "+56 9 0000 0001",
    "Estoy en Providencia, ¿pueden venir hoy?",
  ],
  empresa: [
    "Buenos días, escribo por una oficina de 12 equipos en Las Condes",
    "Soy Ricardo Pérez, jefe de operaciones, mi correo es ricardo@empresa.example",
    "Necesitamos mantención preventiva para todos, ¿me pueden cotizar?",
  ],
  referido: [
    "Hola! Me recomendó mi vecina, dice que instalaron su aire",
    "Me llamo Paula, quiero instalar un split en Ñuñoa",
    "Mi número es 9 0000 0002, sin apuro, para la próxima semana",
  ],
  cotizacion: [
    "¿Cuánto cuesta instalar un aire de 12.000 BTU?",
    "Tengo un presupuesto de 300 mil",
    "Soy Tomás, 900000003, ¿me envían una cotización?",
  ],
  mantencion: [
    "Hola, ¿hacen mantención de equipos?",
    "Tengo dos equipos en La Florida",
    "Me llamo Camila, mi fono es 22 000 0004",
  ],
};

const $ = (id) => document.getElementById(id);
let running = false;

// Unguessable, so that on a public demo server nobody writes into another visitor's chat.
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The owner's CSRF token when logged in; none on a DEMO_MODE server without a session.
async function csrfHeaders() {
  const response = await fetch("/api/auth/session", { credentials: "same-origin" });
  if (!response.ok) return {};
  const { csrfToken } = await response.json();
  return { "X-CSRF-Token": csrfToken };
}

function bubble(role, text) {
  const item = document.createElement("li");
  item.className = role;
  item.textContent = text;
  $("demo-chat").appendChild(item);
}

function showLead(lead) {
  for (const key of ["nombre", "telefono", "servicio", "comuna"]) {
    $("lead-" + key).textContent = lead[key] || "—";
  }
  $("lead-puntaje").textContent = lead.puntaje ?? 0;
  const tag = $("lead-class");
  tag.textContent = lead.estado;
  tag.className = "tag tag--" + lead.estado;
  const reasons = $("lead-razones");
  reasons.replaceChildren();
  for (const reason of lead.razones || []) {
    const item = document.createElement("li");
    item.textContent = reason;
    reasons.appendChild(item);
  }
}

async function play(name) {
  if (running) return;
  running = true;
  $("demo-chat").replaceChildren();
  showLead({ estado: "frio", razones: [] });
  const session = "demo_" + name + "_" + randomId();
  try {
    const csrf = await csrfHeaders();
    for (const text of SCENARIOS[name]) {
      bubble("user", text);
      $("demo-status").textContent = "El asistente escribe…";
      const response = await fetch("/api/simulate/chat", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", ...csrf },
        body: JSON.stringify({ message: text, sessionId: session }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || "error");
      bubble("assistant", body.data.respuesta);
      showLead(body.data.lead);
    }
    $("demo-status").textContent = "Listo: así llega el lead al panel del dueño.";
  } catch (error) {
    $("demo-status").textContent = "No se pudo completar la demo: " + error.message;
  } finally {
    running = false;
  }
}

for (const button of document.querySelectorAll("[data-scenario]")) {
  button.addEventListener("click", () => play(button.dataset.scenario));
}

// WhatsApp simulated through /api/simulate: the sandbox shows the answer.
const SIM_USER = "demo" + randomId();
let simConversation = null;

async function simulate(text) {
  const response = await fetch("/api/simulate/whatsapp", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...(await csrfHeaders()) },
    body: JSON.stringify({ de: SIM_USER, mensaje: text }),
  });
  const body = await response.json();
  if (!response.ok) { $("sim-status").textContent = body.error; return; }
  simConversation = body.conversationId;
  $("sim-status").textContent = "Enviado; esperando la respuesta…";
  for (let i = 0; i < 40; i++) {
    if (await drawSandbox()) { $("sim-status").textContent = ""; return; }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function drawSandbox() {
  const response = await fetch("/api/simulate/sandbox?de=" + encodeURIComponent(SIM_USER), {
    credentials: "same-origin",
  });
  if (!response.ok) return false;
  const { data } = await response.json();
  if (data.lead) showLead(data.lead);
  const mine = data.mensajes.filter((m) => m.conversation_id === simConversation);
  const list = $("sim-chat");
  list.replaceChildren();
  for (const m of mine) {
    const item = document.createElement("li");
    item.className = m.role;
    item.textContent = m.content;
    list.appendChild(item);
  }
  return mine.length > 0 && mine[mine.length - 1].role === "assistant";
}

$("sim-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("sim-text").value.trim();
  if (!text) return;
  $("sim-text").value = "";
  simulate(text);
});
