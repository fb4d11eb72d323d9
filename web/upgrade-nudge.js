// @ts-check
/**
 * @file The upgrade nudge: when the server refuses a turn with
 * `quota_exceeded`, a banner above the composer says which daily limit of
 * which plan was reached and when it resets, and offers an upgrade. Showing
 * it records the `paywall_shown` analytics event; its button records
 * `upgrade_clicked` and starts checkout (`POST /api/billing/checkout`) for
 * a plan the server sells (`/api/config`'s `billing.plans`, the first one
 * other than the user's own): the answer's `url` is opened, and an error (a
 * server without billing answers 501, or sells no plan) is shown in the
 * banner.
 */

import { ApiError } from "./api.js";

/**
 * The quota fields of a `quota_exceeded` error (socket event or HTTP body).
 * @typedef {object} QuotaDetails
 * @property {string} plan
 * @property {string} limit `messages_per_day`, `tokens_per_day` or `voice_seconds_per_day`
 * @property {number} [max]
 * @property {string} resets_at RFC 3339
 */

/** What each limit is called in the banner. */
const LIMIT_NAMES = Object.freeze({
  messages_per_day: "messages",
  tokens_per_day: "tokens",
  voice_seconds_per_day: "voice minutes",
});

/**
 * The banner's text for `details`.
 * @param {QuotaDetails} details
 */
export function nudgeText(details) {
  const what = LIMIT_NAMES[/** @type {keyof typeof LIMIT_NAMES} */ (details.limit)] ?? "usage";
  const resets = new Date(details.resets_at);
  const when = Number.isNaN(resets.getTime())
    ? "tomorrow"
    : `at ${resets.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  return `You have used today's ${what} on the ${details.plan} plan. It resets ${when}, or upgrade for more.`;
}

export class UpgradeNudge {
  /** @type {QuotaDetails | null} */
  #details = null;
  /** The plans the server sells, from `/api/config`. @type {string[]} */
  #plans = [];

  /**
   * @param {HTMLElement} root the banner, holding `#upgrade-nudge-text`,
   *   `-error`, `-upgrade` and `-close`
   * @param {import("./api.js").Api} api
   * @param {(url: string) => void} [navigate] how to open the checkout page
   */
  constructor(root, api, navigate = (url) => globalThis.location.assign(url)) {
    /** @param {string} part */
    const part = (part) => /** @type {HTMLElement} */ (root.querySelector(`#upgrade-nudge-${part}`));
    this.ui = {
      root,
      text: part("text"),
      error: part("error"),
      upgrade: /** @type {HTMLButtonElement} */ (part("upgrade")),
      close: part("close"),
    };
    this.api = api;
    this.navigate = navigate;
    this.ui.upgrade.addEventListener("click", () => void this.upgrade());
    this.ui.close.addEventListener("click", () => this.hide());
  }

  /**
   * Take the server's billing settings (`/api/config`'s `billing`).
   * @param {{ plans?: string[] } | undefined} billing
   */
  configure(billing) {
    this.#plans = Array.isArray(billing?.plans) ? billing.plans.filter((plan) => typeof plan === "string") : [];
  }

  /**
   * Show the banner for a refused turn's `error` event, if it carries the quota fields.
   * @param {import("./protocol.js").ChatErrorEvent} event
   */
  showFor(event) {
    if (event.plan && event.limit && event.resets_at) {
      this.show({ plan: event.plan, limit: event.limit, max: event.max, resets_at: event.resets_at });
    }
  }

  /** Whether the banner is showing. */
  get shown() {
    return !this.ui.root.hidden;
  }

  /** Show the banner for a refused turn and record that it was shown. @param {QuotaDetails} details */
  show(details) {
    this.#details = details;
    this.ui.text.textContent = nudgeText(details);
    this.ui.error.textContent = "";
    this.ui.error.hidden = true;
    this.ui.upgrade.disabled = false;
    this.ui.root.hidden = false;
    void this.#record("paywall_shown");
  }

  hide() {
    this.ui.root.hidden = true;
  }

  /** Record `upgrade_clicked`, then open checkout or say why it cannot be. */
  async upgrade() {
    this.ui.upgrade.disabled = true;
    void this.#record("upgrade_clicked");
    try {
      const current = this.#details?.plan;
      const plan = this.#plans.find((name) => name !== current) ?? this.#plans[0];
      if (!plan) throw new ApiError(501, "billing_not_configured", "Upgrades are not offered on this server.");
      const answer = await this.api.request("POST", "/api/billing/checkout", { plan });
      if (typeof answer?.url !== "string") throw new ApiError(500, "checkout_failed", "Checkout did not start.");
      this.navigate(answer.url);
    } catch (error) {
      this.ui.error.textContent = error instanceof Error ? error.message : String(error);
      this.ui.error.hidden = false;
      this.ui.upgrade.disabled = false;
    }
  }

  /** Record an analytics event about the nudge; a failure is not the user's concern. @param {string} name */
  async #record(name) {
    const details = this.#details;
    const properties = details ? { plan: details.plan, limit: details.limit } : {};
    try {
      await this.api.request("POST", "/api/analytics/events", [{ name, properties }]);
    } catch {
      // Analytics are best effort.
    }
  }
}
