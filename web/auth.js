// @ts-check
/**
 * @file The sign-in screen: sign in, create an account, or continue
 * anonymously. An anonymous session's token is remembered, so signing in
 * later (from the "keep these chats" button) claims its conversations.
 */

import { ApiError } from "./api.js";

/** @typedef {import("./api.js").Api} Api */
/** @typedef {import("./api.js").User} User */

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @typedef {"email" | "password" | "name"} Field */

/** The fields a refusal from the server is about, by its code. */
const FIELDS_OF = /** @type {Record<string, Field[]>} */ ({
  invalid_credentials: ["email", "password"],
  conflict: ["email"],
  invalid_email: ["email"],
  invalid_password: ["password"],
  invalid_full_name: ["name"],
});

export class AuthView {
  /** @type {"login" | "register"} */
  #mode = "login";
  #busy = false;

  /**
   * @param {Api} api
   * @param {(user: User, note?: string) => void} onSignedIn
   * @param {() => void} onCancel back to the chat (when opened from it)
   */
  constructor(api, onSignedIn, onCancel) {
    this.api = api;
    this.onSignedIn = onSignedIn;
    this.root = byId("auth-view");
    this.form = /** @type {HTMLFormElement} */ (byId("auth-form"));
    this.error = byId("auth-error");
    this.email = /** @type {HTMLInputElement} */ (byId("auth-email"));
    this.password = /** @type {HTMLInputElement} */ (byId("auth-password"));
    this.name = /** @type {HTMLInputElement} */ (byId("auth-name"));
    this.tabs = { login: byId("tab-login"), register: byId("tab-register") };
    this.anonButton = /** @type {HTMLButtonElement} */ (byId("anon-button"));
    this.cancelButton = byId("auth-cancel");

    for (const mode of /** @type {const} */ (["login", "register"])) {
      this.tabs[mode].addEventListener("click", () => this.setMode(mode));
    }
    // Arrow keys move between the two tabs (the ARIA tabs pattern).
    byId("tab-login").parentElement?.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = this.#mode === "login" ? "register" : "login";
      this.setMode(next);
      this.tabs[next].focus();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit();
    });
    this.anonButton.addEventListener("click", () => this.#anonymous());
    this.cancelButton.addEventListener("click", onCancel);
  }

  /**
   * @param {{ mode?: "login" | "register", message?: string, claiming?: boolean }} [options]
   * `claiming`: opened by an anonymous user to keep their chats.
   */
  show(options = {}) {
    const { mode = "login", message, claiming = false } = options;
    this.root.hidden = false;
    this.anonButton.hidden = claiming;
    this.root.querySelector(".divider")?.toggleAttribute("hidden", claiming);
    this.cancelButton.hidden = !claiming;
    byId("auth-title").textContent = claiming ? "Keep your chats" : "Welcome to Colloquy";
    byId("auth-subtitle").textContent = claiming
      ? "Create an account (or sign in) and your conversations move with you."
      : "Sign in to pick up where you left off, or just start chatting.";
    this.setMode(mode);
    this.#showError(message ?? "");
    this.email.focus();
  }

  hide() {
    this.root.hidden = true;
  }

  /** Empty the form, so the next person finds nothing of the last one. */
  reset() {
    this.form.reset();
    this.#showError("");
    this.setMode("login");
  }

  /** @param {"login" | "register"} mode */
  setMode(mode) {
    this.#mode = mode;
    for (const [name, tab] of Object.entries(this.tabs)) {
      const selected = name === mode;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    this.form.setAttribute("aria-labelledby", `tab-${mode}`);
    byId("name-field").hidden = mode !== "register";
    byId("password-hint").hidden = mode !== "register";
    this.password.autocomplete = mode === "register" ? "new-password" : "current-password";
    byId("auth-submit").textContent = mode === "register" ? "Create account" : "Sign in";
    this.#showError("");
  }

  /**
   * Show (or with "", clear) the form's error, tied to the fields it is
   * about: they are marked invalid and described by it.
   * @param {string} text
   * @param {Field[]} [fields]
   */
  #showError(text, fields = []) {
    this.error.textContent = text;
    this.error.hidden = !text;
    const inputs = { email: this.email, password: this.password, name: this.name };
    for (const [field, input] of Object.entries(inputs)) {
      const tied = Boolean(text) && fields.includes(/** @type {Field} */ (field));
      const described = (input.getAttribute("aria-describedby") ?? "").split(/\s+/).filter((id) => id && id !== this.error.id);
      if (tied) described.push(this.error.id);
      if (described.length) input.setAttribute("aria-describedby", described.join(" "));
      else input.removeAttribute("aria-describedby");
      if (tied) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  async #submit() {
    if (this.#busy) return;
    const email = this.email.value.trim();
    const password = this.password.value;
    if (!email || !password) {
      /** @type {Field[]} */
      const missing = [];
      if (!email) missing.push("email");
      if (!password) missing.push("password");
      this.#showError(email ? "Enter your password." : password ? "Enter your email." : "Enter your email and password.", missing);
      (email ? this.password : this.email).focus();
      return;
    }
    if (this.#mode === "register" && password.length < 8) {
      this.#showError("Choose a password of at least 8 characters.", ["password"]);
      this.password.focus();
      return;
    }
    /** @type {{ email: string, password: string, full_name?: string }} */
    const credentials = { email, password };
    const name = this.name.value.trim();
    if (this.#mode === "register" && name) credentials.full_name = name;
    await this.#run(async () => {
      const response = await this.api.signIn(this.#mode, credentials);
      this.api.token = response.access_token;
      this.password.value = "";
      this.onSignedIn(response.user, await this.#claim());
    });
  }

  async #anonymous() {
    await this.#run(async () => {
      const response = await this.api.anonymous();
      this.api.token = response.access_token;
      this.api.anonymousToken = response.access_token;
      this.onSignedIn(response.user);
    });
  }

  /** Move a remembered anonymous session's chats to the new account. */
  async #claim() {
    const anonymous = this.api.anonymousToken;
    if (!anonymous) return undefined;
    this.api.anonymousToken = null;
    try {
      const result = await this.api.claim(anonymous);
      const moved = result?.claimed_conversations ?? 0;
      return moved ? `${moved} conversation${moved === 1 ? "" : "s"} moved to your account.` : undefined;
    } catch {
      // An expired guest session has nothing left to claim.
      return undefined;
    }
  }

  /** @param {() => Promise<void>} action */
  async #run(action) {
    this.#busy = true;
    this.root.setAttribute("aria-busy", "true");
    this.#showError("");
    try {
      await action();
    } catch (error) {
      const text =
        error instanceof ApiError
          ? error.code === "conflict"
            ? "An account with this email already exists. Sign in instead?"
            : error.message
          : "Something went wrong. Please try again.";
      this.#showError(text, error instanceof ApiError ? (FIELDS_OF[error.code] ?? []) : []);
    } finally {
      this.#busy = false;
      this.root.removeAttribute("aria-busy");
    }
  }
}
