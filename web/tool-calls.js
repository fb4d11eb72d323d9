// @ts-check
/**
 * @file The tool calls of a reply, drawn inline above its text: a running
 * call shows its name and a spinner; an ended one is a `<details>` whose
 * summary says how it went and whose body holds the arguments and the
 * result (or the error). Arguments come from the model and results from
 * the tool: they are untrusted, so they only ever become text nodes.
 *
 * The chat view redraws a message by replacing its children, so the
 * caller keeps which calls are expanded (`open`) across redraws; each
 * summary carries `data-focus-key`, which the view uses to keep keyboard
 * focus on it through a redraw.
 */

/** @typedef {import("./conversation-state.js").ToolRun} ToolRun */

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A value as readable text: strings as they are, anything else as indented JSON. @param {unknown} value */
export function toolValueText(value) {
  if (typeof value === "string") return value;
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** @param {number} ms */
function duration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

/** What the summary (and a screen reader) says about a call. @param {ToolRun} tool */
export function toolSummary(tool) {
  if (tool.status === "running") return `Running ${tool.name}…`;
  const took = tool.durationMs === undefined ? "" : ` in ${duration(tool.durationMs)}`;
  if (tool.status === "failed") return `${tool.name} failed${took}`;
  return `Used ${tool.name}${took}`;
}

/**
 * The words a polite live region reads when a call starts or ends.
 * @param {ToolRun} tool
 */
export function toolAnnouncement(tool) {
  if (tool.status === "running") return `Running tool ${tool.name}.`;
  if (tool.status === "failed") return `Tool ${tool.name} failed: ${tool.error?.message ?? "error"}.`;
  return `Tool ${tool.name} finished.`;
}

/**
 * A labelled block of preformatted text.
 * @param {string} label @param {string} text @param {string} [className]
 */
function section(label, text, className = "") {
  const box = h("div", `tool-section ${className}`.trim());
  const pre = h("pre", "tool-value");
  pre.appendChild(h("code", "", text));
  box.append(h("p", "tool-label", label), pre);
  return box;
}

/**
 * One call: running, or ended (collapsible).
 * @param {ToolRun} tool
 * @param {Set<string>} open ids of the calls the user expanded (kept up to date here)
 */
function renderCall(tool, open) {
  const item = h("li", `tool-call ${tool.status}`);
  item.dataset.callId = tool.id;
  if (tool.status === "running") {
    const spinner = h("span", "tool-spinner");
    spinner.setAttribute("aria-hidden", "true");
    item.append(spinner, h("span", "tool-status", toolSummary(tool)));
    return item;
  }
  const details = /** @type {HTMLDetailsElement} */ (h("details", "tool-details"));
  details.open = open.has(tool.id);
  details.addEventListener("toggle", () => {
    if (details.open) open.add(tool.id);
    else open.delete(tool.id);
  });
  const summary = h("summary", "tool-summary");
  summary.dataset.focusKey = `tool:${tool.id}`;
  const mark = h("span", "tool-dot");
  mark.setAttribute("aria-hidden", "true");
  summary.append(mark, h("span", "tool-status", toolSummary(tool)));
  const body = h("div", "tool-body");
  body.appendChild(section("Arguments", toolValueText(tool.arguments ?? {})));
  if (tool.status === "failed") {
    const error = tool.error ?? { code: "error", message: "The tool failed." };
    body.appendChild(section("Error", `${error.message} (${error.code})`, "tool-error"));
  } else if (tool.result !== undefined) {
    body.appendChild(section("Result", toolValueText(tool.result)));
  } else {
    body.appendChild(h("p", "tool-label", "No result: the reply ended first."));
  }
  details.append(summary, body);
  item.appendChild(details);
  return item;
}

/**
 * The list of a reply's tool calls, in the order they started.
 * @param {ToolRun[]} tools
 * @param {Set<string>} open ids of the calls the user expanded
 */
export function renderToolCalls(tools, open) {
  const list = h("ul", "msg-tools");
  list.setAttribute("aria-label", "Tool calls");
  for (const tool of tools) list.appendChild(renderCall(tool, open));
  return list;
}
