// @ts-check
/**
 * @file A `ChatTransport` for the Vercel AI SDK (v5, v6 and v7): `useChat` (or any
 * `AbstractChat`) talks to Colloquy's `/api/v1/chat/ws` by passing
 * `transport: new ColloquyChatTransport({ token })`.
 *
 * Colloquy keeps the conversation on the server, so `sendMessages` sends
 * only the newest user message; the AI SDK chat id names the Colloquy
 * conversation (a UUID chat id is used as the conversation id, any other
 * id gets a new conversation, see {@link ColloquyChatTransport#conversationIdFor}).
 * One resilient socket per chat is kept open and reused, so a drop
 * mid-reply is resumed by the client (`last_seq`) without the SDK noticing.
 *
 * Event mapping: `ack` → `start` (the reply id becomes the UI message id);
 * `delta` → `text-start` / `text-delta`; the final `message` → the rest of
 * the text (it supersedes the deltas), `text-end`, then `finish`
 * (`abort` when the reply was stopped); `error` → `error`; `tool`
 * `start` → `tool-input-available`, `end` → `tool-output-available` (or
 * `tool-output-error`). The server runs its tools itself and the client
 * declares none, so tool chunks are `dynamic` (the SDK's `dynamic-tool`
 * parts), and they carry only the fields of the SDK's chunk schemas
 * (versions before 7.0.32 reject any other). Text after a tool call is a
 * new text part, so the parts keep the order things happened in.
 * Aborting (`chat.stop()`) sends `stop`.
 *
 * No import of the `ai` package is needed: the chunks are plain objects.
 */

import { ColloquyClient, newClientId } from "./colloquy-client.js";

/** @typedef {import("./colloquy-client.js").ClientOptions} ClientOptions */
/** @typedef {import("./colloquy-client.js").StoredConversation} StoredConversation */

/** @typedef {{ type: string, text?: string }} UIPartLike */
/** @typedef {{ id: string, role: "system" | "user" | "assistant", parts: UIPartLike[] }} UIMessageLike */

/**
 * The UI message chunks this transport produces (a subset of the AI SDK's
 * `UIMessageChunk`).
 * @typedef {{ type: "start", messageId?: string }
 *   | { type: "text-start", id: string }
 *   | { type: "text-delta", id: string, delta: string }
 *   | { type: "text-end", id: string }
 *   | { type: "tool-input-available", toolCallId: string, toolName: string, input: unknown, dynamic: true }
 *   | { type: "tool-output-available", toolCallId: string, output: unknown, dynamic: true }
 *   | { type: "tool-output-error", toolCallId: string, errorText: string, dynamic: true }
 *   | { type: "finish", finishReason?: "stop" | "error" }
 *   | { type: "abort" }
 *   | { type: "error", errorText: string }} ColloquyChunk
 */

/**
 * @typedef {object} TransportOptions
 * @property {ClientOptions["token"]} token access token (or a function returning one)
 * @property {string} [baseUrl] server origin (default: the page's origin)
 * @property {(chatId: string) => string | undefined} [conversationIdFor] the Colloquy conversation of an AI SDK chat
 * @property {Partial<ClientOptions>} [client] more socket options (WebSocket implementation, timeouts)
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** @param {UIMessageLike} message */
const textOf = (message) =>
  message.parts
    .filter((part) => part.type === "text")
    .map((part) => part.text ?? "")
    .join("");

export class ColloquyChatTransport {
  /** @type {Map<string, ColloquyClient>} */
  #clients = new Map();

  /** @param {TransportOptions} options */
  constructor(options) {
    this.options = options;
    this.baseUrl = (options.baseUrl ?? globalThis.location?.origin ?? "").replace(/\/$/, "");
  }

  /**
   * The Colloquy conversation behind an AI SDK chat id, when known.
   * @param {string} chatId
   */
  conversationIdFor(chatId) {
    return (
      this.#clients.get(chatId)?.conversationId ??
      this.options.conversationIdFor?.(chatId) ??
      (UUID.test(chatId) ? chatId : undefined)
    );
  }

  /**
   * Send the newest user message and stream the reply as UI message chunks.
   * @param {{ chatId: string, messages: UIMessageLike[], abortSignal: AbortSignal | undefined,
   *   trigger?: "submit-message" | "regenerate-message", messageId?: string | undefined }} options
   * @returns {Promise<ReadableStream<ColloquyChunk>>}
   */
  async sendMessages({ chatId, messages, abortSignal }) {
    const prompt = messages.findLast((m) => m.role === "user");
    const text = prompt ? textOf(prompt) : "";
    if (!text.trim()) throw new Error("ColloquyChatTransport: there is no user text to send");
    const client = this.#client(chatId);
    const clientId = newClientId();
    return this.#replyStream(client, { clientId, abortSignal, stopOnAbort: true }, () => client.send(text, { clientId }));
  }

  /**
   * Resume the reply still in progress for `chatId`, or `null` if none is.
   * It reads the conversation over HTTP: a user message whose reply is not
   * stored yet is still being answered, and a socket resuming after that
   * message's seq replays the reply from its first token.
   * @param {{ chatId: string, abortSignal?: AbortSignal }} options
   * @returns {Promise<ReadableStream<ColloquyChunk> | null>}
   */
  async reconnectToStream({ chatId, abortSignal }) {
    const conversationId = this.conversationIdFor(chatId);
    if (!conversationId) return null;
    const token = await this.#token();
    const response = await fetch(`${this.baseUrl}/api/conversations/${encodeURIComponent(conversationId)}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: abortSignal,
    });
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`Colloquy: loading the conversation failed (${response.status})`);
    /** @type {StoredConversation} */
    const conversation = await response.json();
    const stored = new Set(conversation.messages.map((m) => m.id));
    const pending = conversation.messages.find((m) => m.sender === "user" && m.reply_id && !stored.has(m.reply_id));
    if (!pending?.reply_id) return null;
    // A socket of its own, resuming right after the user message.
    const client = new ColloquyClient({
      ...this.options.client,
      token: this.options.token,
      baseUrl: this.baseUrl,
      conversationId,
      lastSeq: pending.seq,
    });
    const stream = this.#replyStream(client, { replyId: pending.reply_id, abortSignal, stopOnAbort: false, onEnd: () => client.disconnect() }, () => {});
    client.connect();
    return stream;
  }

  /** Close every socket this transport opened. */
  close() {
    for (const client of this.#clients.values()) client.disconnect();
    this.#clients.clear();
  }

  async #token() {
    const { token } = this.options;
    return typeof token === "function" ? await token() : token;
  }

  /** The chat's socket, opened on first use and kept for the next turns. */
  #client(/** @type {string} */ chatId) {
    let client = this.#clients.get(chatId);
    if (!client) {
      client = new ColloquyClient({
        ...this.options.client,
        token: this.options.token,
        baseUrl: this.baseUrl,
        conversationId: this.conversationIdFor(chatId),
      });
      this.#clients.set(chatId, client);
      client.connect();
    } else if (client.state === "closed") {
      // Refused before (e.g. an expired token): try again with the current one.
      client.reconnect();
    }
    return client;
  }

  /**
   * The chunks of one reply: identified by the `ack` of `clientId`, or
   * directly by `replyId` when resuming.
   * @param {ColloquyClient} client
   * @param {{ clientId?: string, replyId?: string, abortSignal?: AbortSignal, stopOnAbort: boolean, onEnd?: () => void }} target
   * @param {() => void} begin called once listening (sends the text)
   * @returns {ReadableStream<ColloquyChunk>}
   */
  #replyStream(client, target, begin) {
    /** @type {(() => void)[]} */
    const cleanups = [];
    let replyId = target.replyId ?? null;
    let text = "";
    /** The open text part's id, if one is open; parts after a tool call get new ids. */
    let textId = /** @type {string | null} */ (null);
    let textParts = 0;
    let ended = false;
    /** Calls whose input was sent (an output needs its call's input first). */
    const toolCalls = new Set();

    const end = () => {
      if (ended) return;
      ended = true;
      for (const cleanup of cleanups) cleanup();
      target.onEnd?.();
    };

    return new ReadableStream({
      start: (controller) => {
        /** @param {ColloquyChunk} chunk */
        const push = (chunk) => {
          if (!ended) controller.enqueue(chunk);
        };
        const finish = (/** @type {ColloquyChunk[]} */ ...chunks) => {
          if (ended) return;
          for (const chunk of chunks) push(chunk);
          end();
          controller.close();
        };
        /** The open text part's id (opened now when none is). @param {string} reply */
        const openText = (reply) => {
          if (textId) return textId;
          textParts += 1;
          textId = textParts === 1 ? reply : `${reply}:${textParts}`;
          push({ type: "text-start", id: textId });
          return textId;
        };
        const closeText = () => {
          if (textId) push({ type: "text-end", id: textId });
          textId = null;
        };
        const onAbort = () => {
          // Frames are handled in order, so a stop right behind an
          // unacknowledged text still cancels its reply.
          if (target.stopOnAbort) client.stop();
          finish({ type: "abort" });
        };
        if (target.abortSignal?.aborted) {
          finish({ type: "abort" });
          return;
        }
        target.abortSignal?.addEventListener("abort", onAbort, { once: true });
        cleanups.push(() => target.abortSignal?.removeEventListener("abort", onAbort));
        if (replyId) push({ type: "start", messageId: replyId });

        cleanups.push(
          client.on("ack", (event) => {
            if (replyId || !target.clientId || event.client_id !== target.clientId) return;
            replyId = event.reply_id;
            push({ type: "start", messageId: replyId });
          }),
          client.on("delta", (event) => {
            if (event.message_id !== replyId || !event.content) return;
            const id = openText(replyId);
            text += event.content;
            push({ type: "text-delta", id, delta: event.content });
          }),
          client.on("tool", (event) => {
            if (!replyId || event.message_id !== replyId) return;
            closeText();
            const toolCallId = event.call_id;
            if (event.status === "start" || !toolCalls.has(toolCallId)) {
              toolCalls.add(toolCallId);
              const input = event.status === "start" ? (event.arguments ?? {}) : {};
              push({ type: "tool-input-available", toolCallId, toolName: event.name, input, dynamic: true });
            }
            if (event.status !== "end") return;
            if (event.error) push({ type: "tool-output-error", toolCallId, errorText: event.error.message, dynamic: true });
            else push({ type: "tool-output-available", toolCallId, output: event.result ?? null, dynamic: true });
          }),
          client.on("error", (event) => {
            // The AI SDK ends the response at an error chunk; the final
            // `message` (status error) that follows adds nothing.
            if (replyId && event.message_id === replyId) finish({ type: "error", errorText: event.message });
          }),
          client.on("message", (event) => {
            if (event.message_id !== replyId) return;
            // The final message is the whole reply: send what the deltas missed.
            const rest = event.content.startsWith(text) ? event.content.slice(text.length) : "";
            if (rest) push({ type: "text-delta", id: openText(replyId), delta: rest });
            closeText();
            if (event.status === "interrupted") finish({ type: "abort" });
            else if (event.status === "error") finish();
            else finish({ type: "finish", finishReason: "stop" });
          }),
          client.on("rejected", ({ client_id, error }) => {
            if (client_id === target.clientId) finish({ type: "error", errorText: error.message });
          }),
          client.on("fatal", ({ reason }) => finish({ type: "error", errorText: reason || "Colloquy refused the connection" })),
        );
        begin();
      },
      cancel: () => {
        // The reader went away (the SDK stopped): stop the reply too.
        if (!ended && target.stopOnAbort) client.stop();
        end();
      },
    });
  }
}
