// @ts-check
/**
 * @file What the buttons on a message do: copy (a message or a code
 * block), edit and resend, retry a text the server refused, regenerate a
 * reply, step between alternatives (branches). Delegated from the message
 * list, since the view redraws its buttons.
 */

import { copy } from "./clipboard.js";
import { isSendKey } from "./composer.js";

/** @typedef {import("./conversation-state.js").ConversationState} ConversationState */
/** @typedef {import("./conversation-state.js").UiMessage} UiMessage */
/** @typedef {import("./chat-view.js").ChatView} ChatView */

/**
 * @typedef {object} MessageActionHooks
 * @property {() => ConversationState} state the open conversation
 * @property {ChatView} view
 * @property {(text: string) => boolean} send send a new message; false when it was not sent
 * @property {(message: UiMessage, text: string) => boolean} edit send `text` as an alternative of `message`; false when it was not sent
 * @property {(replyId: string) => void} regenerate ask for another reply in place of this one
 * @property {(targetId: string, action: string) => void} switchBranch show the alternative `targetId`
 * @property {(message: UiMessage) => void} retry resend a text that failed
 * @property {() => void} done give focus back to the message box
 * @property {() => boolean} sendOnEnter whether Enter sends (the setting), as in the message box
 */

/** @param {HTMLElement} container @param {MessageActionHooks} hooks */
export function wireMessageActions(container, hooks) {
  const { view } = hooks;

  /** @param {string} id @param {string} action */
  const focusAction = (id, action) =>
    /** @type {HTMLElement | null} */ (container.querySelector(`[data-action="${action}"][data-id="${CSS.escape(id)}"]`))?.focus();

  container.addEventListener("click", async (event) => {
    const button = /** @type {HTMLElement | null} */ (/** @type {HTMLElement} */ (event.target).closest("[data-action]"));
    if (!button) return;
    const state = hooks.state();
    const action = button.dataset.action;
    const id = button.dataset.id ?? "";
    const message = state.get(id);
    if (action === "copy-code") {
      const code = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
      await copy(code, button);
    } else if (action === "copy" && message) {
      await copy(message.content, button);
    } else if (action === "edit" && message) {
      view.editingId = id;
      view.update([message]);
      requestAnimationFrame(() => view.editorInput()?.focus());
    } else if (action === "cancel-edit") {
      view.editingId = null;
      if (message) view.update([message]);
      requestAnimationFrame(() => focusAction(id, "edit"));
    } else if (action === "retry" && message) {
      hooks.retry(message);
    } else if (action === "regenerate" && message) {
      hooks.regenerate(id);
    } else if ((action === "branch-prev" || action === "branch-next") && button.dataset.target) {
      hooks.switchBranch(button.dataset.target, action);
    }
  });

  container.addEventListener("submit", (event) => {
    const form = /** @type {HTMLFormElement} */ (event.target);
    if (!form.classList.contains("msg-edit")) return;
    event.preventDefault();
    const text = /** @type {HTMLTextAreaElement} */ (form.querySelector("textarea")).value;
    const message = hooks.state().get(form.dataset.id ?? "");
    // Not sent (too long, say): the editor stays open with its text.
    if (!(message ? hooks.edit(message, text) : hooks.send(text))) return;
    view.editingId = null;
    // The edit replaces the message and what followed it: show it and its
    // reply, wherever the edit was made.
    view.revealEnd();
    hooks.done();
  });

  container.addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (!target.classList.contains("msg-edit-input")) return;
    if (event.key === "Escape") {
      target.closest("form")?.querySelector("[data-action=cancel-edit]")?.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    } else if (isSendKey(event, hooks.sendOnEnter())) {
      event.preventDefault();
      target.closest("form")?.requestSubmit();
    }
  });
}
