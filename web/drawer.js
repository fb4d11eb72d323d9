// @ts-check
/**
 * @file The conversation list as a drawer on narrow screens: the menu
 * button opens it, the scrim, its close button and Escape close it.
 */

export class Drawer {
  /**
   * @param {{ chat: HTMLElement, sidebar: HTMLElement, main: HTMLElement, scrim: HTMLElement, menu: HTMLElement, close: HTMLElement }} elements
   */
  constructor(elements) {
    this.ui = elements;
    elements.menu.addEventListener("click", () => this.open());
    elements.scrim.addEventListener("click", () => this.close());
    elements.close.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
    });
  }

  get isOpen() {
    return this.ui.chat.classList.contains("drawer-open");
  }

  open() {
    this.ui.chat.classList.add("drawer-open");
    this.ui.scrim.hidden = false;
    this.ui.menu.setAttribute("aria-expanded", "true");
    /** @type {HTMLElement | null} */ (this.ui.sidebar.querySelector(".conv-link, #new-chat"))?.focus();
  }

  /** Close it; focus returns to the menu button unless `focus` is false. */
  close({ focus = true } = {}) {
    if (!this.isOpen) return;
    this.ui.chat.classList.remove("drawer-open");
    this.ui.scrim.hidden = true;
    this.ui.menu.setAttribute("aria-expanded", "false");
    if (focus) this.ui.menu.focus();
  }
}
