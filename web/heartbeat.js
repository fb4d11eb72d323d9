// @ts-check
/**
 * @file When a chat socket counts as dead, for {@link ColloquyClient}.
 *
 * A connection can die without closing (a network gone, a laptop lid, a
 * NAT forgetting it): the socket stays "open" and nothing arrives. So after
 * a spell of silence the client sends an application `ping` (browsers cannot
 * see protocol-level pings), and when no frame at all arrives before the
 * deadline the socket is declared dead. The spell is short while something
 * is expected (a text awaits its `ack`, a reply is being written) and long
 * when idle, so an idle tab costs one small frame every ~15 s.
 */

/**
 * @typedef {object} HeartbeatOptions
 * @property {number} [heartbeatIntervalMs] silence after which an idle socket sends a `ping` (default 15000)
 * @property {number} [activeHeartbeatIntervalMs] the same while something is expected (default 2000)
 * @property {number} [heartbeatTimeoutMs] the deadline: silence after a `ping` that counts as a dead socket (default 4000)
 * @property {number} [connectTimeoutMs] the same for a socket that has not said `ready` yet (default 10000)
 */

/**
 * @typedef {object} HeartbeatHooks
 * @property {() => void} ping write a `ping`
 * @property {() => void} dead the deadline passed in silence
 * @property {() => boolean} expecting whether a frame is expected soon
 */

export class Heartbeat {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #silence;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #deadline;
  #running = false;

  /** @param {HeartbeatOptions} options read at each use @param {HeartbeatHooks} hooks */
  constructor(options, hooks) {
    this.options = options;
    this.hooks = hooks;
  }

  /** A socket is opening: it must say something before the connect deadline. */
  connecting() {
    this.stop();
    this.#arm(this.options.connectTimeoutMs ?? 10_000);
  }

  /** The socket is ready: from now on silence is watched. */
  ready() {
    this.#running = true;
    this.heard();
  }

  /** A frame arrived: the socket is alive; the silence starts over. */
  heard() {
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
    this.#schedule();
  }

  /** What is expected changed (a text went out, a reply ended): restart the silence with the right spell. */
  update() {
    this.#schedule();
  }

  /** Ask now whether the socket is alive (the browser says it went offline). */
  probe() {
    if (!this.#running) return;
    this.hooks.ping();
    this.#arm();
  }

  stop() {
    this.#running = false;
    clearTimeout(this.#silence);
    clearTimeout(this.#deadline);
    this.#silence = this.#deadline = undefined;
  }

  /** Declare the socket dead unless a frame arrives within `ms` (an armed deadline is kept). */
  #arm(ms = this.options.heartbeatTimeoutMs ?? 4_000) {
    if (this.#deadline !== undefined) return;
    this.#deadline = setTimeout(() => {
      this.stop();
      this.hooks.dead();
    }, ms);
  }

  #schedule() {
    if (!this.#running) return;
    const { heartbeatIntervalMs = 15_000, activeHeartbeatIntervalMs = 2_000 } = this.options;
    clearTimeout(this.#silence);
    this.#silence = setTimeout(
      () => {
        this.#silence = undefined;
        this.hooks.ping();
        this.#arm();
        // The silence goes on: ping again after another spell.
        this.#schedule();
      },
      this.hooks.expecting() ? activeHeartbeatIntervalMs : heartbeatIntervalMs,
    );
  }
}
