// Where each field of a lead came from, possible duplicates ("posible misma persona") and
// their merge by hand, and the leads merged into this one.
import { $, api, el, button, when, CHANNEL_NAMES, leadsChanged } from "./common.js";

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

export function showIdentity(lead, identity, reopen) {
  showFields(lead, identity.origen);
  showMatches(lead, identity.posibleMismaPersona, reopen);
  showMerges(identity.uniones);
}

function showFields(lead, origins) {
  const list = $("detail-fields");
  list.replaceChildren();
  for (const [field, label] of FIELD_NAMES) {
    const value = el("dd");
    value.dataset.field = field;
    value.appendChild(el("span", "value", lead[field] || "—"));
    if (lead[field] && origins[field]) value.appendChild(originLine(origins[field]));
    const group = el("div", "fields__row");
    group.append(el("dt", "", label), value);
    list.appendChild(group);
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
function showMatches(lead, matches, reopen) {
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
    const merge = button("Unir con este lead");
    merge.addEventListener("click", () => mergeInto(lead, match, reopen));
    item.appendChild(merge);
    list.appendChild(item);
  }
}

async function mergeInto(lead, match, reopen) {
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
  await reopen(lead.id);
  leadsChanged();
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
