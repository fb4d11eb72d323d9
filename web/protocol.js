// @ts-check
/**
 * @file Colloquy's wire protocol as JSDoc types, mirroring
 * `crates/protocol/src/lib.rs` (the events on the chat sockets) and the
 * shapes `GET /api/conversations/{id}` answers. Types only: nothing runs.
 */

/** @typedef {"user" | "assistant" | "tool"} Sender */
/** @typedef {"complete" | "interrupted" | "error"} MessageStatus */

/**
 * Sent once when the socket is ready.
 * @typedef {{ type: "ready", conversation_id: string, last_seq: number }} ReadyEvent
 */
/**
 * The user message is stored; `reply_id` is the id its reply will carry.
 * @typedef {{ type: "ack", client_id?: string, message_id: string, seq: number, content: string, reply_id: string }} AckEvent
 */
/**
 * One chunk of an assistant reply.
 * @typedef {{ type: "delta", message_id: string, seq: number, content: string }} DeltaEvent
 */
/**
 * A complete reply (the concatenation of its deltas); it supersedes them.
 * @typedef {{ type: "message", message_id: string, seq: number, content: string, sender: Sender, status: MessageStatus, is_final: boolean }} FinalMessageEvent
 */
/**
 * Something went wrong; `seq`/`message_id` are set when it concerns a reply.
 * `client_id` names the text an error refuses, when it refuses one.
 * @typedef {{ type: "error", code: string, message: string, message_id?: string, seq?: number, client_id?: string }} ChatErrorEvent
 */
/** @typedef {{ type: "pong" }} PongEvent */
/**
 * Tool progress. Not sent by the server yet; the shape the UI expects.
 * @typedef {{ type: "tool", name: string, status: "start" | "end", message_id?: string, seq?: number, call_id?: string, input?: unknown, output?: unknown }} ToolEvent
 */
/**
 * One of the user's conversations changed elsewhere (another tab, device or
 * HTTP call). Sent to every socket of the user; no `seq`.
 * @typedef {{ type: "conversation", action: "created" | "renamed" | "deleted", conversation_id: string, title?: string }} ConversationEvent
 */
/** @typedef {ReadyEvent | AckEvent | DeltaEvent | FinalMessageEvent | ChatErrorEvent | PongEvent | ToolEvent | ConversationEvent} ServerEvent */
/**
 * @typedef {{ type: "text", content: string, client_id?: string }
 *   | { type: "stop" } | { type: "ping" } | { type: "resume", last_seq: number }} ClientEvent
 */

/**
 * A conversation as `GET /api/conversations/{id}` returns it.
 * @typedef {object} StoredConversation
 * @property {string} id
 * @property {string} title
 * @property {number} last_seq
 * @property {StoredMessage[]} messages
 */
/**
 * @typedef {object} StoredMessage
 * @property {string} id
 * @property {Sender} sender
 * @property {string} content
 * @property {MessageStatus} status
 * @property {number} seq
 * @property {string} [client_id]
 * @property {string} [reply_id]
 * @property {string} [error_code]
 * @property {string} created_at
 */

export {};
