// @ts-check
/**
 * @file The message box: Enter sends, Shift+Enter adds a line (never
 * mid-composition); with send-on-Enter off (a setting), Enter adds a line
 * and Ctrl/Cmd+Enter sends. It grows with its text, and Stop replaces
 * nothing (it sits beside Send while a reply is being written or spoken).
 *
 * It knows the server's `max_message_chars`: a counter shows as the text
 * nears it, and a text over it is kept in the box with one message
 * saying by how much, instead of being sent to be refused.
 */

/**
 * @typedef {object} ComposerElements
 * @property {HTMLFormElement} form
 * @property {HTMLTextAreaElement} input
 * @property {HTMLButtonElement} send
 * @property {HTMLElement} stop
 * @property {HTMLElement} count the character counter
 * @property {HTMLElement} error why the text in the box was not sent
 * @property {HTMLElement} hint how to send, under the box
 */

/**
 * @typedef {object} ComposerHooks
 * @property {(text: string) => boolean} send send `text`; false keeps it in the box
 * @property {() => void} stop stop the reply being written or spoken
 * @property {() => boolean} stoppable whether there is a reply to stop
 */

/** Tallest the box grows, in pixels, before it scrolls. */
const MAX_HEIGHT_PX = 240;
/** The counter shows from this share of the limit on. */
const COUNT_FROM = 0.8;

/**
 * Whether `event` sends the text of a message box: Ctrl/Cmd+Enter always;
 * Enter alone when `sendOnEnter`. Never mid-composition (IME).
 * @param {KeyboardEvent} event @param {boolean} sendOnEnter
 */
export function isSendKey(event, sendOnEnter) {
  if (event.key !== "Enter" || event.isComposing) return false;
  if (event.ctrlKey || event.metaKey) return true;
  return sendOnEnter && !event.shiftKey && !event.altKey;
}

/** @param {number} n */
const format = (n) => n.toLocaleString("en-US");

/**
 * Characters as the server counts them (Unicode scalar values, Rust's
 * `chars()`): a surrogate pair is one, not two.
 * @param {string} text
 */
export function charCount(text) {
  let pairs = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        pairs += 1;
        i += 1;
      }
    }
  }
  return text.length - pairs;
}

/**
 * What to tell someone whose text is `length` characters against `limit`.
 * @param {number} length @param {number} limit
 */
export function tooLongText(length, limit) {
  return `This message is ${format(length)} characters long; the limit is ${format(limit)}. Shorten it by ${format(length - limit)} characters to send it.`;
}

export class Composer {
  /** The server's `max_message_chars`; null while unknown. */
  /** @type {number | null} */
  limit = null;
  sendOnEnter = true;

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
      if (isSendKey(event, this.sendOnEnter)) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape" && hooks.stoppable()) {
        hooks.stop();
        this.update();
      }
    });
    input.addEventListener("input", () => {
      // Whatever was said about the last text no longer holds.
      this.hideError();
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
    this.hideError();
    this.#autosize();
    this.update();
  }

  /** @param {number | null | undefined} limit the server's `max_message_chars` */
  setLimit(limit) {
    this.limit = limit && limit > 0 ? limit : null;
    this.update();
  }

  /** Enter sends (true), or adds a line while Ctrl/Cmd+Enter sends (false). @param {boolean} on */
  setSendOnEnter(on) {
    this.sendOnEnter = on;
    this.ui.hint.textContent = on ? "Enter to send · Shift+Enter for a new line" : "Ctrl+Enter to send · Enter for a new line";
    this.ui.input.enterKeyHint = on ? "send" : "enter";
  }

  /**
   * Why `text` cannot be sent as it is, or null when it can.
   * @param {string} text
   */
  refusal(text) {
    const length = charCount(text);
    return this.limit !== null && length > this.limit ? tooLongText(length, this.limit) : null;
  }

  /** Say why the text in the box was not sent (one message, until it changes). @param {string} text */
  showError(text) {
    this.ui.error.textContent = text;
    this.ui.error.hidden = false;
    this.#count();
  }

  hideError() {
    if (this.ui.error.hidden) return;
    this.ui.error.hidden = true;
    this.ui.error.textContent = "";
    this.#count();
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

  /** Bring Send, Stop and the counter up to date. */
  update() {
    this.ui.send.disabled = !this.ui.input.value.trim();
    this.ui.stop.hidden = !this.hooks.stoppable();
    this.#count();
  }

  #count() {
    const { input, count } = this.ui;
    const length = this.limit === null ? 0 : charCount(input.value);
    const shown = this.limit !== null && length >= this.limit * COUNT_FROM;
    const over = this.limit !== null && length > this.limit;
    count.hidden = !shown;
    count.classList.toggle("over", over);
    if (shown && this.limit !== null) {
      count.textContent = `${format(length)} / ${format(this.limit)}${over ? ` · ${format(length - this.limit)} over the limit` : ""}`;
    }
    if (over) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    // Read with the box while it matters, not otherwise.
    const described = ["composer-hint", shown ? count.id : "", this.ui.error.hidden ? "" : this.ui.error.id];
    input.setAttribute("aria-describedby", described.filter(Boolean).join(" "));
  }

  #autosize() {
    const { input } = this.ui;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }
}
