// A banner while /health/detailed is not `ok`, with its reasons as the server gives them.
import { $, el } from "./common.js";

const EVERY_MS = 60 * 1000;
const HEADINGS = {
  degraded: "El sistema funciona, pero con problemas:",
  failing: "El sistema está fallando:",
};
let timer = null;

export function watchHealth() {
  if (timer == null) timer = setInterval(checkHealth, EVERY_MS);
  return checkHealth();
}

export async function checkHealth() {
  let report;
  try {
    const response = await fetch("/health/detailed", { credentials: "same-origin" });
    report = await response.json();
  } catch (_) {
    report = { status: "failing", reasons: ["no se pudo consultar el estado del servidor"] };
  }
  const banner = $("health");
  banner.hidden = report.status === "ok";
  banner.dataset.status = report.status;
  $("health-title").textContent = HEADINGS[report.status] || "Estado del sistema: " + report.status;
  $("health-reasons").replaceChildren(...(report.reasons || []).map((reason) => el("li", "", reason)));
}
