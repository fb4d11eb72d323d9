// @ts-check
/**
 * @file Modal dialogs: one question at a time in the page's confirm
 * `<dialog>` (a title, a sentence and a row of answers), and panels that
 * hold their own controls (the settings). The browser's modal dialog keeps
 * focus inside it and closes on Escape (answered with "").
 */

/**
 * @typedef {object} Answer
 * @property {string} value what `ask` resolves to when it is chosen
 * @property {string} label
 * @property {"primary" | "danger" | "ghost"} [kind] its button's style (default ghost)
 */

/**
 * Ask, and resolve to the chosen answer's value ("" when dismissed).
 * @param {HTMLDialogElement} dialog
 * @param {{ title: string, text: string, answers: Answer[] }} question
 * @returns {Promise<string>}
 */
export function ask(dialog, { title, text, answers }) {
  const heading = /** @type {HTMLElement} */ (dialog.querySelector(".dialog-title"));
  const body = /** @type {HTMLElement} */ (dialog.querySelector(".dialog-text"));
  const row = /** @type {HTMLElement} */ (dialog.querySelector(".dialog-actions"));
  heading.textContent = title;
  body.textContent = text;
  row.replaceChildren(
    ...answers.map(({ value, label, kind = "ghost" }) => {
      const button = document.createElement("button");
      button.className = `btn ${kind}`;
      button.value = value;
      button.textContent = label;
      // Tests and scripts find the confirming answer by id.
      if (value === "ok") button.id = "confirm-ok";
      return button;
    }),
  );
  if (dialog.open) dialog.close();
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
}

/**
 * Open a `<dialog>` holding its own controls; resolves when it closes, with
 * focus back on `opener` (the button that opened it).
 * @param {HTMLDialogElement} dialog @param {HTMLElement} [opener]
 * @returns {Promise<void>}
 */
export function openPanel(dialog, opener) {
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener(
      "close",
      () => {
        opener?.focus();
        resolve();
      },
      { once: true },
    ),
  );
}
