// The recording player: the session's terminal at its recorded size, play/pause, speed, seek.
import { api, sitePath } from "./api.js";
import { field, formatDuration, h, notice, replace } from "./dom.js";
import { newTerminal } from "./xterm_theme.js";

function bytesOf(b64) {
  const text = atob(b64 ?? "");
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

export async function render(main, { site, sid }) {
  document.title = `Recording ${sid} · Teleport`;
  const status = notice();
  replace(
    main,
    h("h1", { text: "Recording" }),
    h("p", { role: "status", text: "Loading the recording…" }),
  );
  let rec;
  try {
    rec = await api("GET", sitePath(site, `/recordings/${encodeURIComponent(sid)}`));
  } catch (err) {
    status.show(`Cannot load the recording: ${err.message}`);
    replace(main, h("h1", { text: "Recording" }), status.el);
    return;
  }
  const events = (rec.events ?? []).map((e) =>
    e.type === "print" ? { ...e, bytes: bytesOf(e.data) } : e
  );
  const duration = Math.max(Number(rec.durationMs) || 0, events.at(-1)?.ms ?? 0);
  const cols = rec.size?.cols || 80;
  const rows = rec.size?.rows || 24;

  const playBtn = h("button", { type: "button", class: "primary", text: "Play" });
  const speed = h(
    "select",
    { name: "speed" },
    [0.5, 1, 2, 4, 8, 16].map((s) => h("option", { value: s, text: `${s}×`, selected: s === 1 })),
  );
  const seek = h("input", {
    type: "range",
    name: "seek",
    min: 0,
    max: duration,
    step: 100,
    value: 0,
    "aria-label": "Position",
  });
  const clock = h("span", { class: "muted", "aria-live": "off" });
  const screen = h("div", { class: "player-screen", id: "player", "data-state": "paused" });
  replace(
    main,
    h("h1", {}, "Recording ", h("code", { text: sid })),
    h("div", { class: "player-bar" }, playBtn, field("Speed", speed), seek, clock),
    h("div", { class: "scroll" }, screen),
  );

  const term = newTerminal({ cols, rows, disableStdin: true, cursorBlink: false });
  term.open(screen);
  globalThis.__term = term;

  let pos = 0; // ms into the recording
  let next = 0; // index of the next event to apply
  let playing = false;
  let last = 0;

  const show = () => {
    seek.value = String(Math.floor(pos));
    clock.textContent = `${formatDuration(pos)} / ${formatDuration(duration)}`;
  };
  const applyUntil = (t) => {
    while (next < events.length && events[next].ms <= t) {
      const e = events[next++];
      if (e.type === "print") term.write(e.bytes);
      else if (e.type === "resize" && e.cols > 0 && e.rows > 0) term.resize(e.cols, e.rows);
    }
  };
  const setState = (s) => {
    screen.dataset.state = s;
    playBtn.textContent = s === "playing" ? "Pause" : s === "ended" ? "Replay" : "Play";
  };
  const frame = (now) => {
    if (!playing) return;
    pos = Math.min(duration, pos + (now - last) * Number(speed.value));
    last = now;
    applyUntil(pos);
    show();
    if (pos >= duration) {
      playing = false;
      // The last writes are parsed asynchronously: "ended" once xterm has them all.
      term.write("", () => setState("ended"));
      return;
    }
    requestAnimationFrame(frame);
  };
  const play = () => {
    if (pos >= duration) seekTo(0);
    playing = true;
    last = performance.now();
    setState("playing");
    requestAnimationFrame(frame);
  };
  const pause = () => {
    playing = false;
    setState("paused");
  };
  function seekTo(t) {
    if (t < pos || next === 0) {
      term.reset();
      term.resize(cols, rows);
      next = 0;
    }
    pos = t;
    applyUntil(pos);
    show();
    if (!playing) setState(pos >= duration ? "ended" : "paused");
  }
  playBtn.addEventListener("click", () => (playing ? pause() : play()));
  seek.addEventListener("input", () => seekTo(Number(seek.value)));
  show();
}
