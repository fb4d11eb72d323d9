// @ts-check
/**
 * @file "Export" in the chat header: the open conversation as a Markdown
 * or a JSON file, built in the browser from every page of
 * `GET /api/conversations/{id}` and handed over as a download. Each reply
 * carries the tool calls made while writing it (name, arguments, result or
 * error), in order.
 */

import { displayTitle } from "./sidebar.js";

/** @typedef {import("./protocol.js").StoredMessage} StoredMessage */
/** @typedef {import("./protocol.js").StoredToolCall} StoredToolCall */
/** @typedef {{ id: string, title: string, messages: StoredMessage[], tool_calls?: StoredToolCall[] }} FullConversation */

/**
 * The whole conversation: the server answers the newest page first, each
 * page oldest first; older pages come with `before=next_before`.
 * @param {import("./api.js").Api} api @param {string} id
 * @returns {Promise<FullConversation>}
 */
export async function fetchWhole(api, id) {
  let page = await api.getConversation(id);
  const { title } = page;
  let messages = page.messages;
  let toolCalls = page.tool_calls ?? [];
  /** @type {number | null | undefined} */
  let before = page.next_before;
  while (page.has_more && before != null) {
    page = await api.getConversation(id, before);
    messages = [...page.messages, ...messages];
    toolCalls = [...(page.tool_calls ?? []), ...toolCalls];
    // Never loop on a server that does not move back.
    if (page.next_before != null && page.next_before >= before) break;
    before = page.next_before;
  }
  return { id, title, messages, tool_calls: toolCalls };
}

/** The calls made while writing each reply, by reply id, in order. @param {FullConversation} conversation */
function callsByReply(conversation) {
  /** @type {Map<string, StoredToolCall[]>} */
  const calls = new Map();
  for (const call of conversation.tool_calls ?? []) {
    calls.set(call.message_id, [...(calls.get(call.message_id) ?? []), call]);
  }
  return calls;
}

/** A call as exported: what was called with what, and how it ended. @param {StoredToolCall} call */
function exportedCall({ name, arguments: args, result, error }) {
  return error ? { name, arguments: args, error } : { name, arguments: args, result };
}

/** A tool call as a Markdown block. @param {StoredToolCall} call */
function callMarkdown(call) {
  const json = (/** @type {unknown} */ value) => {
    const text = JSON.stringify(value, null, 2) ?? "null";
    // A fence longer than any run of backticks in the text, so it cannot end early.
    const fence = "`".repeat(Math.max(3, ...[...text.matchAll(/`+/g)].map((run) => run[0].length + 1)));
    return `${fence}json\n${text}\n${fence}`;
  };
  const outcome = call.error
    ? `Error: ${call.error.message} (${call.error.code})`
    : `Result:\n\n${json(call.result)}`;
  return `_Tool \`${call.name}\`_\n\nArguments:\n\n${json(call.arguments ?? {})}\n\n${outcome}`;
}

/** A file name from a title: no path or reserved characters, not empty. @param {string} title */
export function fileName(title) {
  const base = title
    .replace(/[\u0000-\u001f\u007f/\\:*?"<>|]+/g, " ")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^\.+|\.+$/g, "")
    .slice(0, 80)
    .trim();
  return base || "conversation";
}

const SPEAKERS = /** @type {Record<string, string>} */ ({ user: "You", assistant: "Assistant", tool: "Tool" });

/** @param {FullConversation} conversation */
export function toMarkdown(conversation) {
  const blocks = [`# ${displayTitle(conversation)}`];
  const calls = callsByReply(conversation);
  for (const message of conversation.messages) {
    const note = message.status === "complete" ? "" : ` _(${message.status})_`;
    const used = (calls.get(message.id) ?? []).map(callMarkdown);
    blocks.push([`**${SPEAKERS[message.sender] ?? message.sender}:**${note}`, ...used, message.content].join("\n\n"));
  }
  return `${blocks.join("\n\n")}\n`;
}

/** @param {FullConversation} conversation @param {Date} [now] */
export function toJson(conversation, now = new Date()) {
  const calls = callsByReply(conversation);
  const data = {
    id: conversation.id,
    title: conversation.title,
    exported_at: now.toISOString(),
    messages: conversation.messages.map(({ id, sender, content, status, created_at }) => {
      const used = calls.get(id);
      const message = { id, sender, content, status, created_at };
      return used ? { ...message, tool_calls: used.map(exportedCall) } : message;
    }),
  };
  return `${JSON.stringify(data, null, 2)}\n`;
}

/** Hand `text` to the browser as a file download. @param {string} text @param {string} name @param {string} type */
function download(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Wire the header's Export menu button and its two entries.
 * @param {{ button: HTMLButtonElement, menu: HTMLElement }} elements
 * @param {{ api: import("./api.js").Api, currentId: () => string | null, failed: (error: unknown) => void }} handlers
 */
export function wireExport({ button, menu }, { api, currentId, failed }) {
  const items = /** @type {HTMLButtonElement[]} */ ([...menu.querySelectorAll("button[data-format]")]);
  const toggle = (/** @type {boolean} */ open, focus = false) => {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) {
      for (const item of items) item.disabled = !currentId();
      items[0]?.focus();
    } else if (focus) {
      button.focus();
    }
  };
  button.addEventListener("click", () => toggle(menu.hidden));
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      toggle(false, true);
    }
  });
  document.addEventListener("click", (event) => {
    const target = /** @type {Node} */ (event.target);
    if (!menu.hidden && !menu.contains(target) && !button.contains(target)) toggle(false);
  });
  for (const item of items) {
    item.addEventListener("click", async () => {
      const id = currentId();
      toggle(false, true);
      if (!id) return;
      try {
        const conversation = await fetchWhole(api, id);
        const name = fileName(displayTitle(conversation));
        if (item.dataset.format === "json") download(toJson(conversation), `${name}.json`, "application/json");
        else download(toMarkdown(conversation), `${name}.md`, "text/markdown");
      } catch (error) {
        failed(error);
      }
    });
  }
}
