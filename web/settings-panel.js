// @ts-check
/**
 * @file The settings dialog: theme, spoken replies (and the voice they are
 * spoken in), send-on-Enter. Every change applies at once and is kept
 * (`settings.js`); Done or Escape closes it, back to the button that
 * opened it.
 */

import { openPanel } from "./dialog.js";

/** @typedef {import("./settings.js").Settings} Settings */
/** @typedef {import("./protocol.js").VoiceConfig} VoiceConfig */

/**
 * A Piper voice id (`en_US-joe-medium`) as people say it: "Joe (American English)".
 * @param {string} id
 */
export function voiceLabel(id) {
  const [locale, name] = id.split("-");
  if (!locale || !name) return id;
  let language = locale;
  try {
    language = new Intl.DisplayNames(["en"], { type: "language" }).of(locale.replace("_", "-")) ?? locale;
  } catch {
    // Not a locale Intl knows: shown as written.
  }
  return `${name.charAt(0).toUpperCase()}${name.slice(1)} (${language})`;
}

export class SettingsPanel {
  /**
   * @param {{ dialog: HTMLDialogElement, open: HTMLElement }} elements
   * @param {Settings} settings
   */
  constructor(elements, settings) {
    this.ui = elements;
    this.settings = settings;
    const form = /** @type {HTMLFormElement} */ (elements.dialog.querySelector("form"));
    this.form = form;
    elements.open.addEventListener("click", () => this.open());
    form.addEventListener("change", (event) => {
      const input = /** @type {HTMLInputElement} */ (event.target);
      if (input.name === "theme") settings.set({ theme: /** @type {"system" | "light" | "dark"} */ (input.value) });
      else if (input.name === "speakReplies") settings.set({ speakReplies: input.checked });
      else if (input.name === "sendOnEnter") settings.set({ sendOnEnter: input.checked });
    });
    settings.subscribe((values) => {
      for (const radio of this.#inputs("theme")) radio.checked = radio.value === values.theme;
      this.#input("speakReplies").checked = values.speakReplies;
      this.#input("sendOnEnter").checked = values.sendOnEnter;
    });
  }

  /**
   * Show the voice settings only where the server speaks; name its voice
   * (there is one to a server for now, so there is nothing to choose).
   * @param {VoiceConfig | null | undefined} voice
   */
  configure(voice) {
    const section = /** @type {HTMLElement} */ (this.form.querySelector("#voice-settings"));
    section.hidden = !voice?.available;
    const voices = voice?.voices ?? [];
    const name = /** @type {HTMLElement} */ (this.form.querySelector("#voice-name"));
    name.hidden = voices.length === 0;
    name.textContent = voices.length ? `Replies are spoken in the voice ${voices.map(voiceLabel).join(", ")}.` : "";
  }

  open() {
    openPanel(this.ui.dialog, this.ui.open);
  }

  /** Close it (signed out). */
  close() {
    if (this.ui.dialog.open) this.ui.dialog.close();
  }

  /** @param {string} name */
  #inputs(name) {
    return /** @type {HTMLInputElement[]} */ ([...this.form.querySelectorAll(`input[name="${name}"]`)]);
  }

  /** @param {string} name */
  #input(name) {
    return this.#inputs(name)[0];
  }
}
