// @ts-check
/**
 * @file The connection badge in the top bar ("Connected", "Reconnecting in
 * 3 s…") and the Reconnect button beside it while the socket is down.
 */

/** @typedef {import("./colloquy-client.js").StateChange} StateChange */

const LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

export class ConnectionBadge {
  /** @param {HTMLElement} badge @param {HTMLElement} reconnect @param {() => void} onReconnect */
  constructor(badge, reconnect, onReconnect) {
    this.badge = badge;
    this.reconnect = reconnect;
    reconnect.addEventListener("click", onReconnect);
  }

  /** @param {StateChange} change */
  show(change) {
    let text = LABELS[change.state];
    if (change.state === "reconnecting" && change.delayMs && change.delayMs >= 1000) {
      text = `Reconnecting in ${Math.round(change.delayMs / 1000)} s…`;
    }
    // On a phone only the dot shows; the words stay for screen readers.
    const words = this.badge.querySelector(".badge-text") ?? this.badge;
    if (words.textContent !== text) words.textContent = text;
    this.badge.title = text;
    this.badge.dataset.state = change.state;
    this.badge.hidden = change.state === "idle";
    this.reconnect.hidden = change.state !== "reconnecting" && change.state !== "closed";
  }
}
