// The lead list: filters (sent to the API), sorting, pages of PAGE_SIZE with the total.
// The API orders by score; any other order is applied to the page on screen.
import {
  $, api, el, classTag, timeElement, CHANNEL_NAMES, CLASS_ORDER, STATUS_NAMES,
} from "./common.js";

const PAGE_SIZE = 25;
const COLLATOR = new Intl.Collator("es", { sensitivity: "base" });
const newestFirst = (key) => (a, b) => (b[key] || "").localeCompare(a[key] || "");
const SORTS = {
  puntaje: null, // the API's own order: score, then the latest update
  creado: newestFirst("created_at"),
  ultimo: newestFirst("last_user_message_at"),
  clase: (a, b) => CLASS_ORDER.indexOf(a.classification) - CLASS_ORDER.indexOf(b.classification)
    || b.score - a.score,
  nombre: (a, b) => (!a.name) - (!b.name) || COLLATOR.compare(a.name || "", b.name || ""),
};
const COLUMNS = [
  "Nombre", "Teléfono", "Servicio", "Comuna", "Clase", "Puntaje", "Canal", "Seguimiento",
  "Creado", "Último mensaje",
];

let page = 1;
let rows = [];
let openLead = async () => {};

export function initLeads(onOpen) {
  openLead = onOpen;
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); page = 1; loadLeads(); });
  $("f-orden").addEventListener("change", showRows);
  $("page-prev").addEventListener("click", () => { page -= 1; loadLeads(); });
  $("page-next").addEventListener("click", () => { page += 1; loadLeads(); });
}

function filterParams() {
  const params = new URLSearchParams();
  for (const [id, name] of [["f-estado", "estado"], ["f-canal", "canal"], ["f-seguimiento", "seguimiento"]]) {
    if ($(id).value) params.set(name, $(id).value);
  }
  if ($("f-q").value.trim()) params.set("q", $("f-q").value.trim());
  return params;
}

export async function loadLeads() {
  const params = filterParams();
  $("export").href = "/api/leads/export.csv?" + params;
  params.set("pagina", page);
  params.set("porPagina", PAGE_SIZE);
  const body = await api("/api/leads?" + params);
  // A search for a common word is not counted to its end: "más de" the total, one page more.
  const more = body.totalExacto === false;
  const pages = Math.max(1, Math.ceil(body.total / PAGE_SIZE) + (more ? 1 : 0));
  if (page > pages) { page = pages; return loadLeads(); }
  rows = body.data;
  showRows();
  const first = body.total ? (page - 1) * PAGE_SIZE + 1 : 0;
  $("page-info").textContent = `${first}–${first + rows.length - (rows.length ? 1 : 0)}`
    + ` de ${more ? "más de " : ""}${body.total} · página ${page} de ${more ? "más de " : ""}${pages}`;
  $("page-prev").disabled = page <= 1;
  $("page-next").disabled = page >= pages;
  $("pager").hidden = pages <= 1;
  $("leads-empty").hidden = body.total > 0;
  $("leads").hidden = body.total === 0;
}

function showRows() {
  const order = SORTS[$("f-orden").value];
  const sorted = order ? [...rows].sort(order) : rows;
  const body = $("leads").tBodies[0];
  body.replaceChildren();
  for (const lead of sorted) body.appendChild(leadRow(lead));
}

function leadRow(lead) {
  const row = el("tr");
  row.dataset.id = lead.id;
  const open = el("button", "link-button", lead.name || "Lead #" + lead.id);
  open.type = "button";
  open.addEventListener("click", (event) => { event.stopPropagation(); openLead(lead.id, true); });
  const cells = [
    open, lead.phone, lead.service, lead.area, classTag(lead.classification), lead.score,
    CHANNEL_NAMES[lead.channel] || lead.channel, STATUS_NAMES[lead.status] || lead.status,
    timeElement(lead.created_at), timeElement(lead.last_user_message_at),
  ];
  cells.forEach((value, i) => {
    const td = el("td");
    td.dataset.label = COLUMNS[i];
    if (value instanceof Node) td.appendChild(value);
    else td.textContent = value == null || value === "" ? "—" : String(value);
    row.appendChild(td);
  });
  row.addEventListener("click", () => openLead(lead.id, true));
  return row;
}
