// @ts-check
/**
 * @file Light and dark themes: the system's preference by default, or the
 * one the user picked (remembered). The stylesheet keys off
 * `html[data-theme]`, falling back to `prefers-color-scheme`.
 */

import { icon } from "./icons.js";

const KEY = "colloquy.theme";
/** @type {readonly ("system" | "light" | "dark")[]} */
const MODES = ["system", "light", "dark"];
/** @type {Record<"system" | "light" | "dark", import("./icons.js").IconName>} */
const ICON = { system: "system", light: "sun", dark: "moon" };

/** @returns {"system" | "light" | "dark"} */
function stored() {
  try {
    const value = globalThis.localStorage?.getItem(KEY);
    return value === "light" || value === "dark" ? value : "system";
  } catch {
    return "system";
  }
}

/** @param {"system" | "light" | "dark"} mode @param {HTMLButtonElement} button */
function apply(mode, button) {
  const root = document.documentElement;
  if (mode === "system") delete root.dataset.theme;
  else root.dataset.theme = mode;
  const next = MODES[(MODES.indexOf(mode) + 1) % MODES.length];
  button.replaceChildren(icon(ICON[mode], 18));
  button.setAttribute("aria-label", `Theme: ${mode}. Switch to ${next}`);
  button.title = `Theme: ${mode}`;
}

/** Apply the remembered theme and make `button` cycle system → light → dark. */
export function initTheme(/** @type {HTMLButtonElement} */ button) {
  let mode = stored();
  apply(mode, button);
  button.addEventListener("click", () => {
    mode = MODES[(MODES.indexOf(mode) + 1) % MODES.length];
    try {
      globalThis.localStorage?.setItem(KEY, mode);
    } catch {
      // Not remembered; still applied.
    }
    apply(mode, button);
  });
}
