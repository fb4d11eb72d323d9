// @ts-check
/**
 * @file A text the server refused. One refused for what it is (too long)
 * goes back into the box with the reason, as if never sent (when the box
 * is free); any other stays in place, marked, with Retry.
 */

import { charCount, tooLongText } from "./composer.js";
import { REFUSED_FOR_GOOD } from "./conversation-state.js";

/**
 * @param {{ composer: import("./composer.js").Composer, state: import("./conversation-state.js").ConversationState, view: import("./chat-view.js").ChatView }} ui
 * @param {string} clientId @param {string} content @param {{ code: string, message: string }} error
 */
export function showRefusal({ composer, state, view }, clientId, content, error) {
  const localId = `local:${clientId}`;
  if (REFUSED_FOR_GOOD.includes(error.code) && !composer.value.trim() && state.remove(localId)) {
    view.remove(localId);
    composer.value = content;
    const limit = /limit is (\d+)/.exec(error.message);
    composer.showError(
      error.code === "message_too_long" && limit
        ? tooLongText(charCount(content), Number(limit[1]))
        : `Not sent: ${error.message}.`,
    );
    composer.focus();
  } else {
    view.update(state.reject(clientId, error));
  }
  composer.update();
}
