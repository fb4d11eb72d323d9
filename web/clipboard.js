// @ts-check
/**
 * @file Copy to the clipboard, with a fallback for browsers (or insecure
 * origins) without the async Clipboard API, and brief "Copied" feedback.
 */

/**
 * Copy `text` and say so on `button` for a moment.
 * @param {string} text
 * @param {HTMLElement} button
 */
export async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API refused (permissions, insecure origin): select instead.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.querySelector(".msg-action-label") ?? button;
  const before = label.textContent;
  label.textContent = "Copied";
  button.classList.add("copied");
  setTimeout(() => {
    label.textContent = before;
    button.classList.remove("copied");
  }, 1500);
}
