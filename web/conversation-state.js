// @ts-check
/**
 * @file The conversation as the UI shows it, built from stored messages and
 * live socket events. No DOM here: it only says which messages changed, so
 * the view can redraw just those (once per animation frame).
 */

/** @typedef {import("./colloquy-client.js").ServerEvent} ServerEvent */
/** @typedef {import("./colloquy-client.js").StoredMessage} StoredMessage */
/** @typedef {import("./colloquy-client.js").ToolEvent} ToolEvent */
/** @typedef {import("./protocol.js").StoredToolCall} StoredToolCall */

/**
 * `waiting`: acknowledged, no reply text yet; `streaming`: deltas arriving;
 * `sending`: a user message not acknowledged yet; `failed`: a user message
 * the server refused.
 * @typedef {"sending" | "sent" | "failed" | "waiting" | "streaming" | "complete" | "interrupted" | "error"} UiStatus
 */

/**
 * One tool call of a reply. `done`: it ended with a result (or the reply
 * ended without telling how it went: no `result`); `failed`: with `error`.
 * Arguments and results are the model's and the tool's: untrusted.
 * @typedef {object} ToolRun
 * @property {string} id the call id
 * @property {string} name
 * @property {"running" | "done" | "failed"} status
 * @property {unknown} [arguments]
 * @property {unknown} [result]
 * @property {{ code: string, message: string }} [error]
 * @property {number} [durationMs]
 */

/**
 * @typedef {object} UiMessage
 * @property {string} id message id (a `local:` id until the server acknowledges it)
 * @property {"user" | "assistant"} role
 * @property {string} content
 * @property {UiStatus} status
 * @property {number} [seq]
 * @property {string} [clientId]
 * @property {string} [replyId] for a user message: the id of its reply
 * @property {{ code: string, message: string }} [error]
 * @property {ToolRun[]} tools
 * @property {boolean} [spoken] a user message that was spoken (its text is the transcript)
 * @property {boolean} [spokenOver] a reply the user interrupted by speaking: it holds what was heard
 * @property {string | null} [parentId] the message it follows (branches); `null` for a first message
 * @property {string[]} [siblingIds] it and its alternatives (an edit, a regenerated reply), oldest first
 * @property {number} [siblingIndex] its place among them
 */

/** The `client_id` prefix the server gives transcribed (spoken) messages. */
const VOICE_CLIENT_ID = "voice-";

/** What a failed reply's stored `error_code` means (mirrors the server's texts). */
const ERROR_TEXT = /** @type {Record<string, string>} */ ({
  no_model: "No AI model is configured on this server.",
  provider_unavailable: "The AI provider is unavailable. Please try again.",
  provider_timeout: "The AI provider did not answer in time. Please try again.",
  provider_auth: "The server's AI provider credentials were rejected.",
  provider_rate_limited: "The AI provider is busy. Please try again shortly.",
  overloaded: "The model is busy. Please try again shortly.",
  model_error: "The model failed to generate a reply.",
});

/** @param {string} code */
export function errorText(code) {
  return ERROR_TEXT[code] ?? "The AI provider returned an error. Please try again.";
}

/**
 * Codes of a text refused for what it is (too long, say): sending it again
 * would be refused again, so it is never retried, only edited.
 */
export const REFUSED_FOR_GOOD = Object.freeze(["message_too_long", "empty_message", "invalid_characters", "invalid_client_id"]);

/** A reply still being produced. */
export const isBusy = (/** @type {UiMessage} */ m) =>
  m.role === "assistant" && (m.status === "waiting" || m.status === "streaming");

export class ConversationState {
  /** @type {UiMessage[]} */
  messages = [];
  /** @type {Map<string, UiMessage>} */
  #byId = new Map();
  /** The conversation's newest seq, when no reply was in progress at `load`. */
  #seqFloor = 0;
  /** Replies the user spoke over: reply id -> the text that was heard. */
  #heard = /** @type {Map<string, string>} */ (new Map());

  /**
   * Replace everything with what the server has stored. Replies to the
   * user messages after the last stored reply are still running (or
   * queued): they get `waiting` placeholders that the socket's replay fills.
   * @param {StoredMessage[]} stored
   * @param {StoredToolCall[]} [toolCalls] the tool calls of the stored replies
   * @param {number} [lastSeq] the conversation's newest seq: with no reply in
   *   progress a socket resumes after it, not after the newest message shown
   *   (another branch may be newer, and its events are not this path's)
   */
  load(stored, toolCalls = [], lastSeq = 0) {
    this.#seqFloor = 0;
    this.messages = [];
    this.#byId.clear();
    this.#heard.clear();
    for (const m of stored) {
      if (m.sender === "tool") continue;
      const message = this.#add({
        id: m.id,
        role: m.sender,
        content: m.content,
        status: m.sender === "user" ? "sent" : m.status,
        seq: m.seq,
        clientId: m.client_id,
        replyId: m.reply_id,
        tools: [],
        parentId: m.parent_id,
        siblingIds: m.sibling_ids,
        siblingIndex: m.sibling_index,
      });
      if (m.client_id?.startsWith(VOICE_CLIENT_ID)) message.spoken = true;
      if (m.error_code) message.error = { code: m.error_code, message: errorText(m.error_code) };
    }
    for (const call of toolCalls) {
      const reply = this.#byId.get(call.message_id);
      if (reply?.role !== "assistant") continue;
      const run = toolRun(reply, call.call_id, call.name);
      run.arguments = call.arguments;
      if (call.status === "end") endRun(run, call);
    }
    const lastReply = this.messages.findLastIndex((m) => m.role === "assistant");
    for (const m of this.messages.slice(lastReply + 1)) {
      if (m.replyId && !this.#byId.has(m.replyId)) this.#add(this.#reply(m.replyId));
    }
    // A reply in progress is replayed from the socket, from the newest message shown.
    if (!this.busy) this.#seqFloor = lastSeq;
  }

  /** Highest seq among loaded messages (where a socket resumes). */
  get lastSeq() {
    return this.messages.reduce((max, m) => Math.max(max, m.seq ?? 0), this.#seqFloor);
  }

  /**
   * Take out `id` and every message after it (an edit or a regenerated
   * reply replaces them on the path shown); returns the ids taken out.
   * @param {string} id
   */
  dropFrom(id) {
    const index = this.messages.findIndex((m) => m.id === id);
    if (index < 0) return [];
    const dropped = this.messages.splice(index);
    for (const m of dropped) this.#byId.delete(m.id);
    return dropped.map((m) => m.id);
  }

  /** @param {string} id */
  get(id) {
    return this.#byId.get(id);
  }

  /** Whether any reply is still being produced. */
  get busy() {
    return this.messages.some(isBusy);
  }

  /**
   * Show a user message right away, before the server acknowledges it.
   * @param {string} clientId
   * @param {string} content
   */
  addLocal(clientId, content) {
    return this.#add({
      id: `local:${clientId}`,
      role: "user",
      content,
      status: "sending",
      clientId,
      tools: [],
    });
  }

  /**
   * Take a message out (a text that was refused, before it is retried or
   * handed back to the box); returns whether it was there.
   * @param {string} id
   */
  remove(id) {
    const message = this.#byId.get(id);
    if (!message) return false;
    this.#byId.delete(id);
    this.messages = this.messages.filter((m) => m !== message);
    return true;
  }

  /**
   * A queued text the server refused.
   * @param {string} clientId
   * @param {{ code: string, message: string }} error
   */
  reject(clientId, error) {
    const message = this.#byId.get(`local:${clientId}`);
    if (!message) return [];
    message.status = "failed";
    message.error = { code: error.code, message: error.message };
    return [message];
  }

  /**
   * Fold one server event in; returns the messages that changed (to redraw),
   * and `structural` when messages were added (the list must be re-laid).
   * @param {ServerEvent} event
   * @returns {{ changed: UiMessage[], structural: boolean }}
   */
  apply(event) {
    const before = this.messages.length;
    const changed = this.#apply(event);
    return { changed, structural: this.messages.length !== before };
  }

  /** @param {ServerEvent} event @returns {UiMessage[]} */
  #apply(event) {
    switch (event.type) {
      case "ack": {
        let user = this.#byId.get(event.message_id);
        const local = event.client_id ? this.#byId.get(`local:${event.client_id}`) : undefined;
        if (!user && local) {
          this.#byId.delete(local.id);
          local.id = event.message_id;
          this.#byId.set(local.id, local);
          user = local;
        }
        if (!user) user = this.#add({ id: event.message_id, role: "user", content: "", status: "sent", tools: [] });
        Object.assign(user, { content: event.content, status: "sent", seq: event.seq, replyId: event.reply_id });
        if (event.client_id) user.clientId = event.client_id;
        if (event.client_id?.startsWith(VOICE_CLIENT_ID)) user.spoken = true;
        const changed = [user];
        if (!this.#byId.has(event.reply_id)) changed.push(this.#add(this.#reply(event.reply_id)));
        return changed;
      }
      case "delta": {
        // Text generated after the user spoke over the reply was never heard.
        if (this.#heard.has(event.message_id)) return [];
        const reply = this.#ensureReply(event.message_id);
        reply.content += event.content;
        if (reply.status === "waiting") reply.status = "streaming";
        reply.seq = event.seq;
        return [reply];
      }
      case "message": {
        if (event.sender === "tool") return [];
        const reply = this.#ensureReply(event.message_id);
        // The final message is the whole reply: it replaces the deltas. A
        // reply the user spoke over gets two: the generation's own end
        // (longer than what was heard), then the stored cut; showing the
        // heard text throughout spares a flash of the longer one.
        const heard = this.#heard.get(event.message_id);
        const unheard = heard !== undefined && event.content.length > heard.length && event.content.startsWith(heard);
        if (!unheard) reply.content = event.content;
        // Spoken over, it stays interrupted even if its generation completed.
        reply.status = heard !== undefined && event.status === "complete" ? "interrupted" : event.status;
        reply.seq = event.seq;
        settleTools(reply);
        return [reply];
      }
      case "error": {
        if (!event.message_id) return [];
        const reply = this.#ensureReply(event.message_id);
        reply.error = { code: event.code, message: event.message };
        return [reply];
      }
      case "tool":
        return this.#tool(event);
      case "transcript":
        return this.#transcript(event.text, event.client_id);
      case "interrupted": {
        const reply = this.#ensureReply(event.message_id);
        this.#heard.set(event.message_id, event.content);
        Object.assign(reply, { content: event.content, status: "interrupted", spokenOver: true });
        settleTools(reply);
        return [reply];
      }
      default:
        return [];
    }
  }

  /**
   * What the user said: shown at once as their message, which the `ack`
   * carrying the same `client_id` then confirms (no second bubble). The
   * ack may come first (they travel separately): then there is nothing to add.
   * @param {string} text
   * @param {string} [clientId]
   */
  #transcript(text, clientId) {
    if (!text.trim() || !clientId) return [];
    if (this.messages.some((m) => m.clientId === clientId)) return [];
    const message = this.addLocal(clientId, text);
    message.spoken = true;
    return [message];
  }

  /** @param {ToolEvent} event */
  #tool(event) {
    if (!event.message_id || !event.call_id) return [];
    const reply = this.#ensureReply(event.message_id);
    const run = toolRun(reply, event.call_id, event.name);
    if (event.status === "start") run.arguments = event.arguments;
    else endRun(run, event);
    return [reply];
  }

  /** @param {string} id */
  #ensureReply(id) {
    return this.#byId.get(id) ?? this.#add(this.#reply(id));
  }

  /** @param {string} id @returns {UiMessage} */
  #reply(id) {
    return { id, role: "assistant", content: "", status: "waiting", tools: [] };
  }

  /** @param {UiMessage} message */
  #add(message) {
    this.messages.push(message);
    this.#byId.set(message.id, message);
    return message;
  }
}

/**
 * The run of call `id` in `reply`, added (running) when it is new.
 * @param {UiMessage} reply @param {string} id @param {string} name
 */
function toolRun(reply, id, name) {
  let run = reply.tools.find((t) => t.id === id);
  if (!run) {
    run = { id, name, status: "running" };
    reply.tools.push(run);
  }
  return run;
}

/**
 * A call ended: with its result, or its error.
 * @param {ToolRun} run
 * @param {{ result?: unknown, error?: { code: string, message: string }, duration_ms?: number }} end
 */
function endRun(run, end) {
  if (end.error) {
    run.status = "failed";
    run.error = { code: end.error.code, message: end.error.message };
  } else {
    run.status = "done";
    run.result = end.result;
  }
  if (typeof end.duration_ms === "number") run.durationMs = end.duration_ms;
}

/** A reply ended: a call that never reported its end is not running any more. @param {UiMessage} reply */
function settleTools(reply) {
  for (const tool of reply.tools) if (tool.status === "running") tool.status = "done";
}
