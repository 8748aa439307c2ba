// The business's chat on any page of a site listed in ALLOWED_ORIGINS:
//   <script src="https://HOST/widget.js" async data-position="right" data-color="#0f766e"
//           data-greeting="¡Hola! ¿Te ayudamos?"></script>
// A launcher button (its styles in a shadow root, apart from the page's) opens HOST's chat
// page in a frame: the chat talks to its own origin and no CSS of the page reaches it. The
// session id is kept here, in the site's own storage, and handed to the frame: storage of a
// frame from another site is refused by many browsers (third-party blocking) or cleared.
// No inline code and no markup strings, so a strict page CSP (or Trusted Types) only needs
// to allow HOST as a script and frame source.
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script || !script.src || window.iaComercialWidget) return; // included twice: one launcher
  window.iaComercialWidget = true;

  const CHAT_ORIGIN = new URL(script.src).origin;
  const OPEN_KEY = "iaComercial.widgetOpen"; // this tab's pages reopen the panel left open
  const SESSION_KEY = "iaComercial.sessionId";
  const SESSION_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
  const siteStorage = () => window.localStorage; // read when used: access may throw
  const tabStorage = () => window.sessionStorage;
  const GREETING_MAX_CHARS = 280;
  const COLOUR = /^#[0-9a-f]{3}([0-9a-f]{3})?$/i;
  const DEFAULT_COLOUR = "#2563eb";
  const SVG = "http://www.w3.org/2000/svg";
  const CHAT_ICON = "M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z";
  const CLOSE_ICON =
    "M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z";
  const STYLES = `
    :host { all: initial; }
    .launcher { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000;
      width: 56px; height: 56px; padding: 0; border: 0; border-radius: 50%; cursor: pointer;
      display: grid; place-items: center; color: #fff; background: var(--ia-colour);
      box-shadow: 0 4px 14px rgba(0, 0, 0, .25); }
    .launcher:focus-visible { outline: 3px solid #111827; outline-offset: 3px; }
    .launcher svg { width: 28px; height: 28px; fill: currentColor; }
    .panel { position: fixed; bottom: 88px; right: 20px; z-index: 2147483000;
      width: min(380px, calc(100vw - 40px)); height: min(600px, calc(100vh - 120px));
      border-radius: 16px; overflow: hidden; background: #fff;
      box-shadow: 0 12px 40px rgba(0, 0, 0, .25); }
    .panel[hidden] { display: none; }
    .left .launcher, .left .panel { right: auto; left: 20px; }
    iframe { display: block; width: 100%; height: 100%; border: 0; }
    @media (max-width: 480px) {
      .panel, .left .panel { inset: 0; width: 100%; height: 100%; border-radius: 0; }
      .open .launcher { display: none; }
    }`;

  const data = script.dataset;
  const options = {
    left: data.position === "left",
    colour: COLOUR.test(data.color || "") ? data.color : "",
    greeting: (data.greeting || "").trim().slice(0, GREETING_MAX_CHARS),
  };

  const host = document.createElement("ia-comercial-chat");
  const root = host.attachShadow({ mode: "open" });
  const box = document.createElement("div");
  const launcher = document.createElement("button");
  const panel = document.createElement("div");
  let frame = null;
  let focusWhenLoaded = false;

  function style() {
    // A constructed sheet is not an inline <style>: a page's style-src does not block it.
    if ("adoptedStyleSheets" in root && typeof CSSStyleSheet.prototype.replaceSync === "function") {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
      root.adoptedStyleSheets = [sheet];
    } else {
      const element = document.createElement("style");
      element.textContent = STYLES;
      root.appendChild(element);
    }
  }

  function icon(path) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const shape = document.createElementNS(SVG, "path");
    shape.setAttribute("d", path);
    svg.appendChild(shape);
    return svg;
  }

  function chatUrl() {
    const url = new URL("/", CHAT_ORIGIN);
    url.searchParams.set("embed", "1");
    if (options.greeting) url.searchParams.set("greeting", options.greeting);
    if (options.colour) url.searchParams.set("color", options.colour);
    const session = stored(siteStorage, SESSION_KEY);
    if (session && SESSION_ID.test(session)) url.hash = "session=" + session; // never sent
    return url.href;
  }

  function tell(type, focus) {
    if (frame && frame.contentWindow) {
      frame.contentWindow.postMessage({ type: "ia-comercial:" + type, focus }, CHAT_ORIGIN);
    }
  }

  function makeFrame() {
    frame = document.createElement("iframe");
    frame.title = "Chat";
    frame.src = chatUrl();
    frame.addEventListener("load", () => {
      tell("open", focusWhenLoaded);
      focusWhenLoaded = false;
    });
    panel.appendChild(frame);
  }

  // Storage may be refused (privacy settings): then the panel starts closed and the
  // conversation new on the next page, nothing worse.
  function stored(area, key) {
    try { return area().getItem(key) || ""; } catch (_) { return ""; }
  }

  function store(area, key, value) {
    try {
      if (value) area().setItem(key, value);
      else area().removeItem(key);
    } catch (_) { /* as above */ }
  }

  // `focus`: the person opened or closed it, so focus follows (never on a page load).
  function setOpen(open, focus) {
    panel.hidden = !open;
    box.classList.toggle("open", open);
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Cerrar el chat" : "Abrir el chat");
    launcher.replaceChildren(icon(open ? CLOSE_ICON : CHAT_ICON));
    store(tabStorage, OPEN_KEY, open ? "1" : "");
    if (!open) {
      tell("closed", false);
      if (focus) launcher.focus();
    } else if (!frame) {
      focusWhenLoaded = focus;
      makeFrame();
      if (focus) frame.focus();
    } else {
      if (focus) frame.focus();
      tell("open", focus);
    }
  }

  function build() {
    style();
    box.className = options.left ? "left" : "right";
    box.style.setProperty("--ia-colour", options.colour || DEFAULT_COLOUR);
    launcher.type = "button";
    launcher.className = "launcher";
    launcher.setAttribute("aria-controls", "ia-comercial-panel");
    panel.id = "ia-comercial-panel";
    panel.className = "panel";
    launcher.addEventListener("click", () => setOpen(panel.hidden, true));
    launcher.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !panel.hidden) setOpen(false, true);
    });
    // The chat's close button and Escape key, from our frame only.
    window.addEventListener("message", (event) => {
      if (event.origin !== CHAT_ORIGIN || !frame || event.source !== frame.contentWindow) return;
      const message = event.data || {};
      if (message.type === "ia-comercial:close") setOpen(false, true);
      if (message.type === "ia-comercial:session" && SESSION_ID.test(message.sessionId || "")) {
        store(siteStorage, SESSION_KEY, message.sessionId); // a new one: first, or after reset
      }
    });
    box.append(launcher, panel);
    root.appendChild(box);
    document.body.appendChild(host);
    setOpen(stored(tabStorage, OPEN_KEY) === "1", false);
  }

  if (document.body) build();
  else document.addEventListener("DOMContentLoaded", build);
})();
