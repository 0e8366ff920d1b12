// Small DOM helpers: every text goes in through textContent, never innerHTML.

/**
 * Creates an element. `attrs` keys: `class`, `text`, `on<event>` (listener), `hidden` and the
 * other booleans, anything else as an attribute. Children are nodes or strings.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
}

/** A labelled form field (`<label>` wrapping the text and the control). */
export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { text: label }), control, hint);
}

/** A status line for errors and notices (announced by screen readers). */
export function notice() {
  const el = h("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
  return {
    el,
    show(text, kind = "error") {
      el.textContent = text;
      el.className = `notice ${kind}`;
      el.hidden = false;
    },
    hide() {
      el.hidden = true;
    },
  };
}

/** `2026-12-04 21:35:07` in the browser's time zone. */
export function formatTime(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value ?? "");
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `1:05` or `1:02:03` for a duration in milliseconds. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const s = total % 60;
  const m = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  const mm = hours > 0 ? String(m).padStart(2, "0") : String(m);
  return `${hours > 0 ? hours + ":" : ""}${mm}:${String(s).padStart(2, "0")}`;
}

/** A value for `<input type="datetime-local">` from a Date. */
export function toLocalInput(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** Prev/next buttons for cursor pagination; `onPage(startKey)` loads a page. */
export function pager(onPage) {
  const keys = [""]; // startKey of each page seen so far; the last is the current page's
  let next = "";
  const prev = h("button", { type: "button", text: "Previous", disabled: true });
  const nextBtn = h("button", { type: "button", text: "Next", disabled: true });
  const info = h("span", { class: "muted" });
  prev.addEventListener("click", () => {
    if (keys.length < 2) return;
    keys.pop();
    onPage(keys[keys.length - 1]);
  });
  nextBtn.addEventListener("click", () => {
    if (!next) return;
    keys.push(next);
    onPage(next);
  });
  return {
    el: h("nav", { class: "pager", "aria-label": "Pages" }, prev, info, nextBtn),
    /** Call after each load with the answer's startKey (empty on the last page). */
    update(startKey, text) {
      next = startKey || "";
      prev.disabled = keys.length < 2;
      nextBtn.disabled = next === "";
      info.textContent = `Page ${keys.length}${text ? " · " + text : ""}`;
    },
    /** Back to the first page (filters changed). */
    reset() {
      keys.length = 1;
      next = "";
    },
    get current() {
      return keys[keys.length - 1];
    },
  };
}
