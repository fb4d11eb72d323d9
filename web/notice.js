// @ts-check
/**
 * @file The banner above the composer. Each notice has a kind: `error`
 * (red, read out at once), `success` (green) or `info`, and `connection`
 * for "cannot reach the server" trouble, which clears itself once the
 * connection is back.
 */

/** @typedef {"error" | "success" | "info" | "connection"} NoticeKind */

export class Notice {
  /** @type {NoticeKind | null} */
  #kind = null;

  /**
   * @param {HTMLElement} root the banner (hidden when there is nothing to say)
   * @param {HTMLElement} text where the words go
   * @param {HTMLElement} close its dismiss button
   * @param {() => void} [onDismiss] after the user dismissed it
   */
  constructor(root, text, close, onDismiss) {
    this.root = root;
    this.text = text;
    close.addEventListener("click", () => {
      this.hide();
      onDismiss?.();
    });
  }

  /** The kind of notice shown, or null. */
  get kind() {
    return this.#kind;
  }

  /** @param {string} text @param {NoticeKind} [kind] */
  show(text, kind = "error") {
    this.#kind = kind;
    // Errors interrupt; good news waits its turn.
    this.root.setAttribute("role", kind === "error" || kind === "connection" ? "alert" : "status");
    this.root.dataset.kind = kind === "connection" ? "error" : kind;
    this.text.textContent = text;
    this.root.hidden = false;
  }

  /** Hide the notice; with `kind`, only a notice of that kind. @param {NoticeKind} [kind] */
  hide(kind) {
    if (kind && this.#kind !== kind) return;
    this.#kind = null;
    this.root.hidden = true;
  }
}
