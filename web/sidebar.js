// @ts-check
/**
 * @file The conversation list: newest first, grouped by day, with inline
 * rename and delete. Titles are user (or model-derived) text and only ever
 * go into the page as text.
 */

import { icon } from "./icons.js";

/** @typedef {import("./api.js").ConversationSummary} ConversationSummary */

/**
 * @typedef {object} SidebarHandlers
 * @property {(id: string) => void} open
 * @property {(id: string, title: string) => Promise<void>} rename
 * @property {(id: string, title: string) => void} remove
 */

/** @param {Date} date @param {Date} now */
function groupOf(date, now) {
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const day = 86_400_000;
  const t = date.getTime();
  if (t >= startOfToday) return "Today";
  if (t >= startOfToday - day) return "Yesterday";
  if (t >= startOfToday - 7 * day) return "Previous 7 days";
  if (t >= startOfToday - 30 * day) return "Previous 30 days";
  return "Older";
}

/**
 * Whether a conversation belongs in the list: something was said in it (or
 * someone named it). The server now stores a conversation with its first
 * message, but servers before that stored one per socket opened, and their
 * empty rows are still in older databases: they stay unlisted.
 * @param {ConversationSummary} conversation
 */
export const worthListing = (conversation) => conversation.last_seq > 0 || conversation.title.trim() !== "";

/** A conversation's name as shown (untitled ones get a placeholder). */
export const displayTitle = (/** @type {{ title: string }} */ c) => c.title.trim() || "New chat";

export class Sidebar {
  /** @type {ConversationSummary[]} */
  conversations = [];
  /** @type {string | null} */
  activeId = null;
  /** @type {string | null} */
  #renaming = null;

  /**
   * @param {HTMLElement} root the `<ul>` holding the list
   * @param {SidebarHandlers} handlers
   */
  constructor(root, handlers) {
    this.root = root;
    this.handlers = handlers;
    root.addEventListener("click", (event) => this.#onClick(event));
    root.addEventListener("keydown", (event) => this.#onKey(event));
  }

  /** What an empty list says. */
  emptyText = "No conversations yet";

  /**
   * @param {ConversationSummary[]} conversations
   * @param {string} [emptyText] what to say if none (e.g. a search matched nothing)
   */
  set(conversations, emptyText = "No conversations yet") {
    this.emptyText = emptyText;
    // Newest activity first, whatever order the server used.
    this.conversations = conversations.filter(worthListing).sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    this.render();
  }

  /** Forget every conversation (signed out). */
  clear() {
    this.conversations = [];
    this.emptyText = "No conversations yet";
    this.activeId = null;
    this.#renaming = null;
    this.render();
  }

  /** @param {string | null} id */
  setActive(id) {
    this.activeId = id;
    this.render();
  }

  /**
   * One list item per day group ("Today", ...), each a heading and a list
   * of its conversations: lists hold only list items.
   */
  render() {
    const now = new Date();
    this.root.replaceChildren();
    if (!this.conversations.length) {
      const empty = document.createElement("li");
      empty.className = "conv-empty";
      empty.textContent = this.emptyText;
      this.root.appendChild(empty);
      return;
    }
    /** @type {HTMLElement | null} */
    let group = null;
    let label = "";
    for (const conversation of this.conversations) {
      const next = groupOf(new Date(conversation.updated_at), now);
      if (!group || next !== label) {
        label = next;
        const section = document.createElement("li");
        section.className = "conv-section";
        const heading = document.createElement("h2");
        heading.className = "conv-group";
        heading.id = `conv-group-${this.root.childElementCount}`;
        heading.textContent = label;
        group = document.createElement("ul");
        group.className = "conv-list";
        group.setAttribute("aria-labelledby", heading.id);
        section.append(heading, group);
        this.root.appendChild(section);
      }
      group.appendChild(this.#item(conversation));
    }
  }

  /** @param {ConversationSummary} conversation */
  #item(conversation) {
    const title = displayTitle(conversation);
    const li = document.createElement("li");
    li.className = "conv-item";
    li.dataset.id = conversation.id;
    const active = conversation.id === this.activeId;
    if (active) li.classList.add("active");
    if (this.#renaming === conversation.id) {
      const input = document.createElement("input");
      input.className = "conv-rename";
      input.value = conversation.title;
      input.maxLength = 200;
      input.setAttribute("aria-label", "New title");
      li.appendChild(input);
      queueMicrotask(() => {
        input.focus();
        input.select();
      });
      input.addEventListener("blur", () => this.#commitRename(conversation, input.value));
      return li;
    }
    const link = document.createElement("a");
    link.className = "conv-link";
    link.href = `#/c/${conversation.id}`;
    link.textContent = title;
    link.title = title;
    if (active) link.setAttribute("aria-current", "page");
    const rename = this.#button("rename", `Rename “${title}”`, "pencil");
    const remove = this.#button("delete", `Delete “${title}”`, "trash");
    const tools = document.createElement("span");
    tools.className = "conv-tools";
    tools.append(rename, remove);
    li.append(link, tools);
    return li;
  }

  /** @param {string} action @param {string} label @param {import("./icons.js").IconName} glyph */
  #button(action, label, glyph) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "icon-btn small";
    button.dataset.action = action;
    button.setAttribute("aria-label", label);
    button.title = label;
    button.appendChild(icon(glyph, 15));
    return button;
  }

  /** @param {MouseEvent} event */
  #onClick(event) {
    const target = /** @type {HTMLElement} */ (event.target);
    const item = /** @type {HTMLElement | null} */ (target.closest(".conv-item"));
    const id = item?.dataset.id;
    if (!id) return;
    const conversation = this.conversations.find((c) => c.id === id);
    if (!conversation) return;
    const action = /** @type {HTMLElement | null} */ (target.closest("[data-action]"))?.dataset.action;
    if (action === "rename") {
      this.#renaming = id;
      this.render();
    } else if (action === "delete") {
      this.handlers.remove(id, displayTitle(conversation));
    } else if (target.closest(".conv-link")) {
      event.preventDefault();
      this.handlers.open(id);
    }
  }

  /** @param {KeyboardEvent} event */
  #onKey(event) {
    const target = /** @type {HTMLElement} */ (event.target);
    if (!target.classList.contains("conv-rename")) return;
    const input = /** @type {HTMLInputElement} */ (target);
    if (event.key === "Enter") {
      event.preventDefault();
      input.blur();
    } else if (event.key === "Escape") {
      event.preventDefault();
      const id = this.#renaming;
      this.#renaming = null;
      this.render();
      this.#focusItem(id);
    }
  }

  /** @param {ConversationSummary} conversation @param {string} value */
  async #commitRename(conversation, value) {
    if (this.#renaming !== conversation.id) return;
    this.#renaming = null;
    const title = value.trim();
    if (title && title !== conversation.title) {
      await this.handlers.rename(conversation.id, title);
    } else {
      this.render();
    }
    this.#focusItem(conversation.id);
  }

  /** @param {string | null} id */
  #focusItem(id) {
    const link = /** @type {HTMLElement | null} */ (
      this.root.querySelector(`.conv-item[data-id="${CSS.escape(id ?? "")}"] .conv-link`)
    );
    link?.focus();
  }
}
