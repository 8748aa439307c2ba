// The figures: leads by class, leads per day (bars with dates, counts and labelled axes,
// and the same numbers as a table), and the funnel of each channel.
import {
  $, api, el, CHANNELS, CHANNEL_NAMES, CLASS_ORDER,
} from "./common.js";

const CHART_DAYS = 30;
const PHONE_DAYS = 14; // a phone shows the last two weeks (the table has them all)
const DAY_MS = 24 * 60 * 60 * 1000;
const UTC_DAY = new Intl.DateTimeFormat("es-CL", { day: "numeric", month: "short", timeZone: "UTC" });
const UTC_MONTH = new Intl.DateTimeFormat("es-CL", { month: "short", timeZone: "UTC" });
const PLURAL_CLASS = {
  caliente: ["caliente", "calientes"], tibio: ["tibio", "tibios"], frio: ["frío", "fríos"],
};
const STEPS = [["new", "Leads"], ["contacted", "Contactados"], ["won", "Ganados"]];

export async function loadStats() {
  const s = (await api("/api/leads/estadisticas")).data;
  $("stat-total").textContent = s.total;
  for (const k of CLASS_ORDER) $("stat-" + k).textContent = s.porClase[k];
  const median = s.medianaPrimeraRespuestaSegundos;
  $("stat-first-reply").textContent = median == null ? "—"
    : median.toLocaleString("es-CL", { maximumFractionDigits: 1 }) + " s";
  showPerDay(s.porDia);
  showFunnel(s.embudo, s.canalPorClase);
}

// The stored days are UTC dates ("2026-11-29"); so are the chart's.
function lastDays(perDay) {
  const counts = new Map(perDay.map((d) => [d.day, d.leads]));
  const newest = perDay.length ? Date.parse(perDay[perDay.length - 1].day + "T00:00:00Z") : 0;
  const today = Date.parse(new Date().toISOString().slice(0, 10) + "T00:00:00Z");
  const end = Math.max(today, newest);
  const days = [];
  for (let i = CHART_DAYS - 1; i >= 0; i -= 1) {
    const date = new Date(end - i * DAY_MS);
    const key = date.toISOString().slice(0, 10);
    days.push({ key, date, leads: counts.get(key) || 0 });
  }
  return days;
}

// Under a day's date, its month: on the first day of a month, and on the chart's first
// (`start`) unless a month begins within the next few days (the labels would collide).
function monthShown(days, i, start) {
  if (i < start) return false;
  if (days[i].date.getUTCDate() === 1) return true;
  return i === start && !days.slice(i + 1, i + 4).some((d) => d.date.getUTCDate() === 1);
}

function showPerDay(perDay) {
  const days = lastDays(perDay);
  const top = Math.max(1, ...days.map((d) => d.leads));
  const chart = $("per-day");
  const yAxis = el("div", "chart__plot chart__y");
  yAxis.append(el("span", "chart__y-max", top), el("span", "chart__y-zero", 0));
  const grid = el("div", "chart__grid");
  grid.append(yAxis, el("span", "chart__date"));
  days.forEach((day, i) => {
    const old = i < CHART_DAYS - PHONE_DAYS ? " chart__old" : "";
    const plot = el("div", "chart__plot" + old);
    if (day.leads) plot.appendChild(el("span", "chart__count", day.leads));
    const bar = el("span", "chart__bar");
    bar.style.setProperty("--value", String(day.leads / top)); // CSSOM: allowed by the CSP
    plot.appendChild(bar);
    const label = el("span", "chart__date" + old, day.date.getUTCDate());
    if (monthShown(days, i, 0)) label.classList.add("chart__date--month");
    if (monthShown(days, i, CHART_DAYS - PHONE_DAYS)) label.classList.add("chart__date--phone-month");
    label.appendChild(el("span", "chart__month", UTC_MONTH.format(day.date)));
    grid.append(plot, label);
  });
  const xAxis = el("span", "chart__axis chart__axis--x", "Día ");
  xAxis.append(el("span", "chart__range", `(últimos ${CHART_DAYS})`),
    el("span", "chart__range chart__range--phone", `(últimos ${PHONE_DAYS})`));
  chart.replaceChildren(el("span", "chart__axis chart__axis--y", "Leads"), grid, xAxis);

  const total = days.reduce((sum, d) => sum + d.leads, 0);
  const best = days.reduce((a, b) => (b.leads > a.leads ? b : a), days[0]);
  $("per-day-summary").textContent = total === 0
    ? "Sin leads en los últimos 30 días."
    : `Últimos 30 días (${UTC_DAY.format(days[0].date)} a ${UTC_DAY.format(days[days.length - 1].date)}): `
      + `${total} ${total === 1 ? "lead" : "leads"}; el día con más, ${UTC_DAY.format(best.date)} (${best.leads}).`;
  const body = $("per-day-table").tBodies[0];
  body.replaceChildren();
  for (const day of days.filter((d) => d.leads).reverse()) {
    const row = body.insertRow();
    row.append(el("td", "", UTC_DAY.format(day.date)), el("td", "num", day.leads));
  }
  $("per-day-data").hidden = total === 0;
}

function showFunnel(funnel, byClass) {
  const top = Math.max(1, ...CHANNELS.map((c) => (funnel[c] || {}).new || 0));
  const list = $("funnel");
  list.replaceChildren();
  for (const channel of CHANNELS) {
    const counts = funnel[channel] || {};
    const item = el("li", "funnel__channel");
    item.dataset.channel = channel;
    item.appendChild(el("h3", "funnel__name", CHANNEL_NAMES[channel]));
    const steps = el("dl", "funnel__steps");
    for (const [key, label] of STEPS) {
      const n = counts[key] || 0;
      const share = key !== "new" && counts.new ? " (" + Math.round((100 * n) / counts.new) + " %)" : "";
      const track = el("span", "funnel__track");
      const bar = el("span", "funnel__bar funnel__bar--" + key);
      bar.style.setProperty("--value", String(n / top));
      track.appendChild(bar);
      const value = el("dd");
      value.append(track, el("span", "funnel__count", n + share));
      const step = el("div", "funnel__step");
      step.append(el("dt", "", label), value);
      steps.appendChild(step);
    }
    item.appendChild(steps);
    const classes = byClass[channel] || {};
    const split = CLASS_ORDER.map((k) => {
      const n = classes[k] || 0;
      return n + " " + PLURAL_CLASS[k][n === 1 ? 0 : 1];
    });
    item.appendChild(el("p", "funnel__classes", split.join(" · ")));
    list.appendChild(item);
  }
}
