// @ts-check
/**
 * @file The signed-in person's settings (`settings.js`) applied to the
 * page: the theme, the message box's Enter rule and spoken replies; and the
 * two places they are changed, the settings dialog and the model picker.
 */

import { ModelPicker } from "./model-picker.js";
import { SettingsPanel } from "./settings-panel.js";
import { applyTheme } from "./theme.js";

/**
 * @param {import("./settings.js").Settings} settings
 * @param {{ composer: import("./composer.js").Composer, voice: import("./voice-ui.js").VoiceController }} targets
 */
export function wirePreferences(settings, { composer, voice }) {
  const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const panel = new SettingsPanel({ dialog: /** @type {HTMLDialogElement} */ (byId("settings-dialog")), open: byId("settings-button") }, settings);
  const picker = new ModelPicker({ field: byId("model-field"), select: /** @type {HTMLSelectElement} */ (byId("model-picker")) }, settings);
  settings.subscribe((values) => {
    applyTheme(values.theme);
    composer.setSendOnEnter(values.sendOnEnter);
    voice.setSpeak(values.speakReplies);
  });
  return { panel, picker };
}
