// @ts-check
/**
 * @file Colloquy's JavaScript client: one chat socket that survives drops.
 *
 * Usable without the UI (browser or Node with a global `WebSocket`):
 *
 * ```js
 * import { ColloquyClient } from "/colloquy-client.js";
 * const client = new ColloquyClient({ token, conversationId });
 * client.on("delta", (e) => process(e.content));
 * client.connect();
 * client.send("Hello!");
 * ```
 *
 * What it does for you:
 * - reconnects after a drop with exponential backoff and full jitter
 *   (`random(0, min(cap, base * 2^attempt))`, so a restarted server is not
 *   hit by every client at once);
 * - resumes: every reconnect carries `last_seq` (the highest `seq` seen), the
 *   server replays what was missed, and events at or below `last_seq` are
 *   dropped, so nothing is lost or doubled;
 * - queues texts while disconnected; each has a `client_id`, so resending
 *   after a reconnect is idempotent (the server answers a repeat with the
 *   original `ack` and starts no second reply);
 * - notices a dead connection within seconds, even one that went silent
 *   without closing: pings after a spell of silence, and a socket that
 *   answers nothing before the deadline is closed and replaced, with
 *   backoff (see heartbeat.js); the browser saying it went offline sends
 *   a ping at once;
 * - passes tool calls on (`on("tool")`: a `start`, then an `end` with the
 *   result or error, paired by `call_id`); they carry a `seq` like deltas,
 *   so a resume replays them exactly once, in order;
 * - on `resync_required` reloads the conversation over HTTP (its
 *   `tool_calls` hold the calls of the stored replies) and resumes from
 *   what was loaded;
 * - never loops on an authentication failure (close code 1008), and keeps
 *   reconnecting, token kept, when the server is in trouble: 1011 (it
 *   failed, e.g. its database), 1012 (restart), 1013 (full: try later).
 *
 * Voice: `sendAudio()` streams microphone audio (base64 PCM16) and
 * `endAudio()` ends an utterance; the server answers with `speech_started`,
 * `transcript`, then the usual `ack`/`delta`/`message`, and with `tts: true`
 * also `audio` (the spoken reply) and `interrupted` events. Audio is live:
 * it is dropped, never queued, while the socket is down, since replaying
 * stale speech after a reconnect would start turns nobody meant.
 */

/* Wire types (see protocol.js), re-exported for users of this module. */
/** @typedef {import("./protocol.js").Sender} Sender */
/** @typedef {import("./protocol.js").MessageStatus} MessageStatus */
/** @typedef {import("./protocol.js").ReadyEvent} ReadyEvent */
/** @typedef {import("./protocol.js").AckEvent} AckEvent */
/** @typedef {import("./protocol.js").DeltaEvent} DeltaEvent */
/** @typedef {import("./protocol.js").FinalMessageEvent} FinalMessageEvent */
/** @typedef {import("./protocol.js").ChatErrorEvent} ChatErrorEvent */
/** @typedef {import("./protocol.js").PongEvent} PongEvent */
/** @typedef {import("./protocol.js").ToolEvent} ToolEvent */
/** @typedef {import("./protocol.js").ConversationEvent} ConversationEvent */
/** @typedef {import("./protocol.js").SpeechStartedEvent} SpeechStartedEvent */
/** @typedef {import("./protocol.js").TranscriptEvent} TranscriptEvent */
/** @typedef {import("./protocol.js").AudioEvent} AudioEvent */
/** @typedef {import("./protocol.js").InterruptedEvent} InterruptedEvent */
/** @typedef {import("./protocol.js").ServerEvent} ServerEvent */
/** @typedef {import("./protocol.js").ClientEvent} ClientEvent */
/** @typedef {import("./protocol.js").StoredConversation} StoredConversation */
/** @typedef {import("./protocol.js").StoredMessage} StoredMessage */
/** @typedef {import("./protocol.js").StoredToolCall} StoredToolCall */
/** @typedef {import("./protocol.js").ToolError} ToolError */
/**
 * A text waiting for its `ack`: what it says, the model it asks for, and
 * (an edit) the reply it follows, `null` for a new first message.
 * @typedef {{ content: string, model?: string, parentId?: string | null }} PendingText
 */

import { Heartbeat } from "./heartbeat.js";

/** @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} ConnectionState */

/**
 * @typedef {object} StateChange
 * @property {ConnectionState} state
 * @property {number} [attempt] reconnect attempt (1 = first retry)
 * @property {number} [delayMs] wait before the next attempt
 * @property {number} [code] close code that caused the change
 * @property {string} [reason] close reason or why the client dropped the socket
 */

/**
 * What listeners receive, by name.
 * @typedef {object} ClientEventMap
 * @property {StateChange} state connection state changes
 * @property {ServerEvent} event every server event that passed de-duplication
 * @property {ReadyEvent} ready
 * @property {AckEvent} ack
 * @property {DeltaEvent} delta
 * @property {FinalMessageEvent} message
 * @property {ChatErrorEvent} error
 * @property {ToolEvent} tool
 * @property {PongEvent} pong
 * @property {ConversationEvent} conversation
 * @property {SpeechStartedEvent} speech_started the server heard the user start speaking
 * @property {TranscriptEvent} transcript what the user said (an `ack` with the same `client_id` follows)
 * @property {AudioEvent} audio a chunk of a spoken reply
 * @property {InterruptedEvent} interrupted the user spoke over a reply: drop its unplayed audio
 * @property {StoredConversation} resync the conversation was reloaded over HTTP; redraw from it
 * @property {{ client_id: string, content: string, error: ChatErrorEvent }} rejected a queued text the server refused; it will not be resent
 * @property {{ code: number, reason: string }} fatal the server refused the socket (1008); no automatic reconnect
 */

/**
 * @typedef {object} ClientOptions
 * @property {string | (() => string | Promise<string>)} token access token (or a function returning a fresh one)
 * @property {string} [conversationId] conversation to open; omitted: a new one, whose id comes in `ready` (it is stored with its first accepted message; reconnects keep the id)
 * @property {number} [lastSeq] highest seq the caller already has (e.g. from an HTTP load): the first connect resumes after it
 * @property {string} [baseUrl] HTTP origin of the server (default: the page's origin)
 * @property {string} [path] socket path (default `/api/v1/chat/ws`)
 * @property {{ new (url: string): WebSocket }} [WebSocket] WebSocket implementation (default: the global one)
 * @property {typeof fetch} [fetch] fetch implementation, for the resync reload
 * @property {number} [initialDelayMs] first backoff step (default 500)
 * @property {number} [maxDelayMs] backoff cap (default 10000)
 * @property {number} [heartbeatIntervalMs] silence after which an idle socket sends a `ping` (default 15000)
 * @property {number} [activeHeartbeatIntervalMs] the same while a text awaits its `ack` or a reply is being written (default 2000)
 * @property {number} [heartbeatTimeoutMs] the deadline: silence after a `ping` that counts as a dead socket (default 4000)
 * @property {number} [connectTimeoutMs] the same for a socket that has not said `ready` yet (default 10000)
 * @property {() => number} [random] source of jitter in [0, 1) (default Math.random)
 * @property {boolean} [tts] ask the server to speak replies (`?tts=1`) or not (`?tts=0`); unset: the server's default
 */

/** Close codes with a meaning for reconnecting (RFC 6455 section 7.4.1). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** Authentication or ownership failure: retrying cannot help. */
  POLICY: 1008,
  /** The server failed (its storage, say): reconnect with backoff. */
  INTERNAL_ERROR: 1011,
  /** The server restarts: reconnect (and resume). */
  RESTART: 1012,
  /** The server is full, or this socket fell behind: reconnect with backoff. */
  TRY_AGAIN_LATER: 1013,
  /** Sent by this client when it gives up on a silent socket. */
  CLIENT_TIMEOUT: 4000,
});

/** A fresh id for a text's `client_id`. */
export function newClientId() {
  const cryptoApi = globalThis.crypto;
  if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
  return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/**
 * The delay before reconnect attempt `attempt` (0-based): full jitter.
 * @param {number} attempt
 * @param {number} initialMs
 * @param {number} maxMs
 * @param {() => number} random
 */
export function backoffDelay(attempt, initialMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** One resilient chat socket on one conversation. */
export class ColloquyClient {
  /** @type {ConnectionState} */
  #state = "idle";
  /** @type {WebSocket | null} */
  #socket = null;
  /** Whether the current socket has said `ready`. */
  #ready = false;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retryTimer;
  /** Texts not yet acknowledged, in send order: client_id -> the text and the model it asks for. */
  #pending = /** @type {Map<string, PendingText>} */ (new Map());
  /** client_ids written on the current socket and not acknowledged yet. */
  #inFlight = /** @type {string[]} */ ([]);
  /** Replies acknowledged (their `reply_id`) and not final yet. */
  #openReplies = /** @type {Set<string>} */ (new Set());
  #stopWanted = false;
  #needsResync = false;
  /** The `tts` setting the current (or last) socket was opened with. */
  #openedTts = /** @type {boolean | undefined} */ (undefined);
  /** @type {{ [K in keyof ClientEventMap]?: Set<(payload: any) => void> }} */
  #listeners = {};
  #onOnline = () => {
    if (this.#state === "reconnecting") this.reconnect();
  };
  /** The browser lost its network: ask the socket whether it is still alive. */
  #onOffline = () => this.#heartbeat.probe();

  /** @param {ClientOptions} options */
  constructor(options) {
    this.options = options;
    /** The conversation this client talks to (known after `ready` when not given). */
    this.conversationId = options.conversationId ?? null;
    /** Highest `seq` seen; `null` until something is known. */
    this.lastSeq = options.lastSeq ?? null;
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? "").replace(/\/$/, "");
    const impl = options.WebSocket ?? globalThis.WebSocket;
    if (!impl) throw new Error("no WebSocket implementation: pass options.WebSocket");
    this.#WebSocket = impl;
    this.#heartbeat = new Heartbeat(options, {
      ping: () => this.#write({ type: "ping" }),
      dead: () => this.#dropDead(),
      // An ack, or more of a reply.
      expecting: () => this.#pending.size > 0 || this.#openReplies.size > 0,
    });
  }

  /** @type {Heartbeat} */
  #heartbeat;

  /** @type {{ new (url: string): WebSocket }} */
  #WebSocket;

  /** The connection state. */
  get state() {
    return this.#state;
  }

  /** Texts waiting for their `ack` (sent or queued). */
  get pendingCount() {
    return this.#pending.size;
  }

  /** Whether the socket is open and ready: what is sent now is delivered. */
  get isReady() {
    return this.#ready;
  }

  /**
   * Listen to `name`; returns a function that removes the listener.
   * @template {keyof ClientEventMap} K
   * @param {K} name
   * @param {(payload: ClientEventMap[K]) => void} listener
   * @returns {() => void}
   */
  on(name, listener) {
    const set = (this.#listeners[name] ??= new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Open the socket (no-op when already open or connecting). */
  connect() {
    if (this.#state === "open" || this.#state === "connecting") return;
    this.#listenToNetwork(true);
    this.#attempt = 0;
    this.#open("connecting");
  }

  /** Reconnect now: drop the current socket (if any) and reset the backoff. */
  reconnect() {
    this.#teardown(CloseCode.NORMAL, "reconnecting");
    clearTimeout(this.#retryTimer);
    this.#listenToNetwork(true);
    this.#attempt = 0;
    this.#open("reconnecting");
  }

  /** Close for good (until `connect()`); queued texts are kept. */
  disconnect() {
    clearTimeout(this.#retryTimer);
    this.#listenToNetwork(false);
    this.#teardown(CloseCode.NORMAL, "client disconnect");
    this.#setState({ state: "closed", reason: "disconnected" });
  }

  /**
   * Send a user message. Queued while disconnected and resent after a
   * reconnect until acknowledged; returns its `client_id`.
   * @param {string} content
   * @param {{ clientId?: string, model?: string, parentId?: string | null }} [options] `model`: one of `/api/config`'s `models.available` ids (default: the server's);
   *   `parentId` (an edit): the reply it follows, `null` for a new first message (default: the end of the conversation)
   */
  send(content, options = {}) {
    const clientId = options.clientId ?? newClientId();
    const text = { content, model: options.model, parentId: options.parentId };
    this.#pending.set(clientId, text);
    if (this.#ready) {
      this.#writeText(clientId, text);
      this.#heartbeat.update();
    }
    return clientId;
  }

  /**
   * Ask for a new reply to the question reply `replyId` answered, kept
   * beside it. Not queued: returns whether it was written.
   * @param {string} replyId @param {{ model?: string }} [options]
   */
  regenerate(replyId, options = {}) {
    return this.#write({ type: "regenerate", message_id: replyId, ...(options.model ? { model: options.model } : {}) });
  }

  /** Cancel the reply in progress (delivered after a reconnect if the socket is down). */
  stop() {
    if (this.#ready) this.#write({ type: "stop" });
    else this.#stopWanted = true;
  }

  /**
   * Send one chunk of microphone audio (base64 PCM16 LE mono). Returns
   * whether it was written: while the socket is down audio is dropped,
   * never queued (see the file comment).
   * @param {string} data
   * @param {number} [sampleRate] Hz (default 16000)
   */
  sendAudio(data, sampleRate = 16_000) {
    return this.#ready && this.#write({ type: "audio", data, sample_rate: sampleRate });
  }

  /** The microphone was turned off: have the server transcribe what is pending. Not queued either. */
  endAudio() {
    return this.#ready && this.#write({ type: "audio_end" });
  }

  /**
   * Whether the server should speak replies on this socket. Takes effect at
   * the next connection (`reconnect()` to apply it now, which resumes
   * seamlessly); returns whether the setting changed.
   * @param {boolean | undefined} tts
   */
  setTts(tts) {
    if (this.options.tts === tts) return false;
    this.options.tts = tts;
    return true;
  }

  /** Whether the current connection was opened with the current `tts` setting. */
  get ttsApplied() {
    return this.#openedTts === this.options.tts;
  }

  /** Swap the token used by the next connection attempt. */
  setToken(/** @type {ClientOptions["token"]} */ token) {
    this.options.token = token;
  }

  // ---- internals -------------------------------------------------------

  /**
   * @template {keyof ClientEventMap} K
   * @param {K} name
   * @param {ClientEventMap[K]} payload
   */
  #emit(name, payload) {
    for (const listener of this.#listeners[name] ?? []) {
      try {
        listener(payload);
      } catch (error) {
        // A listener's bug must not break the connection loop.
        console.error(error);
      }
    }
  }

  /** @param {boolean} on */
  #listenToNetwork(on) {
    const method = on ? "addEventListener" : "removeEventListener";
    globalThis[method]?.("online", this.#onOnline);
    globalThis[method]?.("offline", this.#onOffline);
  }

  /** @param {StateChange} change */
  #setState(change) {
    this.#state = change.state;
    this.#emit("state", change);
  }

  async #token() {
    const { token } = this.options;
    return typeof token === "function" ? await token() : token;
  }

  /** @param {string} token */
  #socketUrl(token) {
    const base = this.baseUrl.replace(/^http/, "ws");
    const query = new URLSearchParams({ token });
    if (this.conversationId) query.set("conversationId", this.conversationId);
    if (this.lastSeq !== null) query.set("last_seq", String(this.lastSeq));
    if (this.#openedTts !== undefined) query.set("tts", this.#openedTts ? "1" : "0");
    return `${base}${this.options.path ?? "/api/v1/chat/ws"}?${query}`;
  }

  /** @param {ConnectionState} state */
  async #open(state) {
    // Decided now, not after the awaits below: `ttsApplied` is then true
    // for an attempt already under way.
    this.#openedTts = this.options.tts;
    this.#setState({ state, attempt: this.#attempt });
    let token;
    try {
      if (this.#needsResync) await this.#resync();
      token = await this.#token();
    } catch (error) {
      this.#scheduleReconnect(String(error instanceof Error ? error.message : error));
      return;
    }
    // disconnect() or reconnect() may have run while we awaited.
    if (this.#state !== state || this.#socket) return;
    const socket = new this.#WebSocket(this.#socketUrl(token));
    this.#socket = socket;
    this.#ready = false;
    this.#inFlight = [];
    // A handshake that never completes counts as a dead socket too.
    this.#heartbeat.connecting();
    socket.onmessage = (message) => this.#onFrame(message.data);
    socket.onclose = (close) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#ready = false;
      this.#heartbeat.stop();
      // Only a policy close is final; any other (1011, 1012, 1013, a
      // dropped connection) is retried with backoff, token and queue kept.
      if (close.code === CloseCode.POLICY) {
        this.#listenToNetwork(false);
        this.#setState({ state: "closed", code: close.code, reason: close.reason });
        this.#emit("fatal", { code: close.code, reason: close.reason });
        return;
      }
      this.#scheduleReconnect(close.reason || `closed (${close.code})`, close.code);
    };
    // Errors are followed by a close event, which decides what happens.
    socket.onerror = () => {};
  }

  /** @param {string} reason @param {number} [code] */
  #scheduleReconnect(reason, code) {
    const { initialDelayMs = 500, maxDelayMs = 10_000, random = Math.random } = this.options;
    const delayMs = backoffDelay(this.#attempt, initialDelayMs, maxDelayMs, random);
    this.#attempt += 1;
    this.#setState({ state: "reconnecting", attempt: this.#attempt, delayMs, code, reason });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#open("reconnecting"), delayMs);
  }

  /** Detach and close the current socket without triggering a reconnect. */
  #teardown(/** @type {number} */ code, /** @type {string} */ reason) {
    this.#heartbeat.stop();
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = false;
    if (!socket) return;
    socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  /** Drop a socket that went silent and reconnect. */
  #dropDead() {
    this.#teardown(CloseCode.CLIENT_TIMEOUT, "heartbeat timeout");
    this.#scheduleReconnect("no answer from the server");
  }

  /** @param {ClientEvent} event */
  #write(event) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== 1) return false;
    socket.send(JSON.stringify(event));
    return true;
  }

  /** @param {string} clientId @param {PendingText} text */
  #writeText(clientId, { content, model, parentId }) {
    // No `model`: the server's default (and what older servers understand).
    // No `parent_id`: the end of the conversation (an edit names one).
    const branch = parentId !== undefined ? { parent_id: parentId } : {};
    if (this.#write({ type: "text", content, client_id: clientId, ...(model ? { model } : {}), ...branch })) this.#inFlight.push(clientId);
  }

  /** @param {unknown} data */
  #onFrame(data) {
    // Any frame proves the socket is alive.
    this.#heartbeat.heard();
    if (typeof data !== "string") return;
    /** @type {ServerEvent} */
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (!event || typeof event.type !== "string") return;
    if (event.type === "ready") return this.#onReady(event);
    const seq = "seq" in event ? event.seq : undefined;
    if (typeof seq === "number") {
      // Replays overlap what we have: at-or-below last_seq was seen already.
      if (this.lastSeq !== null && seq <= this.lastSeq) return;
      this.lastSeq = seq;
    }
    if (event.type === "ack") {
      if (event.reply_id) this.#openReplies.add(event.reply_id);
      if (event.client_id) {
        this.#pending.delete(event.client_id);
        this.#inFlight = this.#inFlight.filter((id) => id !== event.client_id);
      }
    }
    if (event.type === "message") this.#openReplies.delete(event.message_id);
    if (event.type === "ack" || event.type === "message") this.#heartbeat.update();
    if (event.type === "error" && seq === undefined) {
      if (event.code === "resync_required") return this.#startResync();
      this.#maybeReject(event);
    }
    this.#emit("event", event);
    // The switch narrows the event for each typed listener.
    switch (event.type) {
      case "ack":
        return this.#emit("ack", event);
      case "delta":
        return this.#emit("delta", event);
      case "message":
        return this.#emit("message", event);
      case "error":
        return this.#emit("error", event);
      case "tool":
        return this.#emit("tool", event);
      case "pong":
        return this.#emit("pong", event);
      case "conversation":
        return this.#emit("conversation", event);
      case "speech_started":
        return this.#emit("speech_started", event);
      case "transcript":
        return this.#emit("transcript", event);
      case "audio":
        return this.#emit("audio", event);
      case "interrupted":
        return this.#emit("interrupted", event);
    }
  }

  /** @param {ReadyEvent} event */
  #onReady(event) {
    this.conversationId = event.conversation_id;
    // Without a resume point, "now" is where this client starts.
    if (this.lastSeq === null) this.lastSeq = event.last_seq;
    this.#ready = true;
    this.#attempt = 0;
    this.#setState({ state: "open" });
    this.#emit("event", event);
    this.#emit("ready", event);
    if (this.#stopWanted) {
      this.#stopWanted = false;
      this.#write({ type: "stop" });
    }
    // Resend everything unacknowledged; the server dedupes by client_id.
    for (const [clientId, text] of this.#pending) this.#writeText(clientId, text);
    this.#heartbeat.ready();
  }

  /**
   * An error refusing a text names it by `client_id`; that text is dropped
   * from the queue, since resending it would be refused again. (Without a
   * `client_id`, the text can be identified only when exactly one awaits its
   * ack on this socket.) Errors that may pass on retry keep it queued.
   * @param {ChatErrorEvent} event
   */
  #maybeReject(event) {
    const retryable = ["shutting_down", "storage_error", "invalid_event"].includes(event.code);
    if (retryable) return;
    const clientId = event.client_id ?? (this.#inFlight.length === 1 ? this.#inFlight[0] : undefined);
    if (clientId === undefined) return;
    const text = this.#pending.get(clientId);
    this.#inFlight = this.#inFlight.filter((id) => id !== clientId);
    if (text === undefined) return;
    this.#pending.delete(clientId);
    this.#emit("rejected", { client_id: clientId, content: text.content, error: event });
  }

  /** The server cannot replay exactly: reload over HTTP, then reconnect. */
  #startResync() {
    this.#needsResync = true;
    this.#teardown(CloseCode.NORMAL, "resync");
    this.#scheduleReconnect("resync required");
  }

  async #resync() {
    if (!this.conversationId) {
      this.#needsResync = false;
      return;
    }
    const fetchImpl = this.options.fetch ?? globalThis.fetch.bind(globalThis);
    const token = await this.#token();
    const response = await fetchImpl(
      `${this.baseUrl}/api/conversations/${encodeURIComponent(this.conversationId)}`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    if (!response.ok) throw new Error(`reloading the conversation failed (${response.status})`);
    /** @type {StoredConversation} */
    const conversation = await response.json();
    // Resume after what the reload holds: the server replays the rest.
    this.lastSeq = conversation.messages.reduce((max, m) => Math.max(max, m.seq), 0);
    this.#needsResync = false;
    // Replies whose question is stored but not themselves are still open.
    const stored = new Set(conversation.messages.map((m) => m.id));
    this.#openReplies = new Set(conversation.messages.flatMap((m) => (m.reply_id && !stored.has(m.reply_id) ? [m.reply_id] : [])));
    this.#emit("resync", conversation);
  }
}
