// The five-minute demo: scripted prospects talk to the real /api/chat (same pipeline as the
// web chat), and the lead card beside them fills in with the classifier's verdict.
"use strict";

const SCENARIOS = {
  urgente: [
    "Hola, mi aire acondicionado no funciona y hace mucho calor",
    "Me llamo Daniela Soto",
    "+56 9 8765 4321",
    "Estoy en Providencia, ¿pueden venir hoy?",
  ],
  empresa: [
    "Buenos días, escribo por una oficina de 12 equipos en Las Condes",
    "Soy Ricardo Pérez, jefe de operaciones, mi correo es ricardo@empresa.cl",
    "Necesitamos mantención preventiva para todos, ¿me pueden cotizar?",
  ],
  referido: [
    "Hola! Me recomendó mi vecina, dice que instalaron su aire",
    "Me llamo Paula, quiero instalar un split en Ñuñoa",
    "Mi número es 9 1234 5678, sin apuro, para la próxima semana",
  ],
  cotizacion: [
    "¿Cuánto cuesta instalar un aire de 12.000 BTU?",
    "Tengo un presupuesto de 300 mil",
    "Soy Tomás, 987654321, ¿me envían una cotización?",
  ],
  mantencion: [
    "Hola, ¿hacen mantención de equipos?",
    "Tengo dos equipos en La Florida",
    "Me llamo Camila, mi fono es 22 345 6789",
  ],
};

const $ = (id) => document.getElementById(id);
let running = false;

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
  const session = "demo_" + name + "_" + Date.now();
  try {
    for (const text of SCENARIOS[name]) {
      bubble("user", text);
      $("demo-status").textContent = "El asistente escribe…";
      const response = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
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

// WhatsApp simulated through /api/simulate (admin session): the sandbox shows the answer.
const SIM_USER = "demo" + Math.floor(Math.random() * 1e6);
let simConversation = null;

async function simulate(text) {
  const session = await fetch("/api/auth/session", { credentials: "same-origin" });
  if (!session.ok) {
    $("sim-status").textContent = "Inicia sesión en el panel para simular WhatsApp.";
    return;
  }
  const { csrfToken } = await session.json();
  const response = await fetch("/api/simulate/whatsapp", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
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
  const response = await fetch("/api/simulate/sandbox", { credentials: "same-origin" });
  if (!response.ok) return false;
  const { data } = await response.json();
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
