// @ts-check
/**
 * @file TeX to MathML with KaTeX (vendored, loaded the first time a reply
 * holds math). KaTeX writes MathML only (`output: "mathml"`): Chromium,
 * Firefox and Safari lay MathML out natively, so no KaTeX stylesheet or
 * fonts are needed and nothing relies on inline styles, which the page's
 * Content-Security-Policy forbids.
 *
 * KaTeX runs untrusted (`trust: false`: no \href, \url, \includegraphics or
 * \html… commands) with small size and macro-expansion limits, and its
 * output is rebuilt through an allowlist of MathML elements and
 * presentation attributes. A formula KaTeX cannot parse stays as its source.
 */

import { LazyModule, NodeCache, rebuildHtml } from "./vendor-output.js";

/**
 * The part of KaTeX used here.
 * @typedef {{ renderToString(tex: string, options: Record<string, unknown>): string }} Katex
 */

const MATHML = "http://www.w3.org/1998/Math/MathML";

/** What KaTeX's MathML writer emits (and a few close relatives). */
const ELEMENTS = new Set([
  "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup",
  "mfrac", "msqrt", "mroot", "munder", "mover", "munderover", "mmultiscripts", "mprescripts", "none", "mtable",
  "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror",
]);
/** Layout attributes only: nothing that links, loads, styles or colours. */
const ATTRIBUTES = new Set([
  "display", "mathvariant", "displaystyle", "scriptlevel", "fence", "separator", "stretchy", "symmetric", "largeop",
  "movablelimits", "accent", "accentunder", "lspace", "rspace", "minsize", "maxsize", "form", "width", "height",
  "depth", "voffset", "linethickness", "columnalign", "columnspacing", "columnlines", "rowalign", "rowspacing",
  "rowlines", "frame", "framespacing", "notation", "encoding",
]);
/** Lengths, keywords, alignments and `application/x-tex`; no URLs, no functions. */
const VALUE = /^[\w .%+/-]{0,80}$/;

const katex = new LazyModule(async () => {
  const module = await import(new URL("./vendor/katex/dist/katex.mjs", import.meta.url).href);
  return /** @type {Katex} */ (module.default);
});
const cache = new NodeCache(200);

/** @type {import("./vendor-output.js").Allow} */
function allowMathMl(element) {
  if (element.namespaceURI !== MATHML) {
    // KaTeX's own wrapper: keep what it wraps.
    return element.localName === "span" && element.classList.contains("katex") ? "children" : null;
  }
  if (!ELEMENTS.has(element.localName)) return null;
  return { ns: MATHML, name: element.localName, attributes: (name, value) => ATTRIBUTES.has(name) && VALUE.test(value) };
}

/** Load KaTeX; resolves once it is ready (or failed to load). */
export async function preloadMath() {
  await katex.ready();
}

/**
 * `<math>` for `tex`, or null when KaTeX rejects it.
 * @param {Katex} engine @param {string} tex @param {boolean} display @param {Document} doc
 */
function typeset(engine, tex, display, doc) {
  try {
    const html = engine.renderToString(tex, {
      displayMode: display,
      output: "mathml",
      throwOnError: true,
      trust: false,
      strict: "ignore",
      maxSize: 20,
      maxExpand: 300,
    });
    const fragment = rebuildHtml(html, allowMathMl, doc);
    const math = fragment.firstChild;
    return math?.nodeName.toLowerCase() === "math" && fragment.childNodes.length === 1 ? math : null;
  } catch {
    return null;
  }
}

/**
 * Show `tex` as typeset math in `host`, which holds the formula's source as
 * text: at once when KaTeX is loaded, else when it arrives.
 * @param {HTMLElement} host @param {string} tex @param {boolean} display @param {Document} doc
 */
export function typesetInto(host, tex, display, doc) {
  const paint = () => {
    const engine = katex.now();
    if (!engine) return false;
    const math = cache.get(`${display ? "D" : "I"}${tex}`, () => typeset(engine, tex, display, doc));
    if (math) host.replaceChildren(math);
    return true;
  };
  if (!paint()) katex.later(() => host.isConnected && paint());
}
