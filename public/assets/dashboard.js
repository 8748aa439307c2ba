// The owner's dashboard (an ES module; its parts are under dashboard/): log in, then the
// figures, leads and one lead's conversation, follow-ups, what the assistant is told, the
// business's config, what the assistant could not read, and the server's health.
// Everything people wrote is put on the page as text (textContent), never as HTML; no
// inline style either (the CSP forbids it): bar lengths are CSS custom properties.
import { $, api, setSession } from "./dashboard/common.js";
import { loadStats } from "./dashboard/stats.js";
import { initLeads, loadLeads } from "./dashboard/leads.js";
import { initDetail, openLead } from "./dashboard/detail.js";
import { initFollowUps, loadDue } from "./dashboard/followups.js";
import { initAssistant, loadAssistant } from "./dashboard/assistant.js";
import { initBusiness, loadBusiness } from "./dashboard/business.js";
import { initInbox, loadUnsupported } from "./dashboard/inbox.js";
import { watchHealth } from "./dashboard/health.js";

function showLogin() {
  setSession(null);
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("password").focus();
}

async function showApp(csrf) {
  setSession(csrf, showLogin);
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  await Promise.all([
    watchHealth(), loadStats(), loadLeads(), loadDue(), loadAssistant(), loadBusiness(),
    loadUnsupported(),
  ]);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("password").value }),
  });
  const body = await response.json();
  if (!response.ok) { $("login-error").textContent = body.error; return; }
  $("password").value = "";
  await showApp(body.csrfToken);
});

$("logout").addEventListener("click", async () => {
  try { await api("/api/auth/logout", { method: "POST" }); } catch (_) { /* out either way */ }
  showLogin();
});

document.addEventListener("dashboard:leads-changed", () => {
  Promise.all([loadStats(), loadLeads(), loadDue()]).catch(() => {});
});

initLeads(openLead);
initDetail();
initFollowUps(openLead);
initAssistant();
initBusiness();
initInbox();

(async () => {
  try {
    const response = await fetch("/api/auth/session", { credentials: "same-origin" });
    if (!response.ok) {
      showLogin();
      // 503: no password is set yet; the server says how to set one, before any attempt.
      if (response.status === 503) $("login-error").textContent = (await response.json()).error;
      return;
    }
    await showApp((await response.json()).csrfToken);
  } catch (_) { showLogin(); }
})();
