// @ts-check
/**
 * @file Safe Markdown: text in, DOM nodes out.
 *
 * Model output is untrusted. This renderer never parses HTML: it builds
 * every element with `createElement` and puts text in with `textContent` /
 * text nodes, so `<img src=x onerror=...>` in a reply shows as those
 * characters. Links keep only `http:`, `https:` and `mailto:` targets (no
 * `javascript:`), and images are shown as links rather than fetched.
 *
 * Covered: paragraphs (single newlines are line breaks, as people expect in
 * chat), ATX headings, fenced code blocks (with a copy button; an unclosed
 * fence renders as code so streaming looks right), block quotes, ordered and
 * unordered (nested) lists, tables, rules, and inline code, bold, italic,
 * strikethrough, links and bare URLs.
 *
 * Code blocks are highlighted and TeX typeset (`$$…$$` and `\[…\]` display,
 * `\(…\)` and `$…$` inline) by vendored libraries through
 * code-highlight.js and math-render.js, which rebuild their output through
 * allowlists; until those load, or if they cannot, code stays plain and
 * math shows its source. Math inside code is never typeset.
 */

import { highlightInto } from "./code-highlight.js";
import { typesetInto } from "./math-render.js";
import { displayMath, MATH_BLOCK, matchMath } from "./math-syntax.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?: +|$)(.*)$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

/**
 * Render `source` as a fragment of safe DOM nodes.
 * @param {string} source
 * @param {Document} [doc]
 */
export function renderMarkdown(source, doc = document) {
  const fragment = doc.createDocumentFragment();
  blocks(source.replace(/\r\n?/g, "\n").split("\n"), fragment, doc);
  return fragment;
}

/**
 * @param {string} tag
 * @param {Document} doc
 * @param {string} [className]
 */
function el(tag, doc, className) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  return node;
}

/** @param {string} line */
const isBlank = (line) => line.trim() === "";

/** @param {string} line */
function startsBlock(line) {
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line) || MATH_BLOCK.test(line)
  );
}

/**
 * @param {string[]} lines
 * @param {Node} parent
 * @param {Document} doc
 */
function blocks(lines, parent, doc) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const [, marker, lang] = fence;
      const body = [];
      i += 1;
      while (i < lines.length && !isClosingFence(lines[i], marker)) body.push(lines[i++]);
      i += 1; // the closing fence (or past the end while still streaming)
      parent.appendChild(codeBlock(body.join("\n"), lang, doc));
      continue;
    }
    const math = MATH_BLOCK.test(line) ? displayMath(lines, i) : null;
    if (math) {
      const host = el("div", doc, "math math-display");
      host.textContent = lines.slice(i, math.next).join("\n");
      if (math.closed) typesetInto(host, math.tex, true, doc);
      parent.appendChild(host);
      i = math.next;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const h = el(`h${Math.min(heading[1].length + 2, 6)}`, doc);
      inline(heading[2], h, doc);
      parent.appendChild(h);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.appendChild(el("hr", doc));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && !isBlank(lines[i]) && (QUOTE.test(lines[i]) || !startsBlock(lines[i]))) {
        body.push(lines[i++].replace(QUOTE, ""));
      }
      const quote = el("blockquote", doc);
      blocks(body, quote, doc);
      parent.appendChild(quote);
      continue;
    }
    if (ITEM.test(line)) {
      i = list(lines, i, parent, doc);
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      i = table(lines, i, parent, doc);
      continue;
    }
    const body = [];
    while (i < lines.length && !isBlank(lines[i]) && !(body.length && startsBlock(lines[i]))) {
      body.push(lines[i++]);
    }
    const p = el("p", doc);
    inline(body.join("\n"), p, doc);
    parent.appendChild(p);
  }
}

/** @param {string} line @param {string} marker */
function isClosingFence(line, marker) {
  const trimmed = line.trim();
  return trimmed.length >= marker.length && trimmed[0] === marker[0] && /^(`+|~+)$/.test(trimmed);
}

/**
 * A code block with a header (language, copy button). The button is wired
 * by the view through event delegation, so re-rendering keeps it working.
 * @param {string} code
 * @param {string} lang
 * @param {Document} doc
 */
function codeBlock(code, lang, doc) {
  const wrap = el("div", doc, "code-block");
  const head = el("div", doc, "code-head");
  const label = el("span", doc, "code-lang");
  label.textContent = lang || "code";
  const copy = el("button", doc, "code-copy");
  copy.setAttribute("type", "button");
  copy.dataset.action = "copy-code";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", `Copy ${lang || "code"} to clipboard`);
  head.append(label, copy);
  const pre = el("pre", doc);
  const codeEl = el("code", doc);
  highlightInto(codeEl, code, lang, doc);
  pre.appendChild(codeEl);
  wrap.append(head, pre);
  return wrap;
}

/**
 * A list starting at `start`; returns the index after it. Items hold their
 * continuation lines (indented), rendered recursively, so lists nest.
 * @param {string[]} lines @param {number} start @param {Node} parent @param {Document} doc
 */
function list(lines, start, parent, doc) {
  const first = /** @type {RegExpExecArray} */ (ITEM.exec(lines[start]));
  const baseIndent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const listEl = el(ordered ? "ol" : "ul", doc);
  const startNumber = parseInt(first[2], 10);
  if (ordered && startNumber !== 1) listEl.setAttribute("start", String(startNumber));
  /** @type {string[][]} */
  const items = [];
  let loose = false;
  let i = start;
  while (i < lines.length) {
    const line = lines[i];
    const item = ITEM.exec(line);
    if (item && item[1].length <= baseIndent + 1 && /\d/.test(item[2]) === ordered) {
      items.push([item[3]]);
      i += 1;
      continue;
    }
    if (isBlank(line)) {
      const next = lines[i + 1];
      if (next !== undefined && (/^ {2,}\S/.test(next) || (ITEM.test(next) && /^ */.exec(next)?.[0].length === baseIndent))) {
        loose = true;
        items[items.length - 1].push("");
        i += 1;
        continue;
      }
      break;
    }
    const indented = /^ {2,}/.test(line);
    if (!indented && startsBlock(line)) break;
    // Continuation (indented, or lazy paragraph text).
    items[items.length - 1].push(line.replace(new RegExp(`^ {0,${baseIndent + 4}}`), ""));
    i += 1;
  }
  for (const body of items) {
    const li = el("li", doc);
    blocks(body, li, doc);
    // Tight lists: no paragraph margins inside items.
    if (!loose && li.firstChild?.nodeName === "P") {
      const p = /** @type {Element} */ (li.firstChild);
      while (p.firstChild) li.insertBefore(p.firstChild, p);
      p.remove();
    }
    listEl.appendChild(li);
  }
  parent.appendChild(listEl);
  return i;
}

/** @param {string} line */
function cells(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
  return text.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

/** @param {string[]} lines @param {number} start @param {Node} parent @param {Document} doc */
function table(lines, start, parent, doc) {
  const header = cells(lines[start]);
  const aligns = cells(lines[start + 1]).map((spec) =>
    spec.startsWith(":") && spec.endsWith(":") ? "center" : spec.endsWith(":") ? "right" : "",
  );
  const wrap = el("div", doc, "table-wrap");
  const tableEl = el("table", doc);
  const thead = el("thead", doc);
  const headRow = el("tr", doc);
  header.forEach((text, col) => headRow.appendChild(cell("th", text, aligns[col], doc)));
  thead.appendChild(headRow);
  const tbody = el("tbody", doc);
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
    const row = el("tr", doc);
    const values = cells(lines[i]);
    header.forEach((_, col) => row.appendChild(cell("td", values[col] ?? "", aligns[col], doc)));
    tbody.appendChild(row);
    i += 1;
  }
  tableEl.append(thead, tbody);
  wrap.appendChild(tableEl);
  parent.appendChild(wrap);
  return i;
}

/** @param {string} tag @param {string} text @param {string | undefined} align @param {Document} doc */
function cell(tag, text, align, doc) {
  const node = el(tag, doc);
  if (align) node.className = `align-${align}`;
  inline(text, node, doc);
  return node;
}

/**
 * A URL safe to link to, or null.
 * @param {string} raw
 */
export function safeUrl(raw) {
  try {
    const url = new URL(raw, "https://invalid.example/");
    if (!SAFE_PROTOCOLS.has(url.protocol) || url.hostname === "invalid.example") return null;
    return url.href;
  } catch {
    return null;
  }
}

/**
 * @param {string} text
 * @param {string | null} href
 * @param {Document} doc
 */
function link(text, href, doc) {
  if (!href) return doc.createTextNode(text);
  const a = el("a", doc);
  a.setAttribute("href", href);
  a.setAttribute("target", "_blank");
  a.setAttribute("rel", "noopener noreferrer nofollow");
  return a;
}

const ESCAPABLE = /[\\`*_{}[\]()#+\-.!~|>$]/;
const LINK = /^(!?)\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"\n]*")?\s*\)/;
const AUTOLINK = /^<((?:https?:\/\/|mailto:)[^>\s]+)>/;
const BARE_URL = /^https?:\/\/[^\s<]*[^\s<.,:;"')\]!?*_~]/;

/**
 * Inline Markdown into `parent`, as text nodes and a few safe elements.
 * @param {string} text @param {Node} parent @param {Document} doc
 */
function inline(text, parent, doc) {
  let buffer = "";
  const flush = () => {
    if (buffer) parent.appendChild(doc.createTextNode(buffer));
    buffer = "";
  };
  /** @type {Set<string>} closing math delimiters known to be absent, not to search again */
  const unclosed = new Set();
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    const rest = text.slice(i);
    const math = ch === "$" || ch === "\\" ? matchMath(text, i, unclosed) : null;
    if (math) {
      flush();
      const host = el("span", doc, math.display ? "math math-display" : "math math-inline");
      host.textContent = text.slice(i, math.next);
      typesetInto(host, math.tex, math.display, doc);
      parent.appendChild(host);
      i = math.next;
      continue;
    }
    if (ch === "\\" && ESCAPABLE.test(text[i + 1] ?? "")) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === "\n") {
      flush();
      parent.appendChild(el("br", doc));
      i += 1;
      continue;
    }
    if (ch === "`") {
      const run = /^`+/.exec(rest)?.[0] ?? "`";
      const close = findRun(text, "`", run.length, i + run.length);
      if (close !== -1) {
        flush();
        const code = el("code", doc);
        code.textContent = text.slice(i + run.length, close).replace(/^ (.*) $/s, "$1");
        parent.appendChild(code);
        i = close + run.length;
      } else {
        buffer += run;
        i += run.length;
      }
      continue;
    }
    if (ch === "*" || ch === "_" || ch === "~") {
      const emphasis = matchEmphasis(text, i);
      if (emphasis) {
        flush();
        const node = el(emphasis.tag, doc);
        inline(text.slice(emphasis.start, emphasis.end), node, doc);
        parent.appendChild(node);
        i = emphasis.next;
        continue;
      }
    }
    if (ch === "[" || (ch === "!" && text[i + 1] === "[")) {
      const match = LINK.exec(rest);
      if (match) {
        flush();
        const [whole, bang, label, target] = match;
        const a = link(label || target, safeUrl(target), doc);
        if (a.nodeType === 1) {
          if (bang) {
            a.textContent = `🖼 ${label || "image"}`;
            /** @type {Element} */ (a).classList.add("image-link");
          } else inline(label || target, a, doc);
        }
        parent.appendChild(a);
        i += whole.length;
        continue;
      }
    }
    if (ch === "<") {
      const match = AUTOLINK.exec(rest);
      if (match) {
        flush();
        const a = link(match[1], safeUrl(match[1]), doc);
        if (a.nodeType === 1) a.textContent = match[1];
        parent.appendChild(a);
        i += match[0].length;
        continue;
      }
    }
    if (ch === "h" && !/[\p{L}\p{N}]/u.test(text[i - 1] ?? "")) {
      const match = BARE_URL.exec(rest);
      if (match) {
        flush();
        const a = link(match[0], safeUrl(match[0]), doc);
        if (a.nodeType === 1) a.textContent = match[0];
        parent.appendChild(a);
        i += match[0].length;
        continue;
      }
    }
    buffer += ch;
    i += 1;
  }
  flush();
}

/**
 * Index of the next run of exactly `length` `char`s at or after `from`, or -1.
 * @param {string} text @param {string} char @param {number} length @param {number} from
 */
function findRun(text, char, length, from) {
  let i = text.indexOf(char, from);
  while (i !== -1) {
    let end = i;
    while (text[end] === char) end += 1;
    if (end - i === length) return i;
    i = text.indexOf(char, end);
  }
  return -1;
}

/**
 * `**strong**`, `__strong__`, `*em*`, `_em_`, `~~del~~` starting at `i`.
 * Delimiters must hug their text (`a * b * c` stays literal) and `_` must
 * not sit inside a word (`snake_case_name` stays literal).
 * @param {string} text @param {number} i
 * @returns {{ tag: string, start: number, end: number, next: number } | null}
 */
function matchEmphasis(text, i) {
  const ch = text[i];
  const double = text[i + 1] === ch;
  if (ch === "~" && !double) return null;
  const wordChar = /[\p{L}\p{N}]/u;
  for (const size of double ? [2, 1] : [1]) {
    const marker = ch.repeat(size);
    const start = i + size;
    if (!text[start] || /\s/.test(text[start]) || text[start] === ch) {
      if (size === 1) return null;
      continue;
    }
    if (ch === "_" && wordChar.test(text[i - 1] ?? "")) return null;
    let close = text.indexOf(marker, start + 1);
    while (close !== -1) {
      const before = text[close - 1];
      const after = text[close + size] ?? "";
      const hugs = !/\s/.test(before);
      const boundary = ch !== "_" || !wordChar.test(after);
      // A single marker must not be half of a double one.
      const exact = size === 2 || (text[close + 1] !== ch && before !== ch);
      if (hugs && boundary && exact && !text.slice(start, close).includes("\n\n")) {
        const tag = ch === "~" ? "del" : size === 2 ? "strong" : "em";
        return { tag, start, end: close, next: close + size };
      }
      close = text.indexOf(marker, close + 1);
    }
  }
  return null;
}
