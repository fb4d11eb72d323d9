// @ts-check
/**
 * @file The daily activity streak in the sidebar (`GET /api/streak`):
 * days in a row with a message, in the user's time zone. Hidden until
 * there is one, and when it cannot be read (the chat works without it).
 */

export class StreakBadge {
  /** @param {HTMLElement} element @param {import("./api.js").Api} api */
  constructor(element, api) {
    this.element = element;
    this.api = api;
    /** Bumped by `clear`: an answer for an earlier session is dropped. */
    this.generation = 0;
  }

  /** Read the streak again (a message may have started a new day). */
  async refresh() {
    const generation = this.generation;
    try {
      const streak = await this.api.streak();
      if (generation === this.generation) this.show(streak.current, streak.longest);
    } catch {
      if (generation === this.generation) this.clear();
    }
  }

  /** @param {number} current @param {number} longest */
  show(current, longest) {
    this.element.hidden = current < 1;
    const days = `${current}-day streak`;
    this.element.textContent = longest > current ? `${days} · best ${longest}` : days;
    this.element.title = "Days in a row with a message";
  }

  /** Signed out: nothing of the last person's streak stays. */
  clear() {
    this.generation += 1;
    this.element.hidden = true;
    this.element.textContent = "";
  }
}
