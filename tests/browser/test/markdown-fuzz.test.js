// @ts-check
/**
 * @file Property test of the Markdown renderer (web/markdown.js) with
 * fast-check: whatever a model replies, mixing Markdown with HTML and
 * script-looking text, rendering never throws, finishes quickly, creates
 * only the renderer's own elements and attributes, and keeps every link on
 * http, https or mailto. Runs in the real page (Chromium's DOM).
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { startStack } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** Pieces a hostile or confused model might emit. */
const FRAGMENTS = [
  "**", "*", "_", "~~", "`", "```", "```js\n", "~~~", "\n", "\n\n", "> ", "- ", "1. ", "10) ", "# ", "###### ",
  "| a | b |\n", "|---|:-:|\n", "---\n", "[", "]", "(", ")", "![", "<", ">", "\\", "https://example.com/a_b",
  "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:x",
  "<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "<a href=javascript:x>x</a>", "\" onmouseover=\"x",
  "mailto:a@example.com", "<https://example.com>", "&lt;", "\u0000", "\u202e", "😀", "  ", "\t",
];

const hostileMarkdown = fc
  .array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 6 })), {
    maxLength: 60,
  })
  .map((parts) => parts.join(""));

const ALLOWED_TAGS = new Set([
  "A", "BLOCKQUOTE", "BR", "BUTTON", "CODE", "DEL", "DIV", "EM", "H1", "H2", "H3", "H4", "H5", "H6", "HR", "LI", "OL", "P",
  "PRE", "SPAN", "STRONG", "TABLE", "TBODY", "TD", "TH", "THEAD", "TR", "UL",
]);
const ALLOWED_ATTRIBUTES = new Set(["class", "href", "target", "rel", "type", "aria-label", "start", "title", "data-action"]);

test("any model output renders to the renderer's own inert elements only", async () => {
  const { page, errors } = await stack.page();
  await page.goto(`${stack.server.url}/`);
  const inputs = fc.sample(hostileMarkdown, { numRuns: 400, seed: 20261201 });
  const report = await page.evaluate(async (sources) => {
    const { renderMarkdown } = await import("/markdown.js");
    /** @type {{ source: string, tags: string[], attributes: string[], hrefs: string[], millis: number, error?: string }[]} */
    const results = [];
    for (const source of sources) {
      const started = performance.now();
      try {
        const host = document.createElement("div");
        host.appendChild(renderMarkdown(source));
        const elements = [...host.querySelectorAll("*")];
        results.push({
          source,
          tags: elements.map((node) => node.tagName),
          attributes: elements.flatMap((node) => node.getAttributeNames()),
          hrefs: elements.filter((node) => node.hasAttribute("href")).map((node) => node.getAttribute("href") ?? ""),
          millis: performance.now() - started,
        });
      } catch (error) {
        results.push({ source, tags: [], attributes: [], hrefs: [], millis: 0, error: String(error) });
      }
    }
    return results;
  }, inputs);

  assert.equal(report.length, inputs.length);
  for (const result of report) {
    assert.equal(result.error, undefined, `rendering threw for ${JSON.stringify(result.source)}`);
    for (const tag of result.tags) assert.ok(ALLOWED_TAGS.has(tag), `unexpected <${tag}> from ${JSON.stringify(result.source)}`);
    for (const name of result.attributes) {
      assert.ok(ALLOWED_ATTRIBUTES.has(name), `unexpected attribute ${name} from ${JSON.stringify(result.source)}`);
    }
    for (const href of result.hrefs) {
      assert.match(href, /^(https?:|mailto:)/, `unsafe link ${href} from ${JSON.stringify(result.source)}`);
    }
  }
  // Printed, not asserted (the machine is shared): a catastrophic regex
  // would show here as seconds.
  const slowest = report.reduce((worst, result) => (result.millis > worst.millis ? result : worst), report[0]);
  console.log(`markdown fuzz: ${report.length} inputs, slowest ${slowest.millis.toFixed(1)} ms`);
  assert.deepEqual(errors, []);
});
