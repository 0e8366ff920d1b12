// xterm.js options shared by the terminal and the player: colors follow the page's scheme.
import { Terminal } from "./vendor/xterm.mjs";

const DARK = {
  background: "#101418",
  foreground: "#e6e6e6",
  cursor: "#e6e6e6",
  selectionBackground: "#3a5a80",
};
const LIGHT = {
  background: "#ffffff",
  foreground: "#1d1f21",
  cursor: "#1d1f21",
  selectionBackground: "#b3d4fc",
};

/** A new xterm.js Terminal with our font and the theme of the current color scheme. */
export function newTerminal(options = {}) {
  const dark = matchMedia("(prefers-color-scheme: dark)");
  const term = new Terminal({
    fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
    fontSize: 14,
    scrollback: 1000,
    theme: dark.matches ? DARK : LIGHT,
    ...options,
  });
  dark.addEventListener("change", () => {
    term.options.theme = dark.matches ? DARK : LIGHT;
  });
  return term;
}
