// @ts-check
/**
 * @file axe-core (from node_modules, no CDN) run in a page: the serious and
 * critical violations, one line each, so tests can assert there are none.
 */

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Promise<string> | undefined} */
let axeSource;

/**
 * Serious and critical axe violations on the page as it is now.
 * @param {Page} page
 * @returns {Promise<string[]>}
 */
export async function violations(page) {
  axeSource ??= readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  // Evaluated, not a <script> tag: the page's Content-Security-Policy allows no inline scripts.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(await axeSource);
  const results = await page.evaluate(() =>
    /** @type {any} */ (window).axe.run(document, { resultTypes: ["violations"] }),
  );
  return results.violations
    .filter((/** @type {any} */ v) => v.impact === "serious" || v.impact === "critical")
    .map((/** @type {any} */ v) => `${v.id} (${v.impact}): ${v.nodes.map((/** @type {any} */ n) => n.target.join(" ")).join(", ")}`);
}
