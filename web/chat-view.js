// @ts-check
/**
 * @file The message list. Socket events mark messages dirty; the list is
 * redrawn at most once per animation frame, and only the dirty messages
 * (in place: a message keeps its element), so a fast stream of deltas
 * costs one layout per frame instead of one per token. Buttons carry
 * `data-action`; the app handles clicks by delegation.
 *
 * The list is not a live region: a screen reader would read a streaming
 * reply over and over. Instead each message is announced once, through a
 * separate status element, when it is whole (or has failed); so is each
 * tool call, when it starts and when it ends.
 */

import { branchNav } from "./branches.js";
import { renderMarkdown } from "./markdown.js";
import { isBusy, REFUSED_FOR_GOOD } from "./conversation-state.js";
import { icon } from "./icons.js";
import { renderToolCalls, toolAnnouncement } from "./tool-calls.js";

/** @typedef {import("./conversation-state.js").UiMessage} UiMessage */
/** @typedef {import("./conversation-state.js").ConversationState} ConversationState */

/** Within this many pixels of the bottom the view follows new text. */
const FOLLOW_SLACK_PX = 96;

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

/**
 * @param {string} action
 * @param {string} label
 * @param {string} id
 * @param {import("./icons.js").IconName} glyph
 */
function actionButton(action, label, id, glyph) {
  const button = /** @type {HTMLButtonElement} */ (h("button", "msg-action"));
  button.type = "button";
  button.dataset.action = action;
  button.dataset.id = id;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.append(icon(glyph, 14), h("span", "msg-action-label", label.split(" ")[0]));
  return button;
}

/**
 * Make `old` what `fresh` is (attributes and children), keeping the element.
 * @param {HTMLElement} old @param {HTMLElement} fresh
 */
function patch(old, fresh) {
  for (const { name } of [...old.attributes]) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  for (const { name, value } of fresh.attributes) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  old.replaceChildren(...fresh.childNodes);
  return old;
}

export class ChatView {
  /** @type {Set<string>} */
  #dirty = new Set();
  #structural = false;
  #frame = 0;
  /** @type {Map<string, HTMLElement>} */
  #nodes = new Map();
  /** Messages already announced (or there before: history is not read out). */
  #announced = /** @type {Set<string>} */ (new Set());
  /** Tool calls read out so far: call id -> the status last read. */
  #toolsAnnounced = /** @type {Map<string, string>} */ (new Map());
  /** Tool calls the user expanded (a redraw keeps them open). */
  #openTools = /** @type {Set<string>} */ (new Set());
  /** The reply that offers Regenerate: the latest, once nothing is being written. */
  /** @type {string | null} */
  #regenerable = null;
  /** Scroll to the end at the next redraw, wherever the view is. */
  #reveal = false;
  /** @type {string | null} */
  editingId = null;
  /** The message tapped last: on a phone, its actions show. */
  /** @type {string | null} */
  selectedId = null;

  /**
   * @param {HTMLElement} container the scrolling `role="log"` element
   * @param {HTMLElement} list where message articles go
   * @param {HTMLElement} empty shown when there are no messages
   * @param {HTMLElement} [announcer] a polite live region: finished messages are read from it, once
   */
  constructor(container, list, empty, announcer) {
    this.container = container;
    this.list = list;
    this.empty = empty;
    this.announcer = announcer;
    /** @type {ConversationState | null} */
    this.state = null;
    list.addEventListener("click", (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (target.closest("button, a, input, textarea, form, details")) return;
      const article = /** @type {HTMLElement | null} */ (target.closest(".msg"));
      if (article) this.select(article.dataset.id === this.selectedId ? null : (article.dataset.id ?? null));
    });
  }

  /** Mark message `id` as the one tapped (null: none). @param {string | null} id */
  select(id) {
    this.selectedId = id;
    for (const [key, node] of this.#nodes) node.classList.toggle("selected", key === id);
  }

  /** Draw `state` from scratch (a conversation was opened or reloaded). */
  reset(/** @type {ConversationState} */ state) {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    this.state = state;
    this.editingId = null;
    this.selectedId = null;
    this.#regenerable = null;
    this.#nodes.clear();
    const history = state.messages.filter((m) => !isBusy(m));
    this.#announced = new Set(history.map((m) => m.id));
    this.#toolsAnnounced = new Map(history.flatMap((m) => m.tools.map((t) => [t.id, t.status])));
    this.#openTools = new Set();
    if (this.announcer) this.announcer.textContent = "";
    this.list.replaceChildren();
    this.#dirty = new Set(state.messages.map((m) => m.id));
    this.#structural = true;
    this.#flush(true);
  }

  /**
   * Schedule a redraw of `changed` for the next animation frame.
   * @param {UiMessage[]} changed
   * @param {boolean} [structural] messages were added or re-keyed
   */
  update(changed, structural = false) {
    for (const message of changed) this.#dirty.add(message.id);
    this.#structural ||= structural;
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush(false));
  }

  /** Take message `id` off the list (it was removed from the state). @param {string} id */
  remove(id) {
    this.#nodes.delete(id);
    this.#dirty.delete(id);
    this.update([], true);
  }

  /**
   * Focus the `action` button of message `id` (or, when that one is
   * disabled, the other step of its branch control).
   * @param {string} id @param {string} action
   */
  focusBranchStep(id, action) {
    const buttons = [...this.list.querySelectorAll(`[data-id="${CSS.escape(id)}"][data-action^="branch-"]`)];
    const wanted = buttons.find((b) => b instanceof HTMLButtonElement && b.dataset.action === action && !b.disabled);
    /** @type {HTMLElement | undefined} */ (wanted ?? buttons.find((b) => !(/** @type {HTMLButtonElement} */ (b).disabled)))?.focus();
  }

  /** Scroll to the end at the next redraw, and follow what streams in there. */
  revealEnd() {
    this.#reveal = true;
    this.update([]);
  }

  /** Redraw everything now (e.g. the "last reply" changed). */
  refreshAll() {
    if (!this.state) return;
    this.update(this.state.messages, true);
  }

  /** @param {boolean} forceBottom */
  #flush(forceBottom) {
    this.#frame = 0;
    const state = this.state;
    if (!state) return;
    const box = this.container;
    const follow = forceBottom || this.#reveal || box.scrollHeight - box.scrollTop - box.clientHeight < FOLLOW_SLACK_PX;
    this.#reveal = false;
    // Only the latest reply offers Regenerate: when that changes, the reply
    // that had it is redrawn too, to lose it.
    const lastAssistant = state.messages.findLast((m) => m.role === "assistant");
    const regenerable = lastAssistant && !state.busy ? lastAssistant.id : null;
    if (regenerable !== this.#regenerable) {
      if (this.#regenerable) this.#dirty.add(this.#regenerable);
      if (regenerable) this.#dirty.add(regenerable);
      this.#regenerable = regenerable;
    }
    for (const id of this.#dirty) {
      const message = state.get(id) ?? state.messages.find((m) => m.id === id);
      if (!message) continue;
      const fresh = this.#render(message, message.id === regenerable);
      const old = this.#nodes.get(message.id);
      // A new node (or a re-keyed one) has no place in the list yet.
      if (!old) this.#structural = true;
      // Keyboard focus inside the message (a tool call's summary) survives the redraw.
      const focused = /** @type {HTMLElement | null} */ (document.activeElement);
      const focusKey = old && focused && old.contains(focused) ? focused.dataset.focusKey : undefined;
      const node = old ? patch(old, fresh) : fresh;
      if (focusKey) {
        /** @type {HTMLElement | null} */ (node.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`))?.focus({ preventScroll: true });
      }
      this.#nodes.set(message.id, node);
      this.#announce(message, node);
    }
    if (this.#structural) {
      // Messages were added or renamed (local id -> server id): re-key and
      // re-order, keeping existing nodes.
      /** @type {Map<string, HTMLElement>} */
      const nodes = new Map();
      for (const node of this.#nodes.values()) nodes.set(node.dataset.id ?? "", node);
      this.#nodes = nodes;
      const ordered = state.messages.map((m) => nodes.get(m.id) ?? this.#remember(m));
      this.list.replaceChildren(...ordered);
    }
    this.#dirty.clear();
    this.#structural = false;
    this.empty.hidden = state.messages.length > 0;
    if (follow) box.scrollTop = box.scrollHeight;
  }

  /**
   * Read out a message once it is whole, or failed: a reply's text, why it
   * stopped, or why a text was not sent.
   * @param {UiMessage} message @param {HTMLElement} node
   */
  #announce(message, node) {
    if (!this.announcer) return;
    const tools = this.#toolWords(message);
    if (this.#announced.has(message.id)) {
      if (tools) this.announcer.textContent = tools;
      return;
    }
    const mine = message.role === "user";
    const text = () => node.querySelector(".msg-bubble")?.textContent?.trim() ?? "";
    let words = "";
    if (mine) {
      if (message.status === "failed" && message.error) words = `Not sent: ${message.error.message}`;
    } else if (message.error) {
      words = `Error: ${message.error.message}`;
    } else if (message.status === "complete") {
      words = `Reply: ${text()}`;
    } else if (message.status === "interrupted") {
      words = `Reply, ${message.spokenOver ? "interrupted" : "stopped"}: ${text()}`;
    }
    if (words) this.#announced.add(message.id);
    if (words || tools) this.announcer.textContent = [tools, words].filter(Boolean).join(" ");
  }

  /**
   * What to read out about the message's tool calls: each start and each
   * end, once.
   * @param {UiMessage} message
   */
  #toolWords(message) {
    const words = [];
    for (const tool of message.tools) {
      if (this.#toolsAnnounced.get(tool.id) === tool.status) continue;
      this.#toolsAnnounced.set(tool.id, tool.status);
      words.push(toolAnnouncement(tool));
    }
    return words.join(" ");
  }

  /** @param {UiMessage} message */
  #remember(message) {
    const node = this.#render(message, false);
    this.#nodes.set(message.id, node);
    return node;
  }

  /**
   * @param {UiMessage} message
   * @param {boolean} isLastReply
   */
  #render(message, isLastReply) {
    const mine = message.role === "user";
    const article = h("article", `msg ${mine ? "msg-user" : "msg-assistant"} status-${message.status}`);
    article.dataset.id = message.id;
    if (message.id === this.selectedId) article.classList.add("selected");
    article.setAttribute("aria-label", mine ? "You said" : "Assistant said");
    const busy = isBusy(message);
    // Screen readers announce a reply once it is whole, not every token.
    article.setAttribute("aria-busy", String(busy));

    if (!mine) {
      const avatar = h("div", "msg-avatar");
      avatar.setAttribute("aria-hidden", "true");
      article.appendChild(avatar);
    }
    const main = h("div", "msg-main");
    article.appendChild(main);

    if (message.tools.length) main.appendChild(renderToolCalls(message.tools, this.#openTools));

    if (mine && this.editingId === message.id) {
      main.appendChild(this.#editor(message));
      return article;
    }

    const bubble = h("div", "msg-bubble");
    if (mine) {
      bubble.classList.add("msg-plain");
      bubble.textContent = message.content;
    } else if (message.status === "waiting" && !message.content) {
      const dots = h("span", "typing");
      dots.setAttribute("role", "img");
      dots.setAttribute("aria-label", "Assistant is thinking");
      dots.append(h("i"), h("i"), h("i"));
      bubble.appendChild(dots);
    } else {
      bubble.classList.add("markdown");
      bubble.appendChild(renderMarkdown(message.content));
      if (busy) bubble.appendChild(h("span", "caret"));
    }
    if (mine || message.content || message.status === "waiting") main.appendChild(bubble);

    if (message.error) {
      const error = h("p", "msg-error");
      error.append(h("strong", "", mine ? "Not sent. " : "Error. "), document.createTextNode(message.error.message));
      main.appendChild(error);
    } else if (message.status === "interrupted") {
      // Spoken over: the bubble holds what was heard before the user spoke.
      const note = h("p", message.spokenOver ? "msg-note msg-interrupted" : "msg-note", message.spokenOver ? "Interrupted" : "Stopped");
      if (message.spokenOver) note.title = "You spoke over this reply; it shows what was said before you did.";
      main.appendChild(note);
    } else if (mine && message.status === "sending") {
      main.appendChild(h("p", "msg-note", message.spoken ? "Heard you · sending…" : "Sending…"));
    } else if (mine && message.spoken) {
      const note = h("p", "msg-note msg-spoken");
      note.append(icon("mic", 12), h("span", "", "Spoken"));
      main.appendChild(note);
    }

    const branches = branchNav(message);
    if (branches) main.appendChild(branches);
    if (!busy && message.status !== "sending") {
      const actions = h("div", "msg-actions");
      if (message.content) actions.appendChild(actionButton("copy", "Copy message", message.id, "copy"));
      if (mine) actions.appendChild(actionButton("edit", "Edit and resend", message.id, "pencil"));
      const retryable = message.status === "failed" && !REFUSED_FOR_GOOD.includes(message.error?.code ?? "");
      if (mine && retryable) actions.appendChild(actionButton("retry", "Retry sending", message.id, "refresh"));
      if (!mine && isLastReply) actions.appendChild(actionButton("regenerate", "Regenerate reply", message.id, "refresh"));
      main.appendChild(actions);
    }
    return article;
  }

  /** @param {UiMessage} message */
  #editor(message) {
    const form = h("form", "msg-edit");
    form.dataset.id = message.id;
    const label = h("label", "visually-hidden", "Edit message");
    const area = /** @type {HTMLTextAreaElement} */ (h("textarea", "msg-edit-input"));
    area.id = `edit-${message.id}`;
    label.setAttribute("for", area.id);
    area.value = message.content;
    area.rows = Math.min(10, Math.max(2, message.content.split("\n").length));
    const row = h("div", "msg-edit-actions");
    const cancel = /** @type {HTMLButtonElement} */ (h("button", "btn ghost small", "Cancel"));
    cancel.type = "button";
    cancel.dataset.action = "cancel-edit";
    cancel.dataset.id = message.id;
    const save = /** @type {HTMLButtonElement} */ (h("button", "btn primary small", "Send"));
    save.type = "submit";
    row.append(cancel, save);
    form.append(label, area, row);
    return form;
  }

  /** The editor textarea of the message being edited, once drawn. */
  editorInput() {
    return /** @type {HTMLTextAreaElement | null} */ (this.list.querySelector(".msg-edit-input"));
  }
}
