// @ts-check
/**
 * @file "Share link" and "Stop sharing" in the chat header's menu: a
 * read-only link to the open conversation as it is now (copied, and shown
 * in the notice so it can be selected too), and revoking it.
 */

import { ApiError } from "./api.js";

/**
 * Wire the menu's share entries (`button[data-share]`).
 * @param {{ button: HTMLButtonElement, menu: HTMLElement }} elements the menu's button and the menu
 * @param {{
 *   api: import("./api.js").Api,
 *   currentId: () => string | null,
 *   notify: (text: string, kind: import("./notice.js").NoticeKind) => void,
 *   failed: (error: unknown) => void,
 * }} handlers
 */
export function wireShare({ button, menu }, { api, currentId, notify, failed }) {
  const items = /** @type {HTMLButtonElement[]} */ ([...menu.querySelectorAll("button[data-share]")]);
  // The menu opens on the button's click (see export.js): enable the
  // entries for a stored conversation only.
  button.addEventListener("click", () => {
    for (const item of items) item.disabled = !currentId();
  });
  const close = () => {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    button.focus();
  };
  for (const item of items) {
    item.addEventListener("click", async () => {
      const id = currentId();
      close();
      if (!id) return;
      try {
        if (item.dataset.share === "revoke") {
          await api.revokeShare(id);
          notify("Sharing stopped: the link no longer works.", "success");
          return;
        }
        const link = await api.shareConversation(id);
        const url = new URL(link.url, location.origin).href;
        let copied = true;
        try {
          await navigator.clipboard.writeText(url);
        } catch {
          copied = false;
        }
        notify(
          `${copied ? "Link copied" : "Share link"}: ${url} — anyone with it can read this conversation as it is now.`,
          "success",
        );
      } catch (error) {
        if (error instanceof ApiError && error.status === 429) notify(error.message, "error");
        else failed(error);
      }
    });
  }
}
