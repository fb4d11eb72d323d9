// @ts-check
/**
 * @file Where math is in Markdown text, the way chat models write it (and
 * Open WebUI and ChatGPT read it): `$$…$$` and `\[…\]` for display,
 * `\(…\)` and `$…$` inline. Only the delimiters are found here; the
 * renderer (markdown.js) never looks for math inside code, and
 * math-render.js typesets what is found.
 */

/** A display-math block opens with `$$` or `\[` at the start of a line. */
export const MATH_BLOCK = /^ {0,3}(\$\$|\\\[)/;
/** How far a display-math block may run before it counts as prose. */
const MATH_BLOCK_MAX_LINES = 400;

/**
 * The display-math block opening at `lines[start]`: its TeX, whether it is
 * closed yet, and the index after it; null when the lines read as prose
 * (text after the closing delimiter, or an opener with text and no end).
 * A bare opener with no end yet is still streaming: the block runs to the
 * end, shown as source until it closes.
 * @param {string[]} lines @param {number} start
 * @returns {{ tex: string, closed: boolean, next: number } | null}
 */
export function displayMath(lines, start) {
  const open = /** @type {RegExpExecArray} */ (MATH_BLOCK.exec(lines[start]));
  const closer = open[1] === "$$" ? "$$" : "\\]";
  const first = lines[start].slice(open[0].length);
  const body = [];
  const end = Math.min(lines.length, start + MATH_BLOCK_MAX_LINES);
  for (let j = start; j < end; j += 1) {
    const text = j === start ? first : lines[j];
    const at = text.indexOf(closer);
    if (at === -1) {
      body.push(text);
      continue;
    }
    body.push(text.slice(0, at));
    const tex = body.join("\n");
    if (text.slice(at + closer.length).trim() !== "" || tex.trim() === "") return null;
    return { tex, closed: true, next: j + 1 };
  }
  return first.trim() === "" && end === lines.length ? { tex: "", closed: false, next: end } : null;
}

/** Math delimiters, tried in order: [open, close, display]. */
const MATH_DELIMITERS = /** @type {const} */ ([
  ["$$", "$$", true],
  ["\\[", "\\]", true],
  ["\\(", "\\)", false],
]);

/**
 * Inline math starting at `i`. `$…$` follows Pandoc's rule so that prices
 * stay text ("$5 and $10"): the opening `$` is followed by a non-space, and
 * the next unescaped `$` on the line closes only if it is preceded by a
 * non-space and not followed by a digit; otherwise this `$` is text. (Taking
 * a later `$` instead would swallow "$5 and $10 … $x$" whole.)
 * @param {string} text @param {number} i
 * @param {Set<string>} unclosed closing delimiters known to be absent from `text` after `i`
 * @returns {{ tex: string, display: boolean, next: number } | null}
 */
export function matchMath(text, i, unclosed) {
  for (const [open, close, display] of MATH_DELIMITERS) {
    if (!text.startsWith(open, i)) continue;
    const start = i + open.length;
    const end = unclosed.has(close) ? -1 : text.indexOf(close, start);
    if (end === -1) unclosed.add(close);
    if (end === -1 || text.slice(start, end).trim() === "") return null;
    return { tex: text.slice(start, end), display, next: end + close.length };
  }
  if (text[i] !== "$" || text[i - 1] === "$" || !/[^\s$]/.test(text[i + 1] ?? " ")) return null;
  let end = text.indexOf("$", i + 2);
  while (end !== -1 && text[end - 1] === "\\") end = text.indexOf("$", end + 1);
  if (end === -1 || text.slice(i, end).includes("\n")) return null;
  if (/\s/.test(text[end - 1]) || /[\d$]/.test(text[end + 1] ?? "")) return null;
  return { tex: text.slice(i + 1, end), display: false, next: end + 1 };
}
