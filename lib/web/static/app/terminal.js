// The terminal page: xterm.js fitted to the window, talking to a node through the proxy.
// Opened in its own browser tab from the Connect menu (several at once are fine); `sid` joins
// an active session as an observer.
import { getSession } from "./api.js";
import { h, replace } from "./dom.js";
import { FitAddon } from "./vendor/addon-fit.mjs";
import { plainKeyText } from "./keys.js";
import { TtyClient, ttyUrl } from "./tty.js";
import { newTerminal } from "./xterm_theme.js";

export function render(main, { site, serverId, login, sid }) {
  const observer = sid !== undefined;
  if (observer) {
    // Joining: the session's node and login come in the query (from the sessions page).
    const q = new URLSearchParams(location.search);
    serverId = q.get("server_id") ?? "";
    login = q.get("login") ?? "";
  }
  document.title = observer ? `Session ${sid} · Teleport` : `${login}@${serverId} · Teleport`;
  const title = h("span", {
    class: "term-title",
    text: observer ? `Observing session ${sid}` : `${login}@${serverId}`,
  });
  const state = h("span", {
    class: "term-state",
    role: "status",
    "aria-live": "polite",
    text: "Connecting…",
  });
  const latency = h("span", { class: "muted term-latency" });
  const copyBtn = h("button", {
    type: "button",
    text: "Copy",
    title: "Copy the selection (Ctrl+Shift+C)",
  });
  const pasteBtn = h("button", {
    type: "button",
    text: "Paste",
    title: "Paste (Ctrl+Shift+V)",
    disabled: observer,
  });
  const closeBtn = h("button", { type: "button", text: "Disconnect" });
  const screen = h("div", { class: "term-screen", id: "terminal" });
  replace(
    main,
    h(
      "div",
      { class: "term-bar" },
      title,
      state,
      latency,
      h("span", { class: "spacer" }),
      copyBtn,
      pasteBtn,
      closeBtn,
    ),
    screen,
  );
  main.classList.add("term-main");

  // A steady cursor: a blinking one is a CSS animation, and while one runs Chromium defers the
  // echo of every key to the next frame (keys.js).
  const term = newTerminal({ disableStdin: observer, cursorBlink: false });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  fit.fit();
  globalThis.__term = term;

  const session = getSession();
  const params = { server_id: serverId, login, term: { w: term.cols, h: term.rows } };
  if (observer) Object.assign(params, { sid, mode: "observer" });
  let ended = false;
  const client = new TtyClient(ttyUrl(site, params), session?.token ?? "", {
    onReady() {
      state.textContent = observer ? "Observing" : "Connected";
      client.resize(term.cols, term.rows);
      term.focus();
    },
    onOutput(bytes) {
      term.write(bytes);
    },
    onSession(meta) {
      const id = meta.session?.sid ?? meta.session?.id ?? meta.sid;
      if (id && !observer) {
        title.textContent = `${login}@${serverId} · session ${id}`;
        screen.dataset.sid = id;
      }
    },
    onLatency(l) {
      if (typeof l.ws === "number") {
        latency.textContent = `${l.ws} ms${typeof l.ssh === "number" ? ` / ssh ${l.ssh} ms` : ""}`;
      }
    },
    onEnd({ exitCode, message, error }) {
      ended = true;
      const text = exitCode !== undefined
        ? `Session ended with exit code ${exitCode}.`
        : message ?? "Session ended.";
      state.textContent = text;
      state.className = `term-state ${error || (exitCode ?? 0) !== 0 ? "bad" : "done"}`;
      screen.dataset.ended = "true";
      if (exitCode !== undefined) screen.dataset.exitCode = String(exitCode);
      term.write(`\r\n\x1b[7m ${text} \x1b[0m\r\n`);
      closeBtn.textContent = "Close tab";
      pasteBtn.disabled = true;
    },
  });

  if (!observer) {
    term.onData((data) => client.send(data));
    term.onBinary((data) => client.send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  }
  term.onResize(({ cols, rows }) => client.resize(cols, rows));
  new ResizeObserver(() => fit.fit()).observe(screen);

  const copy = async () => {
    const text = term.getSelection();
    if (text) await navigator.clipboard.writeText(text).catch(() => {});
    term.focus();
  };
  const paste = async () => {
    if (observer || ended) return;
    const text = await navigator.clipboard.readText().catch(() => "");
    if (text) term.paste(text);
    term.focus();
  };
  // Ctrl+Shift+C copies; Ctrl+Shift+V pastes through the browser's own paste event. Plain
  // characters are sent from the keydown, without a change to the page (keys.js says why).
  const isMac = /Mac|iPhone|iPad/.test(navigator.platform ?? "");
  let afterDeadKey = false;
  term.attachCustomKeyEventHandler((ev) => {
    if (ev.type !== "keydown") return true;
    if (ev.ctrlKey && ev.shiftKey && ev.code === "KeyC") {
      copy();
      return false;
    }
    const text = observer || ended ? undefined : plainKeyText(ev, {
      isMac,
      afterDeadKey,
      screenReader: term.options.screenReaderMode,
    });
    afterDeadKey = ev.key === "Dead";
    if (text === undefined) return true;
    ev.preventDefault();
    term.input(text, true);
    return false;
  });
  copyBtn.addEventListener("click", copy);
  pasteBtn.addEventListener("click", paste);
  closeBtn.addEventListener("click", () => {
    if (ended) globalThis.close();
    else client.close();
  });
}
