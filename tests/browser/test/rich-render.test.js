// @ts-check
/**
 * @file Code highlighting (highlight.js) and math (KaTeX → MathML) in real
 * replies, served from the vendored files (scripts/vendor-web.sh): fenced
 * code gets highlight.js's spans, TeX becomes <math>, prices and code stay
 * text, a formula still streaming shows its source, markup smuggled into
 * code or TeX stays inert (also under a fuzzer), the colours pass axe in
 * both themes (screenshots in tests/artifacts/), and without the vendored
 * files the reply still reads.
 */

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { violations } from "../lib/axe.js";
import { artifactsDir } from "../lib/browser.js";
import { tokenize } from "../lib/fake-openai.js";
import { conversationId, deferred, sendMessage, startStack } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

const FINAL = ".msg-assistant[aria-busy=false] .msg-bubble";

const CODE_REPLY = [
  "In Rust:",
  "",
  "```rust",
  "fn main() {",
  '    let greeting = "hello"; // say it',
  '    println!("{greeting}");',
  "}",
  "```",
  "",
  "and in JavaScript:",
  "",
  "```js",
  "const total = [1, 2].reduce((a, b) => a + b, 0);",
  "```",
  "",
  "```",
  "no language, no colours",
  "```",
].join("\n");

const MATH_REPLY = [
  "The area under the curve:",
  "",
  "$$",
  "\\int_0^1 x^2 \\, dx = \\frac{1}{3}",
  "$$",
  "",
  "Pythagoras says \\(a^2 + b^2 = c^2\\), and Euler $e^{i\\pi} + 1 = 0$.",
  "",
  "\\[ \\sum_{k=1}^{n} k = \\frac{n(n+1)}{2} \\]",
  "",
  "Lunch costs $5 and dinner $10, not math.",
  "",
  "In code it stays TeX: `$x^2$` and",
  "",
  "```",
  "$$ y = mx + b $$",
  "```",
].join("\n");

test("fenced rust and js blocks are highlighted; an unlabelled one stays plain and copy gets the code", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply(CODE_REPLY);
  await sendMessage(page, "Hello world in two languages");
  await page.locator(`${FINAL} .code-block code .hljs-keyword`).first().waitFor();

  const blocks = await page.locator(`${FINAL} .code-block code`).evaluateAll((codes) =>
    codes.map((code) => ({
      text: code.textContent,
      keywords: [...code.querySelectorAll(".hljs-keyword")].map((span) => span.textContent),
      strings: [...code.querySelectorAll(".hljs-string")].map((span) => span.textContent),
      comments: [...code.querySelectorAll(".hljs-comment")].map((span) => span.textContent),
      spans: code.querySelectorAll("span").length,
    })),
  );
  assert.equal(blocks.length, 3);
  const [rust, js, plain] = blocks;
  assert.equal(rust.text, 'fn main() {\n    let greeting = "hello"; // say it\n    println!("{greeting}");\n}');
  assert.ok(rust.keywords.includes("fn") && rust.keywords.includes("let"), JSON.stringify(rust));
  assert.ok(rust.strings.includes('"hello"'), JSON.stringify(rust));
  assert.deepEqual(rust.comments, ["// say it"]);
  assert.equal(js.text, "const total = [1, 2].reduce((a, b) => a + b, 0);");
  assert.ok(js.keywords.includes("const"), JSON.stringify(js));
  assert.deepEqual(plain, { text: "no language, no colours", keywords: [], strings: [], comments: [], spans: 0 });

  // Highlighted text has its own colour, unlike the block's plain text.
  const colours = await page.locator(`${FINAL} .code-block code`).first().evaluate((code) => ({
    plain: getComputedStyle(code).color,
    keyword: getComputedStyle(/** @type {Element} */ (code.querySelector(".hljs-keyword"))).color,
  }));
  assert.notEqual(colours.keyword, colours.plain);

  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.locator(FINAL).getByRole("button", { name: "Copy rust to clipboard" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), rust.text);
  assert.deepEqual(errors, []);
  await context.close();
});

test("display and inline TeX render as MathML; prices and code stay text", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply(MATH_REPLY);
  await sendMessage(page, "Some math please");
  await page.locator(`${FINAL} .math-inline math`).first().waitFor();

  const found = await page.locator(FINAL).evaluate((bubble) => ({
    display: [...bubble.querySelectorAll(".math-display")].map((host) => ({
      block: host.querySelector("math")?.getAttribute("display"),
      fraction: host.querySelector("mfrac") !== null,
    })),
    inline: [...bubble.querySelectorAll(".math-inline")].map((host) => ({
      math: host.querySelector("math")?.namespaceURI,
      tex: host.querySelector("annotation")?.textContent,
    })),
    prices: [...bubble.querySelectorAll("p")].some((p) => p.textContent === "Lunch costs $5 and dinner $10, not math."),
    inCode: [...bubble.querySelectorAll("code")].map((code) => code.textContent),
    mathInCode: bubble.querySelectorAll("code math, pre math").length,
  }));
  assert.deepEqual(found.display, [
    { block: "block", fraction: true },
    { block: "block", fraction: true },
  ]);
  assert.deepEqual(found.inline, [
    { math: "http://www.w3.org/1998/Math/MathML", tex: "a^2 + b^2 = c^2" },
    { math: "http://www.w3.org/1998/Math/MathML", tex: "e^{i\\pi} + 1 = 0" },
  ]);
  assert.equal(found.prices, true, "dollar amounts are not math");
  assert.deepEqual(found.inCode, ["$x^2$", "$$ y = mx + b $$"]);
  assert.equal(found.mathInCode, 0);
  // Laid out by the browser as math: a fraction is taller than a line of text.
  const height = await page.locator(`${FINAL} .math-display math`).first().evaluate((m) => m.getBoundingClientRect().height);
  assert.ok(height > 20, `display formula ${height}px tall`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a formula still streaming shows its source, then becomes math when it closes", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const text = "Before.\n\n$$\n\\sum_{k=1}^{n} k^2 = \\frac{n(n+1)(2n+1)}{6}\n$$\n\nAfter **that**.";
  const tokens = tokenize(text);
  const closing = tokens.findLastIndex((token) => token.includes("$$"));
  const gate = deferred();
  stack.upstream.script({ tokens, before: (index) => (index === closing ? gate.promise : undefined) });
  await sendMessage(page, "Sum of squares");
  const streaming = ".msg-assistant[aria-busy=true] .msg-bubble";
  await page.locator(`${streaming} .math-display`, { hasText: "(2n+1)}{6}" }).waitFor();
  const partial = await page.locator(streaming).evaluate((bubble) => ({
    source: bubble.querySelector(".math-display")?.textContent,
    math: bubble.querySelectorAll("math").length,
    before: bubble.querySelector("p")?.textContent,
  }));
  assert.deepEqual(partial, {
    source: "$$\n\\sum_{k=1}^{n} k^2 = \\frac{n(n+1)(2n+1)}{6}",
    math: 0,
    before: "Before.",
  });
  gate.resolve();
  await page.locator(`${FINAL} .math-display math mfrac`).waitFor();
  assert.equal(await page.locator(`${FINAL} strong`).textContent(), "that", "what follows renders as Markdown");
  assert.deepEqual(errors, []);
  await context.close();
});

/** HTML elements and attributes the renderer itself creates. */
const HTML_TAGS = new Set([
  "a", "blockquote", "br", "button", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol",
  "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
]);
const HTML_ATTRIBUTES = new Set(["class", "href", "target", "rel", "type", "aria-label", "start", "title", "data-action"]);
/** MathML elements and attributes math-render.js lets through. */
const MATHML_TAGS = new Set([
  "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup",
  "mfrac", "msqrt", "mroot", "munder", "mover", "munderover", "mmultiscripts", "mprescripts", "none", "mtable",
  "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror",
]);
const MATHML_ATTRIBUTES = new Set([
  "display", "mathvariant", "displaystyle", "scriptlevel", "fence", "separator", "stretchy", "symmetric", "largeop",
  "movablelimits", "accent", "accentunder", "lspace", "rspace", "minsize", "maxsize", "form", "width", "height",
  "depth", "voffset", "linethickness", "columnalign", "columnspacing", "columnlines", "rowalign", "rowspacing",
  "rowlines", "frame", "framespacing", "notation", "encoding",
]);
const XHTML = "http://www.w3.org/1999/xhtml";
const MATHML = "http://www.w3.org/1998/Math/MathML";

/**
 * Why an element found in rendered output is not allowed, or null.
 * @param {{ tag: string, ns: string | null, attributes: string[], inCode?: boolean }} node
 */
function disallowed(node) {
  const html = node.ns === XHTML;
  if (!(html ? HTML_TAGS : MATHML_TAGS).has(node.tag) || (!html && node.ns !== MATHML)) return `<${node.tag}> (${node.ns})`;
  for (const attribute of node.attributes) {
    const [name] = attribute.split("=", 1);
    if (!(html ? HTML_ATTRIBUTES : MATHML_ATTRIBUTES).has(name)) return `<${node.tag} ${attribute}>`;
    if (name === "href" && !/^(https?|mailto):/i.test(attribute.slice(5))) return `<${node.tag} ${attribute}>`;
    if (node.inCode && node.tag === "span" && !/^class=(hljs-[a-z0-9-]+|[a-z]+_+)( (hljs-[a-z0-9-]+|[a-z]+_+))*$/.test(attribute)) {
      return `<span ${attribute}> in code`;
    }
  }
  return null;
}

/**
 * Every element under each root: tag, namespace, attributes, and whether it
 * sits in code. Runs in the page (Playwright's `evaluateAll`).
 * @param {Element[]} roots
 */
const inventory = (roots) =>
  roots.map((root) =>
    [...root.querySelectorAll("*")].map((node) => ({
      tag: node.localName,
      ns: node.namespaceURI,
      attributes: node.getAttributeNames().map((name) => `${name}=${node.getAttribute(name)}`),
      inCode: node.closest("code") !== null,
    })),
  );

const ATTACK_REPLY = [
  "$$\\href{javascript:alert('href')}{click}$$",
  "",
  "Inline \\(\\htmlClass{evil}{x} + \\htmlStyle{color:red}{y} + \\url{javascript:alert('url')}\\) and",
  "$\\text{<img src=x onerror=alert('text')>}$ and \\(<img src=x onerror=alert('raw')>\\) and",
  "$\\includegraphics{x.png} \\htmlData{onclick=alert(1)}{z}$.",
  "",
  "```html",
  "<img src=x onerror=alert('code')><script>alert('script')</script><a href=\"javascript:alert('a')\">a</a>",
  "```",
  "",
  "```js",
  "const s = \"</span><img src=x onerror=alert('js')>\"; // <b onmouseover=alert(1)>",
  "```",
].join("\n");

test("markup smuggled into code or TeX stays inert: only allowlisted elements, no handlers, no links", async () => {
  const token = await stack.token();
  const { page, context, errors, dialogs } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply(ATTACK_REPLY);
  await sendMessage(page, "Try to break out");
  await page.locator(`${FINAL} .hljs-keyword`).first().waitFor();
  await page.locator(`${FINAL} .math-inline math`).first().waitFor();
  const [nodes] = await page.locator(FINAL).evaluateAll(inventory);
  assert.deepEqual(nodes.map(disallowed).filter(Boolean), []);
  const text = (await page.locator(FINAL).textContent()) ?? "";
  assert.ok(text.includes("<img src=x onerror=alert('code')><script>"), "code shows the markup as text");
  assert.ok(text.includes("\\href"), "an untrusted TeX command shows as its name");
  assert.equal(await page.locator(`${FINAL} math`).count(), 5, "every formula is typeset, untrusted commands as their names");
  assert.equal(await page.locator("img, script:not([src]), [onerror], [onclick], [onmouseover]").count(), 0);
  await page.waitForTimeout(200); // an injected handler would have fired by now
  assert.deepEqual(dialogs, []);
  assert.deepEqual(errors, []);
  await context.close();
});

/** Pieces of TeX, code and prose a hostile or confused model might emit. */
const TEX = [
  "x^2", "_", "{", "}", "&", "%", "#", "\\frac{a}{b}", "\\sqrt[3]{x}", "\\mathbb{R}", "\\begin{matrix}a&b\\\\c&d\\end{matrix}",
  "\\left(", "\\right)", "\\color{red}{x}", "\\href{javascript:alert(1)}{x}", "\\url{javascript:x}", "\\htmlClass{a}{b}",
  "\\htmlStyle{color:red}{x}", "\\htmlId{x}{y}", "\\htmlData{onclick=x}{y}", "\\includegraphics{x.png}", "\\def\\a{\\a}\\a",
  "\\text{<img src=x onerror=alert(1)>}", "<img src=x onerror=alert(1)>", "<math><mi onclick=x>x</mi></math>", "</span>",
];
const CODE = [
  "fn main() {}", 'let s = "</code>";', "// <b onmouseover=alert(1)>", "<img src=x onerror=alert(1)>",
  "<script>alert(1)</script>", "<a href=javascript:x>x</a>", "</span><span class=x>", "$$x$$", "\\(y\\)", "\n", "`",
];
const NOISE = ["$", "$$", "\\(", "\\[", "\n", "\n\n", "**", "*", "`", "5 and ", "$5", "[x](javascript:y)", "```"];

const texPart = fc
  .array(fc.oneof(fc.constantFrom(...TEX), fc.string({ maxLength: 6 })), { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join(""));
const codePart = fc
  .array(fc.oneof(fc.constantFrom(...CODE), fc.string({ maxLength: 8 })), { maxLength: 8 })
  .map((parts) => parts.join(""));
const hostileReply = fc
  .array(
    fc.oneof(
      texPart.map((tex) => `$$${tex}$$`),
      texPart.map((tex) => `\\(${tex}\\)`),
      texPart.map((tex) => `$${tex}$`),
      texPart.map((tex) => `\n$$\n${tex}\n$$\n`),
      texPart.map((tex) => `\\[${tex}\\]`),
      fc.tuple(fc.constantFrom("rust", "js", "html", "python", ""), codePart).map(([lang, code]) => `\n\`\`\`${lang}\n${code}\n\`\`\`\n`),
      fc.constantFrom(...NOISE),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join(" "));

test("fuzzed code and TeX, with both libraries loaded, render only allowlisted inert nodes", async () => {
  const { page, errors } = await stack.page();
  await page.goto(`${stack.server.url}/`);
  const sources = fc.sample(hostileReply, { numRuns: 300, seed: 20261213 });
  const report = await page.evaluate(async (inputs) => {
    const { renderMarkdown } = await import("/markdown.js");
    const { preloadHighlighting } = await import("/code-highlight.js");
    const { preloadMath } = await import("/math-render.js");
    await Promise.all([...["rust", "js", "html", "python"].map(preloadHighlighting), preloadMath()]);
    const hosts = document.createElement("div");
    document.body.appendChild(hosts); // connected, as in the chat
    return inputs.map((source) => {
      const host = hosts.appendChild(document.createElement("div"));
      host.className = "fuzz-host";
      try {
        host.appendChild(renderMarkdown(source));
        return null;
      } catch (error) {
        return String(error);
      }
    });
  }, sources);
  const inventories = await page.locator(".fuzz-host").evaluateAll(inventory);

  assert.equal(inventories.length, sources.length);
  const all = inventories.flat();
  assert.ok(all.filter((node) => node.tag === "math").length > 100, "the fuzzer reached KaTeX");
  assert.ok(all.filter((node) => node.inCode && node.tag === "span").length > 100, "the fuzzer reached highlight.js");
  sources.forEach((source, index) => {
    assert.equal(report[index], null, `rendering threw for ${JSON.stringify(source)}`);
    assert.deepEqual(inventories[index].map(disallowed).filter(Boolean), [], `from ${JSON.stringify(source)}`);
  });
  assert.deepEqual(errors, []);
});

test("highlighted code and math pass axe (contrast included) in light and dark", async () => {
  const token = await stack.token();
  stack.upstream.reply(`${CODE_REPLY}\n\n${MATH_REPLY}`);
  let id = "";
  for (const colorScheme of /** @type {const} */ (["light", "dark"])) {
    const { page, context } = await stack.page({ token, colorScheme });
    await page.goto(`${stack.server.url}/${id ? `#/c/${id}` : ""}`);
    if (!id) {
      await sendMessage(page, "Code and math");
      id = await conversationId(page);
    }
    await page.locator(`${FINAL} .hljs-keyword`).first().waitFor();
    await page.locator(`${FINAL} .math-inline math`).first().waitFor();
    await page.mouse.move(0, 0);
    assert.deepEqual(await violations(page), [], colorScheme);
    await page.screenshot({ path: path.join(artifactsDir, `rich-${colorScheme}.png`), fullPage: true });
    await context.close();
  }
});

test("without the vendored files the reply still reads: plain code, TeX as typed", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.route("**/vendor/**", (route) => route.abort());
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply("```rust\nfn main() {}\n```\n\nInline \\(x^2\\) here.\n\n$$\n\\frac{1}{2}\n$$");
  await sendMessage(page, "No libraries");
  await page.locator(`${FINAL} .code-block`).waitFor();
  await page.waitForTimeout(300); // time for the (refused) modules to have loaded
  const shown = await page.locator(FINAL).evaluate((bubble) => ({
    code: bubble.querySelector("code")?.textContent,
    spans: bubble.querySelectorAll("code span").length,
    inline: bubble.querySelector(".math-inline")?.textContent,
    display: bubble.querySelector(".math-display")?.textContent,
    math: bubble.querySelectorAll("math").length,
  }));
  assert.deepEqual(shown, { code: "fn main() {}", spans: 0, inline: "\\(x^2\\)", display: "$$\n\\frac{1}{2}\n$$", math: 0 });
  // Only the refused requests themselves are logged; nothing throws.
  assert.deepEqual(errors.filter((error) => !/Failed to load resource/.test(error)), []);
  await context.close();
});

test("every grammar code-highlight.js knows is vendored, served and loads", async () => {
  const { page, context, errors } = await stack.page();
  await page.goto(`${stack.server.url}/`);
  const loaded = await page.evaluate(async () => {
    const { GRAMMARS, preloadHighlighting } = await import("/code-highlight.js");
    /** @type {Record<string, boolean>} */
    const result = {};
    for (const grammar of new Set(Object.values(GRAMMARS))) result[grammar] = await preloadHighlighting(grammar);
    return result;
  });
  assert.ok(Object.keys(loaded).length >= 20, Object.keys(loaded).join());
  assert.deepEqual(Object.entries(loaded).filter(([, ok]) => !ok), []);
  assert.deepEqual(errors, []);
  await context.close();
});
