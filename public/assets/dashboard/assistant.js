// What the model is told: the business's rules (the system prompt) and the commercial
// strategy. Each save is a version; any version can be restored, and so can the default
// (the prompt file, no strategy).
import { $, api, el, button, say, busy, when } from "./common.js";
import { clearErrors, showErrors, lines, submitter } from "./forms.js";

export function initAssistant() {
  $("prompt-form").addEventListener("submit", savePrompt);
  $("prompt-default").addEventListener("click", (event) => (
    restore("prompt", null, event.currentTarget, $("prompt-status"))));
  $("strategy-form").addEventListener("submit", saveStrategy);
  $("strategy-default").addEventListener("click", (event) => (
    restore("strategy", null, event.currentTarget, $("strategy-status"))));
}

export async function loadAssistant() {
  await Promise.all([loadPrompt(), loadStrategy()]);
}

async function loadPrompt() {
  const { texto, origen, versiones } = (await api("/api/prompt")).data;
  $("prompt-text").value = texto;
  $("prompt-origin").textContent = origen === "panel"
    ? "En uso: la versión editada en el panel."
    : "En uso: el archivo de instrucciones del servidor (aún no se ha editado en el panel).";
  showHistory("prompt", versiones);
}

async function loadStrategy() {
  const { estrategia, versiones } = (await api("/api/strategy")).data;
  const s = estrategia || {};
  $("strategy-objective").value = s.objetivoPrincipal || "";
  $("strategy-criteria").value = (s.criteriosLeadCaliente || []).join("\n");
  $("strategy-tone").value = s.tono || "cercano y profesional";
  $("strategy-insistence").value = s.insistencia || "media";
  $("strategy-origin").textContent = estrategia
    ? "En uso: la estrategia de abajo." : "Sin estrategia: el asistente sigue solo las instrucciones.";
  showHistory("strategy", versiones);
}

function showHistory(kind, versions) {
  const list = $(kind + "-history");
  list.replaceChildren();
  versions.forEach((version, i) => {
    const item = el("li", "history__item");
    const size = kind === "prompt" ? " · " + version.chars.toLocaleString("es-CL") + " caracteres" : "";
    item.appendChild(el("span", "", "Versión " + version.id + " · " + when(version.created_at) +
      " · " + (version.note || "") + size));
    if (i === 0) item.appendChild(el("strong", "history__current", "en uso"));
    else {
      const again = button("Restaurar");
      again.setAttribute("aria-label", "Restaurar la versión " + version.id);
      again.addEventListener("click", () => restore(kind, version.id, again, $(kind + "-status")));
      item.appendChild(again);
    }
    list.appendChild(item);
  });
  $(kind + "-history-empty").hidden = versions.length > 0;
}

async function restore(kind, version, trigger, status) {
  const body = version == null ? {} : { version };
  const done = await busy(trigger, status, () => api("/api/" + kind + "/restore", {
    method: "POST", body: JSON.stringify(body),
  }), "No se pudo restaurar");
  if (!done) return;
  say(status, version == null
    ? (kind === "prompt" ? "Vuelve a usarse el archivo." : "Estrategia quitada.")
    : "Restaurada la versión " + version + " (ahora versión " + done.version + ").", "ok");
  await (kind === "prompt" ? loadPrompt() : loadStrategy());
}

async function savePrompt(event) {
  event.preventDefault();
  const status = $("prompt-status");
  clearErrors($("prompt-form"));
  const text = $("prompt-text").value;
  if (!text.trim()) {
    showErrors($("prompt-form"), [{ campo: "texto", mensaje: "Escribe las instrucciones." }]);
    return;
  }
  const done = await busy(submitter(event), status, () => api("/api/prompt", {
    method: "PUT", body: JSON.stringify({ texto: text }),
  }));
  if (!done) return;
  say(status, "Guardado como versión " + done.version + ".", "ok");
  await loadPrompt();
}

async function saveStrategy(event) {
  event.preventDefault();
  const form = $("strategy-form");
  const status = $("strategy-status");
  clearErrors(form, $("strategy-errors"));
  const strategy = {
    objetivoPrincipal: $("strategy-objective").value.trim(),
    criteriosLeadCaliente: lines($("strategy-criteria").value),
    tono: $("strategy-tone").value.trim(),
    insistencia: $("strategy-insistence").value,
  };
  let done;
  const trigger = submitter(event);
  trigger.disabled = true;
  try {
    done = await api("/api/strategy", { method: "PUT", body: JSON.stringify(strategy) });
  } catch (error) {
    say(status, "No se guardó: " + error.message, "error");
    if (error.details && error.details.length) showErrors(form, error.details, $("strategy-errors"));
    return;
  } finally {
    trigger.disabled = false;
  }
  say(status, "Guardada como versión " + done.version + ".", "ok");
  await loadStrategy();
}
