// @ts-check
/**
 * @file The signed-in person's settings: theme, spoken replies and their
 * voice, send-on-Enter, the picked model. Kept in localStorage under one
 * key tagged with whose they are, so they survive a reload, and applied at
 * boot before the server has said who is signed in (no flash of the wrong
 * theme). Sign-out removes the key with the rest of the session
 * (`Api.clearSession`), and settings tagged with someone else are never
 * read: the next person starts from the defaults.
 */

const KEY = "colloquy.settings";

/**
 * @typedef {object} SettingValues
 * @property {"system" | "light" | "dark"} theme
 * @property {boolean} speakReplies speak replies aloud while voice is on
 * @property {string | null} voice the voice picked, when the server offers several
 * @property {boolean} sendOnEnter Enter sends (else Ctrl/Cmd+Enter sends and Enter adds a line)
 * @property {string | null} model the model picked (an id of `/api/config` `models.available`)
 */

/** @type {Readonly<SettingValues>} */
export const DEFAULTS = Object.freeze({ theme: "system", speakReplies: true, voice: null, sendOnEnter: true, model: null });

const THEMES = ["system", "light", "dark"];

/**
 * Only well-formed values are taken from storage; anything else is the default.
 * @param {unknown} raw @returns {SettingValues}
 */
function sanitize(raw) {
  const given = raw && typeof raw === "object" ? /** @type {Record<string, unknown>} */ (raw) : {};
  const text = (/** @type {unknown} */ value) => (typeof value === "string" && value.length <= 200 ? value : null);
  return {
    theme: /** @type {SettingValues["theme"]} */ (THEMES.includes(/** @type {string} */ (given.theme)) ? given.theme : DEFAULTS.theme),
    speakReplies: typeof given.speakReplies === "boolean" ? given.speakReplies : DEFAULTS.speakReplies,
    voice: text(given.voice),
    sendOnEnter: typeof given.sendOnEnter === "boolean" ? given.sendOnEnter : DEFAULTS.sendOnEnter,
    model: text(given.model),
  };
}

/** @returns {{ user: string | null, values: SettingValues }} */
function read() {
  try {
    const raw = globalThis.localStorage?.getItem(KEY);
    const parsed = raw ? JSON.parse(raw) : null;
    return { user: typeof parsed?.user === "string" ? parsed.user : null, values: sanitize(parsed) };
  } catch {
    return { user: null, values: { ...DEFAULTS } };
  }
}

export class Settings {
  /** Whose settings these are; null before anyone is known. */
  /** @type {string | null} */
  #user = null;
  /** @type {SettingValues} */
  values = { ...DEFAULTS };
  /** @type {((values: SettingValues) => void)[]} */
  #listeners = [];

  /** Starts with the settings stored on this browser, for whoever holds its session (see the file comment). */
  constructor() {
    const stored = read();
    this.#user = stored.user;
    this.values = stored.values;
  }

  /**
   * `userId` is signed in: keep what is stored if it is theirs, else start
   * from the defaults.
   * @param {string} userId
   */
  use(userId) {
    const stored = read();
    this.#user = userId;
    this.values = stored.user === userId ? stored.values : { ...DEFAULTS };
    this.#save();
    this.#emit();
  }

  /** Nobody is signed in: the defaults (storage is cleared with the session). */
  forget() {
    this.#user = null;
    this.values = { ...DEFAULTS };
    this.#emit();
  }

  /** @param {Partial<SettingValues>} patch */
  set(patch) {
    this.values = sanitize({ ...this.values, ...patch });
    this.#save();
    this.#emit();
  }

  /** Call `listener` with the values now and after every change. @param {(values: SettingValues) => void} listener */
  subscribe(listener) {
    this.#listeners.push(listener);
    listener(this.values);
  }

  #save() {
    if (!this.#user) return;
    try {
      globalThis.localStorage?.setItem(KEY, JSON.stringify({ user: this.#user, ...this.values }));
    } catch {
      // Storage refused (private mode): the settings hold for this page.
    }
  }

  #emit() {
    for (const listener of this.#listeners) listener(this.values);
  }
}
