// @ts-check
/**
 * @file Syntax highlighting of fenced code blocks with highlight.js
 * (vendored core plus one grammar per language, each loaded the first time
 * a block in that language is shown). The language comes from the fence
 * (```rust); nothing is guessed, so an unlabelled block stays plain.
 *
 * highlight.js escapes the code it wraps; its output is still rebuilt
 * through an allowlist (only `<span class="hljs-…">`), so a grammar bug can
 * never turn code into markup. The colours live in style.css.
 */

import { LazyModule, NodeCache, rebuildHtml } from "./vendor-output.js";

/**
 * The part of highlight.js used here.
 * @typedef {{
 *   registerLanguage(name: string, grammar: unknown): void,
 *   highlight(code: string, options: { language: string, ignoreIllegals: boolean }): { value: string },
 * }} HighlightJs
 */

/** Fence labels → the vendored grammar file (web-vendor/checksums.sha256 lists them). */
export const GRAMMARS = /** @type {Record<string, string>} */ ({
  bash: "bash", sh: "bash", shell: "bash", zsh: "bash", console: "bash",
  c: "c", h: "c",
  cpp: "cpp", "c++": "cpp", cc: "cpp", hpp: "cpp",
  cs: "csharp", csharp: "csharp", "c#": "csharp",
  css: "css",
  diff: "diff", patch: "diff",
  dockerfile: "dockerfile", docker: "dockerfile",
  go: "go", golang: "go",
  ini: "ini", toml: "ini",
  java: "java",
  js: "javascript", javascript: "javascript", jsx: "javascript", mjs: "javascript", cjs: "javascript",
  json: "json", jsonc: "json",
  kotlin: "kotlin", kt: "kotlin",
  md: "markdown", markdown: "markdown",
  php: "php",
  py: "python", python: "python", python3: "python",
  rb: "ruby", ruby: "ruby",
  rs: "rust", rust: "rust",
  sql: "sql",
  swift: "swift",
  ts: "typescript", typescript: "typescript", tsx: "typescript",
  html: "xml", xml: "xml", svg: "xml", xhtml: "xml",
  yaml: "yaml", yml: "yaml",
});

const VENDOR = new URL("./vendor/highlight/es/", import.meta.url).href;

/** @type {Map<string, LazyModule<HighlightJs>>} one per grammar */
const loaders = new Map();
const cache = new NodeCache(60);

/** highlight.js's class names: `hljs-keyword`, and suffixes like `function_`. */
const HLJS_CLASS = /^(?:hljs-[a-z0-9-]+|[a-z]+_+)$/;

/** @type {import("./vendor-output.js").Allow} */
function allowSpans(element) {
  if (element.localName !== "span") return null;
  const classes = (element.getAttribute("class") ?? "").split(/\s+/).filter(Boolean);
  if (!classes.length || !classes.every((name) => HLJS_CLASS.test(name))) return null;
  return { ns: "http://www.w3.org/1999/xhtml", name: "span", attributes: (name) => name === "class" };
}

/** @param {string} grammar */
function loader(grammar) {
  let lazy = loaders.get(grammar);
  if (!lazy) {
    lazy = new LazyModule(async () => {
      const [{ default: hljs }, { default: definition }] = await Promise.all([
        import(`${VENDOR}core.min.js`),
        import(`${VENDOR}languages/${grammar}.min.js`),
      ]);
      /** @type {HighlightJs} */ (hljs).registerLanguage(grammar, definition);
      return /** @type {HighlightJs} */ (hljs);
    });
    loaders.set(grammar, lazy);
  }
  return lazy;
}

/**
 * The vendored grammar for a fence label (`Rust`, `rust,ignore`, `{.rs}`), if any.
 * @param {string} label
 */
export function grammarFor(label) {
  const name = /[a-z0-9+#-]+/.exec(label.toLowerCase())?.[0] ?? "";
  return Object.hasOwn(GRAMMARS, name) ? GRAMMARS[name] : null;
}

/**
 * Load the highlighter for a fence label, to warm up before a render;
 * resolves to whether it is ready (false: unknown label, or it failed to load).
 * @param {string} label
 */
export async function preloadHighlighting(label) {
  const grammar = grammarFor(label);
  return grammar !== null && (await loader(grammar).ready()) !== undefined;
}

/**
 * Fill `codeEl` with `code`, highlighted as the fence's language when that
 * grammar is vendored: at once when it is loaded, else as plain text now
 * and highlighted in place once it arrives.
 * @param {HTMLElement} codeEl @param {string} code @param {string} label @param {Document} doc
 */
export function highlightInto(codeEl, code, label, doc) {
  codeEl.textContent = code;
  const grammar = grammarFor(label);
  if (!grammar || !code) return;
  const lazy = loader(grammar);
  const paint = () => {
    const hljs = lazy.now();
    if (!hljs) return false;
    const highlighted = cache.get(`${grammar}\n${code}`, () => {
      try {
        return rebuildHtml(hljs.highlight(code, { language: grammar, ignoreIllegals: true }).value, allowSpans, doc);
      } catch {
        return null; // a grammar that throws leaves the code plain
      }
    });
    if (highlighted) codeEl.replaceChildren(highlighted);
    return true;
  };
  if (!paint()) lazy.later(() => codeEl.isConnected && paint());
}
