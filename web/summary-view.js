// @ts-check
/**
 * @file "Summary" in the chat header's menu: a dialog with the open
 * conversation's stored summary (`GET /api/conversations/{id}/summary`)
 * and a button to have the model write or update it (`POST`).
 */

import { ApiError } from "./api.js";

/**
 * @typedef {object} SummaryElements
 * @property {HTMLButtonElement} button the header menu's button
 * @property {HTMLElement} menu the header menu
 * @property {HTMLDialogElement} dialog
 */

/**
 * Wire the menu's Summary entry (`button[data-summary]`) and its dialog.
 * @param {SummaryElements} elements
 * @param {{ api: import("./api.js").Api, currentId: () => string | null, failed: (error: unknown) => void }} handlers
 */
export function wireSummary({ button, menu, dialog }, { api, currentId, failed }) {
  const item = /** @type {HTMLButtonElement | null} */ (menu.querySelector("button[data-summary]"));
  const text = /** @type {HTMLElement} */ (dialog.querySelector("[data-summary-text]"));
  const status = /** @type {HTMLElement} */ (dialog.querySelector("[data-summary-status]"));
  const make = /** @type {HTMLButtonElement} */ (dialog.querySelector("[data-summary-make]"));
  if (!item) return;
  // The menu opens on the button's click (see export.js).
  button.addEventListener("click", () => {
    item.disabled = !currentId();
  });

  /** @param {import("./api.js").Summary | null} summary */
  const show = (summary) => {
    text.textContent = summary?.summary ?? "No summary yet.";
    status.textContent = summary ? `Updated ${new Date(summary.updated_at).toLocaleString()}` : "";
    make.textContent = summary ? "Update summary" : "Summarize";
  };

  item.addEventListener("click", async () => {
    const id = currentId();
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (!id) return;
    show(null);
    text.textContent = "Loading…";
    dialog.dataset.conversation = id;
    dialog.showModal();
    try {
      show(await api.getSummary(id));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) show(null);
      else {
        dialog.close();
        failed(error);
      }
    }
  });

  make.addEventListener("click", async (event) => {
    event.preventDefault();
    const id = dialog.dataset.conversation;
    if (!id) return;
    make.disabled = true;
    status.textContent = "Summarizing…";
    try {
      const summary = await api.summarize(id);
      if (dialog.open && dialog.dataset.conversation === id) show(summary);
    } catch (error) {
      status.textContent = error instanceof Error ? `Not summarized: ${error.message}` : "Not summarized.";
    } finally {
      make.disabled = false;
    }
  });

  dialog.addEventListener("close", () => {
    button.focus();
  });
}
