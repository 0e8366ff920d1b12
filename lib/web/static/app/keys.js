// Typing without the browser's frame wait.
//
// Chromium (DeferRendererTasksAfterInput, on by default since about version 121) defers the
// page's network and message tasks after a key event that changes the page, until the next
// frame has been drawn. xterm.js lets plain characters reach its hidden textarea (it reads
// them from the keypress/input events), so each keystroke changes the page and the echo from
// the node, which arrives in about a millisecond, waits for the next frame (about 13 ms at 60
// Hz) before xterm even sees it; the echo is then drawn one frame later still. A keydown whose
// default is prevented changes nothing and defers nothing (measured in headless Chromium 156:
// keydown → echo in the buffer 13.7 ms → 1.1 ms; bench/web_terminal_latency.ts).
//
// So the terminal sends plain characters itself from the keydown and prevents its default;
// everything else (modifiers, dead keys, IME composition, keys xterm translates) keeps
// xterm's own path.

/**
 * The text a keydown types when it is a plain character the terminal may send at once, else
 * undefined (xterm handles the event as usual).
 *
 * @param {{type: string, key: string, ctrlKey: boolean, altKey: boolean, metaKey: boolean,
 *   isComposing?: boolean, keyCode?: number}} ev the keyboard event
 * @param {{isMac?: boolean, afterDeadKey?: boolean, screenReader?: boolean}} [o]
 *   isMac: macOS (upper-case letters go through keypress there: xterm's caps-lock fix for
 *   macOS input methods); afterDeadKey: the key before was a dead key (the composed character
 *   arrives through composition events); screenReader: xterm's screen reader mode (the
 *   textarea must receive the character so that it is read out)
 * @returns {string | undefined}
 */
export function plainKeyText(ev, o = {}) {
  if (ev.type !== "keydown" || o.screenReader || o.afterDeadKey) return undefined;
  if (ev.ctrlKey || ev.altKey || ev.metaKey) return undefined;
  // 229: the key belongs to an input method's composition.
  if (ev.isComposing || ev.keyCode === 229) return undefined;
  // One character (a code point): "a", "é", " ", "€" — not "Enter", "Dead", "Shift".
  const chars = [...(ev.key ?? "")];
  if (chars.length !== 1) return undefined;
  const code = chars[0].codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return undefined;
  if (o.isMac && code >= 65 && code <= 90) return undefined;
  return ev.key;
}
