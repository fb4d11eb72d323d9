// @ts-check
/**
 * @file One modal question at a time, in the page's `<dialog>`: a title, a
 * sentence and a row of answers. The browser's modal dialog keeps focus
 * inside it and closes on Escape (answered with "").
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
