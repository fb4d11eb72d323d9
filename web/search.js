// @ts-check
/**
 * @file The search field above the conversation list. While it holds text
 * the list shows the server's matches (title or any message, see
 * `GET /api/conversations?q=`); emptied, the normal list comes back. The
 * list itself is drawn by app.js's refresh, which asks {@link ConversationSearch#query}.
 */

/** Characters the server accepts in `q`. */
export const MAX_QUERY_CHARS = 200;
/** Quiet time after the last keystroke before searching. */
const DEBOUNCE_MS = 250;

export class ConversationSearch {
  #timer = 0;

  /**
   * @param {HTMLInputElement} input the search field
   * @param {HTMLElement} status a polite live region saying how many match
   * @param {() => void} refresh redraw the list (it reads `query`)
   */
  constructor(input, status, refresh) {
    this.input = input;
    this.status = status;
    this.refresh = refresh;
    input.maxLength = MAX_QUERY_CHARS;
    input.addEventListener("input", () => {
      clearTimeout(this.#timer);
      // Emptied: the normal list at once; typing: wait for a pause.
      if (!this.query) this.refresh();
      else this.#timer = window.setTimeout(() => this.refresh(), DEBOUNCE_MS);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && input.value) {
        event.preventDefault();
        this.clear();
        this.refresh();
      }
    });
  }

  /** The text to search for ("" when not searching). */
  get query() {
    return this.input.value.trim().slice(0, MAX_QUERY_CHARS);
  }

  /** Say how many conversations the list now shows for the query. @param {number} count */
  showing(count) {
    const query = this.query;
    this.status.textContent = !query
      ? ""
      : count === 0
        ? "No conversations match"
        : `${count} conversation${count === 1 ? "" : "s"} match`;
  }

  /** Empty the field (signed out, or Escape). */
  clear() {
    clearTimeout(this.#timer);
    this.input.value = "";
    this.status.textContent = "";
  }
}
