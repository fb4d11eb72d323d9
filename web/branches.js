// @ts-check
/**
 * @file Branches, as in ChatGPT: editing a message or regenerating a reply
 * keeps the one it replaces as an alternative, and a message with
 * alternatives shows "‹ 2/3 ›" to move between them.
 *
 * The server keeps the tree; the view shows its active path. An edit is a
 * `text` naming the edited message's parent, a regenerate a `regenerate`
 * event; the messages they replace leave the view at once, and when the
 * new reply ends the path is loaded again, with the alternatives counted.
 * Moving between alternatives asks the server to switch branch
 * (`PUT /api/conversations/{id}/active`) and shows the path it answers.
 */

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./colloquy-client.js").ColloquyClient} ColloquyClient */
/** @typedef {import("./colloquy-client.js").ServerEvent} ServerEvent */
/** @typedef {import("./protocol.js").StoredConversation} StoredConversation */
/** @typedef {import("./conversation-state.js").ConversationState} ConversationState */
/** @typedef {import("./conversation-state.js").UiMessage} UiMessage */

/**
 * The "‹ 2/3 ›" control of a message with alternatives, or null. Its
 * buttons carry `data-action` (`branch-prev`, `branch-next`) and the id of
 * the alternative they show in `data-target`.
 * @param {UiMessage} message
 * @returns {HTMLElement | null}
 */
export function branchNav(message) {
  const ids = message.siblingIds ?? [];
  const index = message.siblingIndex ?? 0;
  if (ids.length < 2) return null;
  const nav = document.createElement("div");
  nav.className = "branch-nav";
  nav.setAttribute("role", "group");
  const kind = message.role === "user" ? "Version" : "Reply";
  nav.setAttribute("aria-label", `${kind} ${index + 1} of ${ids.length}`);
  /** @param {"prev" | "next"} direction @param {string} glyph @param {number} to */
  const button = (direction, glyph, to) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "branch-step";
    b.textContent = glyph;
    b.dataset.action = `branch-${direction}`;
    b.dataset.id = message.id;
    b.setAttribute("aria-label", `${direction === "prev" ? "Previous" : "Next"} ${kind.toLowerCase()} (${to + 1} of ${ids.length})`);
    if (to < 0 || to >= ids.length) b.disabled = true;
    else b.dataset.target = ids[to];
    return b;
  };
  const count = document.createElement("span");
  count.className = "branch-count";
  count.textContent = `${index + 1}/${ids.length}`;
  count.setAttribute("aria-hidden", "true");
  nav.append(button("prev", "‹", index - 1), count, button("next", "›", index + 1));
  return nav;
}

/**
 * @typedef {object} BranchHooks
 * @property {Api} api
 * @property {() => string | null} conversationId the open, stored conversation
 * @property {() => ConversationState} state
 * @property {() => ColloquyClient | null} client the open conversation's socket
 * @property {(text: string) => boolean} canSend whether `text` may be sent (the box says why not)
 * @property {(text: string, options: { parentId?: string | null }) => boolean} send send a message; false when it was not sent
 * @property {(conversation: StoredConversation, focus?: { id: string, action: string }) => void} show show a loaded path (and focus a message's control)
 * @property {(ids: string[]) => void} removed messages left the view
 * @property {(error: unknown) => void} failed
 * @property {(text: string) => void} notify
 * @property {() => string | undefined} model the model picked for new replies
 */

export class Branches {
  /** Replies (by id) whose end means the path must be loaded again; `*`: the next one to end. */
  #awaiting = new Set();

  /** @param {BranchHooks} hooks */
  constructor(hooks) {
    this.hooks = hooks;
  }

  /**
   * Send `text` as an alternative of the user message `message`: it follows
   * the same parent, the message before it on the path shown (none: it was
   * the first). Returns whether it was sent.
   * @param {UiMessage} message @param {string} text
   */
  edit(message, text) {
    const state = this.hooks.state();
    const index = state.messages.indexOf(message);
    const before = state.messages.slice(0, index).findLast((m) => !m.id.startsWith("local:"));
    const parentId = message.parentId !== undefined ? message.parentId : (before?.id ?? null);
    if (message.id.startsWith("local:")) return this.hooks.send(text, {});
    if (!this.hooks.canSend(text)) return false;
    this.hooks.removed(state.dropFrom(message.id));
    this.#awaiting.add("*");
    return this.hooks.send(text, { parentId });
  }

  /** Ask for another reply in place of `replyId`. @param {string} replyId */
  regenerate(replyId) {
    const client = this.hooks.client();
    if (!client?.regenerate(replyId, { model: this.hooks.model() })) {
      this.hooks.notify("Not connected; try again in a moment.");
      return;
    }
    this.hooks.removed(this.hooks.state().dropFrom(replyId));
    this.#awaiting.add("*");
  }

  /**
   * Show the alternative `targetId`; focus then goes to the same control
   * (`action`) of the message now shown, so the keyboard can keep stepping.
   * @param {string} targetId @param {string} action
   */
  async switchTo(targetId, action) {
    const id = this.hooks.conversationId();
    if (!id) return;
    try {
      const conversation = await this.hooks.api.switchBranch(id, targetId);
      if (this.hooks.conversationId() === id) this.hooks.show(conversation, { id: targetId, action });
    } catch (error) {
      this.hooks.failed(error);
    }
  }

  /**
   * Watch the open conversation's events: once the reply an edit or a
   * regenerate started has ended, load the path again (alternatives counted).
   * @param {ServerEvent} event
   */
  async observe(event) {
    if (event.type === "ack" && this.#awaiting.delete("*")) this.#awaiting.add(event.reply_id);
    if (event.type === "message" && this.#awaiting.delete("*")) this.#awaiting.add(event.message_id);
    if (event.type !== "message" || !this.#awaiting.delete(event.message_id)) return;
    const id = this.hooks.conversationId();
    if (!id) return;
    try {
      const conversation = await this.hooks.api.getConversation(id);
      if (this.hooks.conversationId() === id) this.hooks.show(conversation);
    } catch (error) {
      this.hooks.failed(error);
    }
  }

  /** A conversation was opened or closed: nothing is awaited any more. */
  reset() {
    this.#awaiting.clear();
  }
}
