// @ts-check
/**
 * @file The conversation list as a drawer on narrow screens: the menu
 * button opens it, the scrim, its close button and Escape close it.
 *
 * While it is open it holds focus, as a modal dialog does: the rest of the
 * page is inert and Tab wraps around inside it. While it is closed (off
 * screen) it is inert itself, so Tab never wanders into it.
 */

/** Below this width the sidebar is a drawer (mirrors style.css). */
const NARROW = "(max-width: 820px)";
const FOCUSABLE = "button, a[href], input, textarea, select, [tabindex]:not([tabindex='-1'])";

/**
 * @typedef {object} DrawerElements
 * @property {HTMLElement} chat the layout that gets `drawer-open`
 * @property {HTMLElement} sidebar the drawer
 * @property {HTMLElement[]} rest what is inert while the drawer is open
 * @property {HTMLElement} scrim
 * @property {HTMLElement} menu the button that opens it
 * @property {HTMLElement} close its close button
 */

export class Drawer {
  /** @param {DrawerElements} elements */
  constructor(elements) {
    this.ui = elements;
    this.narrow = globalThis.matchMedia?.(NARROW);
    elements.menu.addEventListener("click", () => this.open());
    elements.scrim.addEventListener("click", () => this.close());
    elements.close.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      // An Escape something inside already used (cancelling a rename) is not for the drawer.
      if (event.key === "Escape" && !event.defaultPrevented && this.isOpen && !document.querySelector("dialog[open]")) {
        event.preventDefault();
        this.close();
      }
    });
    elements.sidebar.addEventListener("keydown", (event) => this.#wrapTab(event));
    this.narrow?.addEventListener("change", () => this.#sync());
    this.#sync();
  }

  get isOpen() {
    return this.ui.chat.classList.contains("drawer-open");
  }

  open() {
    this.ui.chat.classList.add("drawer-open");
    this.#sync();
    /** @type {HTMLElement | null} */ (this.ui.sidebar.querySelector(".conv-link[aria-current], .conv-link, #new-chat"))?.focus();
  }

  /** Close it; focus returns to the menu button unless `focus` is false. */
  close({ focus = true } = {}) {
    if (!this.isOpen) return;
    this.ui.chat.classList.remove("drawer-open");
    this.#sync();
    if (focus) this.ui.menu.focus();
  }

  /** Whether the drawer is a modal one now (open, on a narrow screen). */
  get #modal() {
    return this.isOpen && Boolean(this.narrow?.matches);
  }

  #sync() {
    const open = this.isOpen;
    const narrow = Boolean(this.narrow?.matches);
    const modal = this.#modal;
    this.ui.scrim.hidden = !open;
    this.ui.menu.setAttribute("aria-expanded", String(open));
    for (const element of this.ui.rest) element.inert = modal;
    this.ui.sidebar.inert = narrow && !open;
    if (modal) {
      this.ui.sidebar.setAttribute("role", "dialog");
      this.ui.sidebar.setAttribute("aria-modal", "true");
    } else {
      this.ui.sidebar.removeAttribute("role");
      this.ui.sidebar.removeAttribute("aria-modal");
    }
  }

  /** Tab past the last control comes back to the first, and the reverse. @param {KeyboardEvent} event */
  #wrapTab(event) {
    if (event.key !== "Tab" || !this.#modal) return;
    const controls = [...this.ui.sidebar.querySelectorAll(FOCUSABLE)].filter(
      (el) => /** @type {HTMLElement} */ (el).getClientRects().length > 0,
    );
    const first = /** @type {HTMLElement | undefined} */ (controls[0]);
    const last = /** @type {HTMLElement | undefined} */ (controls[controls.length - 1]);
    if (!first || !last) return;
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }
}
