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
 * With `code: "quota_exceeded"` it also says which daily limit (`limit`, `max`,
 * `used`) of which `plan` was reached and when it resets (`resets_at`).
 * @typedef {{ type: "error", code: string, message: string, message_id?: string, seq?: number, client_id?: string,
 *   plan?: string, limit?: string, max?: number, used?: number, resets_at?: string, upgrade?: boolean }} ChatErrorEvent
 */
/** @typedef {{ type: "pong" }} PongEvent */
/**
 * Why a tool call failed: a stable `code` (`unknown_tool`, `invalid_arguments`,
 * `timeout`, `cancelled`, ...) and a readable message.
 * @typedef {{ code: string, message: string }} ToolError
 */
/**
 * One tool call of reply `message_id`: `start` (with the `arguments` the
 * model gave), then `end` (with the tool's `result`, or `error`, and
 * `duration_ms`); `call_id` pairs them. Numbered like every conversation event.
 * @typedef {{ type: "tool", message_id: string, call_id: string, name: string, status: "start" | "end", seq: number,
 *   arguments?: unknown, result?: unknown, error?: ToolError, duration_ms?: number }} ToolEvent
 */
/**
 * One of the user's conversations changed elsewhere (another tab, device or
 * HTTP call). Sent to every socket of the user; no `seq`.
 * @typedef {{ type: "conversation", action: "created" | "renamed" | "deleted", conversation_id: string, title?: string }} ConversationEvent
 */
/**
 * Voice activity detection heard the user start speaking (no `seq`).
 * @typedef {{ type: "speech_started" }} SpeechStartedEvent
 */
/**
 * What the user said, recognized from their audio (no `seq`). The `ack`
 * of the user message that follows carries the same `client_id`; empty
 * `text` means nothing intelligible was heard and no turn follows.
 * @typedef {{ type: "transcript", text: string, client_id?: string }} TranscriptEvent
 */
/**
 * Synthesized speech of reply `message_id`: base64 PCM16 LE mono at
 * `sample_rate` (24 kHz), ~40 ms a chunk, paced about real time (no `seq`).
 * @typedef {{ type: "audio", message_id: string, data: string, sample_rate: number }} AudioEvent
 */
/**
 * The user spoke over reply `message_id`: drop its unplayed audio. The
 * stored reply keeps `content`, what was heard; its final `message`
 * (status `interrupted`) follows.
 * @typedef {{ type: "interrupted", message_id: string, played_ms: number, content: string }} InterruptedEvent
 */
/**
 * @typedef {ReadyEvent | AckEvent | DeltaEvent | FinalMessageEvent | ChatErrorEvent | PongEvent | ToolEvent
 *   | ConversationEvent | SpeechStartedEvent | TranscriptEvent | AudioEvent | InterruptedEvent} ServerEvent
 */
/**
 * `audio`: microphone audio, base64 PCM16 LE mono at `sample_rate` (16 kHz);
 * `audio_end`: the microphone was turned off, transcribe what is pending.
 * `parent_id` (branches): the reply a `text` follows, `null` for a new first
 * message (an edit names the edited message's parent); `regenerate`: a new
 * reply to the question reply `message_id` answered, kept beside it.
 * @typedef {{ type: "text", content: string, client_id?: string, model?: string, parent_id?: string | null }
 *   | { type: "regenerate", message_id: string, model?: string }
 *   | { type: "stop" } | { type: "ping" } | { type: "resume", last_seq: number }
 *   | { type: "audio", data: string, sample_rate: number } | { type: "audio_end" }} ClientEvent
 */

/**
 * `voice` in `GET /api/config`: whether this server offers voice chat
 * (`available`: an engine and a model), its rates, and whether sockets
 * speak replies when they do not say (`tts_default`).
 * @typedef {object} VoiceConfig
 * @property {string} engine `local`, `gemini-live` or `none`
 * @property {boolean} available
 * @property {number} [input_sample_rate]
 * @property {number} [output_sample_rate]
 * @property {boolean} [tts_default]
 * @property {string[]} [voices] the voices replies are spoken in (Piper voice ids)
 */

/**
 * `models` in `GET /api/config`: what a message's `model` may name (the
 * default first), and the default.
 * @typedef {object} ModelsConfig
 * @property {{ id: string, name?: string }[]} available
 * @property {string | null} default
 */

/**
 * A conversation as `GET /api/conversations/{id}` returns it.
 * @typedef {object} StoredConversation
 * @property {string} id
 * @property {string} title
 * @property {number} last_seq
 * @property {StoredMessage[]} messages
 * @property {boolean} [has_more] older messages exist (ask with `before=next_before`)
 * @property {number | null} [next_before]
 * @property {StoredToolCall[]} [tool_calls] the tool calls of the replies on this page, oldest first
 */
/**
 * A tool call of a stored reply (`message_id`), as its `tool` events show it
 * (`end` fields present once it ended); `round` counts the agent loop's rounds.
 * @typedef {object} StoredToolCall
 * @property {string} message_id
 * @property {string} call_id
 * @property {string} name
 * @property {"start" | "end"} status
 * @property {unknown} [arguments]
 * @property {unknown} [result]
 * @property {ToolError} [error]
 * @property {number} [duration_ms]
 * @property {number} [round]
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
 * @property {string | null} [parent_id] the message it follows (branches)
 * @property {number} [sibling_count] messages with the same parent, this one included
 * @property {number} [sibling_index] this one's place among them, from 0
 * @property {string[]} [sibling_ids] their ids, oldest first
 * @property {string} created_at
 */

export {};
