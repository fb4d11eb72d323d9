// @ts-check
/**
 * @file The model picker under the message box, fed by `/api/config`'s
 * `models`: shown only when the server offers more than one. The pick is
 * kept in the settings and sent with each message (`model`); a pick the
 * server no longer offers falls back to its default.
 */

/** @typedef {import("./protocol.js").ModelsConfig} ModelsConfig */
/** @typedef {import("./settings.js").Settings} Settings */

export class ModelPicker {
  /** @type {ModelsConfig | null} */
  #models = null;

  /**
   * @param {{ field: HTMLElement, select: HTMLSelectElement }} elements the field (label and select) and its select
   * @param {Settings} settings
   */
  constructor(elements, settings) {
    this.ui = elements;
    this.settings = settings;
    elements.select.addEventListener("change", () => settings.set({ model: elements.select.value }));
    settings.subscribe(() => this.#render());
  }

  /** What the server offers (null: unknown, no picker). @param {ModelsConfig | null | undefined} models */
  configure(models) {
    this.#models = models ?? null;
    const { select } = this.ui;
    select.replaceChildren(
      ...(models?.available ?? []).map(({ id, name }) => {
        const option = document.createElement("option");
        option.value = id;
        option.textContent = name || id;
        return option;
      }),
    );
    this.#render();
  }

  /** The id to send with a message; undefined (the server's default) while there is no choice. */
  get model() {
    const available = this.#models?.available ?? [];
    if (available.length < 2) return undefined;
    const picked = this.settings.values.model;
    return available.some((m) => m.id === picked) ? /** @type {string} */ (picked) : (this.#models?.default ?? available[0].id);
  }

  #render() {
    const model = this.model;
    this.ui.field.hidden = model === undefined;
    if (model !== undefined) this.ui.select.value = model;
  }
}
