// @ts-check
/**
 * @file Light and dark themes: the system's preference by default, or the
 * one picked in the settings. The stylesheet keys off `html[data-theme]`,
 * falling back to `prefers-color-scheme`.
 */

/** @param {"system" | "light" | "dark"} mode */
export function applyTheme(mode) {
  const root = document.documentElement;
  if (mode === "system") delete root.dataset.theme;
  else root.dataset.theme = mode;
}
