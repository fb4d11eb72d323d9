// @ts-check
/**
 * @file Who is signed in, in the sidebar's foot: their name, "create an
 * account to keep these chats" for a guest, and Sign out. A guest's chats
 * live only in their guest session, so before a guest with chats signs
 * out they are offered to create an account first (which keeps them).
 */

import { ask } from "./dialog.js";

/** @typedef {import("./api.js").User} User */

/**
 * @typedef {object} AccountHooks
 * @property {() => void} signOut
 * @property {() => void} claim open the "create an account" screen that keeps a guest's chats
 * @property {() => number} conversations how many conversations the list holds
 */

/** @param {number} n */
const conversationsText = (n) => (n === 1 ? "Your conversation is" : `Your ${n} conversations are`);

export class Account {
  /** @type {User | null} */
  #user = null;

  /**
   * @param {{ name: HTMLElement, avatar: HTMLElement, claim: HTMLElement, signOut: HTMLElement, dialog: HTMLDialogElement }} elements
   * @param {AccountHooks} hooks
   */
  constructor(elements, hooks) {
    this.ui = elements;
    this.hooks = hooks;
    elements.claim.addEventListener("click", () => hooks.claim());
    elements.signOut.addEventListener("click", () => this.#signOut());
  }

  /** @param {User | null} user */
  show(user) {
    this.#user = user;
    const anonymous = !user || user.is_anonymous;
    const name = anonymous ? "Guest session" : user?.full_name || user?.email || "Signed in";
    this.ui.name.textContent = name;
    this.ui.avatar.textContent = anonymous ? "G" : name.trim().charAt(0).toUpperCase();
    this.ui.claim.hidden = !anonymous;
  }

  /** Nobody is signed in. */
  clear() {
    this.#user = null;
    this.ui.name.textContent = "";
    this.ui.avatar.textContent = "";
    this.ui.claim.hidden = true;
  }

  async #signOut() {
    const count = this.hooks.conversations();
    if (!this.#user?.is_anonymous || count === 0) return this.hooks.signOut();
    const answer = await ask(this.ui.dialog, {
      title: "Sign out of this guest session?",
      text: `${conversationsText(count)} kept only in this guest session: once you sign out, ${count === 1 ? "it" : "they"} cannot be opened again. Create an account to keep ${count === 1 ? "it" : "them"}.`,
      answers: [
        { value: "cancel", label: "Cancel" },
        { value: "signout", label: "Sign out anyway", kind: "danger" },
        { value: "create", label: "Create account", kind: "primary" },
      ],
    });
    if (answer === "signout") this.hooks.signOut();
    else if (answer === "create") this.hooks.claim();
  }
}
