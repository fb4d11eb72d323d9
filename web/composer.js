// @ts-check
/**
 * @file The message box: Enter sends, Shift+Enter adds a line (never
 * mid-composition), it grows with its text, and Stop replaces nothing
 * (it sits beside Send while a reply is being written or spoken).
 */

/**
 * @typedef {object} ComposerElements
 * @property {HTMLFormElement} form
 * @property {HTMLTextAreaElement} input
 * @property {HTMLButtonElement} send
 * @property {HTMLElement} stop
 */

/**
 * @typedef {object} ComposerHooks
 * @property {(text: string) => boolean} send send `text`; false keeps it in the box
 * @property {() => void} stop stop the reply being written or spoken
 * @property {() => boolean} stoppable whether there is a reply to stop
 */

/** Tallest the box grows, in pixels, before it scrolls. */
const MAX_HEIGHT_PX = 240;

export class Composer {
  /** @param {ComposerElements} elements @param {ComposerHooks} hooks */
  constructor(elements, hooks) {
    this.ui = elements;
    this.hooks = hooks;
    const { form, input, stop } = elements;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape" && hooks.stoppable()) {
        hooks.stop();
        this.update();
      }
    });
    input.addEventListener("input", () => {
      this.#autosize();
      this.update();
    });
    stop.addEventListener("click", () => {
      hooks.stop();
      this.update();
      input.focus();
    });
  }

  get value() {
    return this.ui.input.value;
  }

  set value(text) {
    this.ui.input.value = text;
    this.#autosize();
    this.update();
  }

  focus() {
    this.ui.input.focus();
  }

  /** Send what is in the box (the form's submit). */
  submit() {
    const text = this.ui.input.value;
    if (!text.trim()) return;
    if (this.hooks.send(text)) this.value = "";
    this.ui.input.focus();
  }

  /** Bring Send and Stop up to date. */
  update() {
    this.ui.send.disabled = !this.ui.input.value.trim();
    this.ui.stop.hidden = !this.hooks.stoppable();
  }

  #autosize() {
    const { input } = this.ui;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }
}
