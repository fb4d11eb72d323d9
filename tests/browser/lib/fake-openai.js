// @ts-check
/**
 * @file A fake OpenAI-compatible upstream for the browser tests: a real HTTP
 * server answering `POST /v1/chat/completions` with real Server-Sent Events
 * (`data: {chunk}` lines, a `finish_reason: "stop"` chunk, `data: [DONE]`).
 *
 * Each request takes the next queued script, or echoes the prompt when none
 * is queued. A script's `before(index)` hook may hold a token back (return
 * a promise), which is how tests pause a reply at an exact point without
 * sleeping and hoping.
 *
 * A script with `toolCalls` makes the model call tools the way OpenAI
 * streams them: `delta.tool_calls[]` fragments by `index` (the first with
 * `id` and `function.name`, the next ones only argument text), then
 * `finish_reason: "tool_calls"`. A queued function is a script computed
 * from the request, e.g. an answer from the tool results it carries
 * ({@link toolResults}).
 */

import http from "node:http";
import { EventEmitter } from "node:events";

/**
 * @typedef {object} Script
 * @property {string[]} [tokens] streamed one per chunk
 * @property {number} [delayMs] pause between tokens (default 15)
 * @property {number} [status] answer with this HTTP error status instead
 * @property {(index: number) => Promise<void> | void} [before] awaited before token `index` is sent
 * @property {ToolCall[]} [toolCalls] tool calls streamed after the tokens (finish reason `tool_calls`)
 */
/**
 * @typedef {object} ToolCall
 * @property {string} id
 * @property {string} name
 * @property {string} arguments the arguments' JSON text, streamed in a few fragments
 */
/** @typedef {Script | ((body: any) => Script)} QueuedScript */

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Split text into word-ish tokens, keeping spaces and newlines. */
export function tokenize(/** @type {string} */ text) {
  return text.match(/\s*\S+|\s+/g) ?? [];
}

export async function startFakeOpenAI() {
  /** @type {QueuedScript[]} */
  const scripts = [];
  /** @type {any[]} */
  const requests = [];
  /** Emits `token` (index, text) and `done` (request number) as replies stream. */
  const events = new EventEmitter();

  const server = http.createServer(async (req, res) => {
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "not found" } }));
      return;
    }
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw);
    requests.push(body);
    const number = requests.length;
    const queued = scripts.shift();
    const script = typeof queued === "function" ? queued(body) : (queued ?? echo(body));
    if (script.status) {
      res.writeHead(script.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "scripted failure", type: "server_error", code: null } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    let closed = false;
    res.on("close", () => (closed = true));
    const created = Math.floor(Date.now() / 1000);
    /** @param {object} delta @param {string | null} finish */
    const chunk = (delta, finish) =>
      `data: ${JSON.stringify({
        id: `chatcmpl-fake-${number}`,
        object: "chat.completion.chunk",
        created,
        model: body.model ?? "fake",
        choices: [{ index: 0, delta, finish_reason: finish }],
      })}\n\n`;
    res.write(chunk({ role: "assistant", content: "" }, null));
    const tokens = script.tokens ?? [];
    for (let index = 0; index < tokens.length; index += 1) {
      await script.before?.(index);
      if (closed) return;
      res.write(chunk({ content: tokens[index] }, null));
      events.emit("token", index, tokens[index]);
      await sleep(script.delayMs ?? 15);
    }
    if (closed) return;
    const calls = script.toolCalls ?? [];
    for (const [index, call] of calls.entries()) {
      res.write(chunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }, null));
      for (const fragment of fragments(call.arguments)) {
        res.write(chunk({ tool_calls: [{ index, function: { arguments: fragment } }] }, null));
      }
    }
    res.write(chunk({}, calls.length ? "tool_calls" : "stop"));
    res.write("data: [DONE]\n\n");
    res.end();
    events.emit("done", number);
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  const url = `http://127.0.0.1:${address.port}`;

  return {
    url,
    requests,
    events,
    /** Queue scripts for the next requests, in order. @param {QueuedScript[]} next */
    script(...next) {
      scripts.push(...next);
    },
    /** Queue a reply streaming `text` token by token. @param {string} text @param {Omit<Script, "tokens">} [options] */
    reply(text, options = {}) {
      scripts.push({ ...options, tokens: tokenize(text) });
    },
    /**
     * Queue a turn that calls tools: the model calls `calls` (with no text
     * first), then answers with `answer(results)`, from the tool results
     * the server sends back in the next request.
     * @param {ToolCall[]} calls
     * @param {(results: { tool_call_id: string, content: string }[]) => string} answer
     * @param {Omit<Script, "tokens" | "toolCalls">} [options] for the answer
     */
    toolTurn(calls, answer, options = {}) {
      scripts.push({ toolCalls: calls }, (body) => ({ ...options, tokens: tokenize(answer(toolResults(body))) }));
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/** The default reply: a short echo of the last user message. */
function echo(/** @type {any} */ body) {
  const last = [...(body.messages ?? [])].reverse().find((m) => m.role === "user");
  return { tokens: tokenize(`You said: ${last?.content ?? ""}`) };
}

/** Argument text in three fragments or fewer, as a model streams it. @param {string} text */
function fragments(text) {
  const size = Math.max(1, Math.ceil(text.length / 3));
  const parts = [];
  for (let start = 0; start < text.length; start += size) parts.push(text.slice(start, start + size));
  return parts;
}

/**
 * The tool results a request carries (OpenAI's format: `tool` messages
 * with `tool_call_id`) after its last user message.
 * @param {any} body
 * @returns {{ tool_call_id: string, content: string }[]}
 */
export function toolResults(body) {
  const messages = body.messages ?? [];
  const lastUser = messages.findLastIndex((/** @type {any} */ m) => m.role === "user");
  return messages.slice(lastUser + 1).filter((/** @type {any} */ m) => m.role === "tool");
}
