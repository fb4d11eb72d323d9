// @ts-check
/**
 * @file The AI SDK transport against the real `ai` package and the real
 * server: the raw chunk stream, `AbstractChat` (what `useChat` wraps)
 * sending, regenerating, stopping and failing, resuming an in-flight
 * reply from a second transport (a page reload) with `resumeStream()`,
 * and tool calls as dynamic tool parts. Every test runs with each major
 * version of `ai` (5, 6 and the current 7, installed side by side under
 * npm aliases), and every chunk is checked against `ai@7.0.31`'s strict
 * chunk schemas, which refuse any field they do not name.
 *
 * Runs in Node: it needs a global WebSocket (Node 22+, or Node 20 with
 * `--experimental-websocket`, which the test script passes).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ColloquyChatTransport } from "../../../web/ai-sdk-transport.js";
import { startFakeOpenAI } from "../lib/fake-openai.js";
import { api, registerUser, startServer } from "../lib/server.js";
import { deferred } from "./helpers.js";

/** @typedef {import("ai").UIMessage} UIMessage */
/** @typedef {typeof import("ai")} AiSdk */

/** The `ai` versions under test: package names in package.json (aliases). */
const SDKS = /** @type {const} */ ([
  ["ai v5", "ai"],
  ["ai v6", "ai-v6"],
  ["ai v7", "ai-v7"],
]);
/** The last release with strict chunk schemas: extra fields fail validation. */
const strictSchema = /** @type {AiSdk} */ (await import("ai-v7-strict")).uiMessageChunkSchema();

/** @type {Awaited<ReturnType<typeof startFakeOpenAI>>} */
let upstream;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
let token = "";
/** @type {ColloquyChatTransport[]} */
const transports = [];

before(async () => {
  assert.equal(typeof WebSocket, "function", "run with a global WebSocket (node --experimental-websocket)");
  upstream = await startFakeOpenAI();
  server = await startServer({ upstreamUrl: upstream.url });
  token = await registerUser(server.url);
});
after(async () => {
  for (const transport of transports) transport.close();
  await server?.destroy();
  await upstream?.close();
});

function newTransport() {
  const transport = new ColloquyChatTransport({ token, baseUrl: server.url });
  transports.push(transport);
  return transport;
}

/** The chat state `useChat` keeps in React, kept in memory instead. */
class MemoryState {
  /** @type {import("ai").ChatStatus} */
  status = "ready";
  /** @type {Error | undefined} */
  error = undefined;
  /** @type {UIMessage[]} */
  messages = [];
  /** @param {UIMessage} message */
  pushMessage = (message) => {
    this.messages = [...this.messages, message];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  /** @param {number} index @param {UIMessage} message */
  replaceMessage = (index, message) => {
    this.messages = this.messages.map((m, i) => (i === index ? message : m));
  };
  /** @template T @param {T} thing @returns {T} */
  snapshot = (thing) => structuredClone(thing);
}

/**
 * `AbstractChat` of one `ai` version with in-memory state: what `useChat`
 * does, minus React.
 * @param {AiSdk} sdk
 */
function chatClass(sdk) {
  return class TestChat extends sdk.AbstractChat {
    /** @param {{ id?: string, transport: ColloquyChatTransport }} init */
    constructor(init) {
      super({ ...init, transport: /** @type {import("ai").ChatTransport<UIMessage>} */ (init.transport), state: new MemoryState() });
    }
  };
}

/**
 * Every chunk of `stream`, each checked against the version's own chunk
 * schema and the strict one.
 * @param {ReadableStream<any>} stream @param {AiSdk} sdk
 */
async function validChunks(stream, sdk) {
  const schema = sdk.uiMessageChunkSchema();
  /** @type {any[]} */
  const chunks = [];
  for await (const chunk of stream) {
    for (const check of [schema, strictSchema]) {
      const result = await /** @type {any} */ (check).validate(chunk);
      assert.ok(result.success, `chunk refused by the SDK's schema: ${JSON.stringify(chunk)}`);
    }
    chunks.push(chunk);
  }
  return chunks;
}

/** @param {UIMessage | undefined} message */
const textOf = (message) =>
  (message?.parts ?? []).map((part) => (part.type === "text" ? part.text : "")).join("");

/** @param {() => boolean | Promise<boolean>} condition */
async function until(condition, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** @type {[string, AiSdk][]} */
const loaded = await Promise.all(SDKS.map(async ([label, name]) => [label, await import(name)]));

for (const [label, sdk] of loaded) {
  describe(label, () => {
    const { readUIMessageStream } = sdk;
    const TestChat = chatClass(sdk);

    test("sendMessages streams start, text-start, text-deltas, text-end and finish", async () => {
      const transport = newTransport();
      const stream = await transport.sendMessages({
        chatId: "raw-chunks",
        trigger: "submit-message",
        messageId: undefined,
        messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "Hi there" }] }],
        abortSignal: undefined,
      });
      const [forChunks, forMessage] = stream.tee();
      /** @type {any[]} */
      const chunks = [];
      for (const chunk of await validChunks(forChunks, sdk)) chunks.push(chunk);
      const types = chunks.map((c) => c.type);
      assert.equal(types[0], "start");
      assert.equal(types[1], "text-start");
      assert.deepEqual(types.slice(-2), ["text-end", "finish"]);
      assert.ok(types.slice(2, -2).every((t) => t === "text-delta") && types.length > 5, types.join(","));
      assert.equal(chunks.filter((c) => c.type === "text-delta").map((c) => c.delta).join(""), "You said: Hi there");

      /** @type {UIMessage | undefined} */
      let last;
      for await (const message of readUIMessageStream({ stream: /** @type {any} */ (forMessage) })) last = message;
      assert.equal(last?.role, "assistant");
      assert.equal(textOf(last), "You said: Hi there");
      // The reply id from the server becomes the UI message id.
      const conversationId = transport.conversationIdFor("raw-chunks");
      assert.ok(conversationId);
      const stored = await api(server.url, "GET", `/api/conversations/${conversationId}`, { token });
      assert.equal(stored.messages[1].id, last?.id);
    });

    test("AbstractChat (useChat's core) sends and regenerates through the transport", async () => {
      const chat = new TestChat({ transport: newTransport() });
      await chat.sendMessage({ text: "Hello SDK" });
      assert.equal(chat.status, "ready");
      assert.deepEqual(
        chat.messages.map((m) => [m.role, textOf(m)]),
        [
          ["user", "Hello SDK"],
          ["assistant", "You said: Hello SDK"],
        ],
      );
      upstream.reply("A second take.");
      await chat.regenerate();
      assert.deepEqual(
        chat.messages.map((m) => [m.role, textOf(m)]),
        [
          ["user", "Hello SDK"],
          ["assistant", "A second take."],
        ],
      );
    });

    test("chat.stop() sends stop: the server stores the reply as interrupted", async () => {
      const transport = newTransport();
      const chat = new TestChat({ transport });
      const gate = deferred();
      upstream.reply("This will be interrupted halfway through, sadly.", { before: (i) => (i === 3 ? gate.promise : undefined) });
      try {
        const sending = chat.sendMessage({ text: "Go on and on" });
        await until(() => textOf(chat.messages[1]).startsWith("This will be"));
        await chat.stop();
        await sending;
        assert.equal(chat.status, "ready");
        const conversationId = transport.conversationIdFor(chat.id);
        await until(async () => {
          const stored = await api(server.url, "GET", `/api/conversations/${conversationId}`, { token });
          return stored.messages.some((/** @type {any} */ m) => m.sender === "assistant" && m.status === "interrupted");
        });
      } finally {
        gate.resolve();
      }
    });

    test("a failed reply puts the chat in the error state with the server's message", async () => {
      const chat = new TestChat({ transport: newTransport() });
      upstream.script({ status: 500 });
      await chat.sendMessage({ text: "Please fail" });
      assert.equal(chat.status, "error");
      assert.match(chat.error?.message ?? "", /AI provider/);
    });

    test("resumeStream() on a new transport (a reload) picks up the reply in progress", async () => {
      const created = await api(server.url, "POST", "/api/conversations", { token, body: {} });
      const first = new TestChat({ id: created.id, transport: newTransport() });
      const gate = deferred();
      const story = "Resuming after a reload shows the whole reply, from its first word.";
      upstream.reply(story, { before: (i) => (i === 4 ? gate.promise : undefined) });
      try {
        const sending = first.sendMessage({ text: "A story to resume" });
        await until(() => textOf(first.messages[1]).startsWith("Resuming after a"));
        // "Reload": a fresh chat and transport for the same conversation.
        const second = new TestChat({ id: created.id, transport: newTransport() });
        const resuming = second.resumeStream();
        await until(() => textOf(second.messages.at(-1)).startsWith("Resuming after a"));
        gate.resolve();
        await Promise.all([sending, resuming]);
        assert.equal(textOf(second.messages.at(-1)), story);
        assert.equal(textOf(first.messages.at(-1)), story);
      } finally {
        gate.resolve();
      }
      // Nothing in flight now: resuming again finds nothing.
      const idle = await newTransport().reconnectToStream({ chatId: created.id });
      assert.equal(idle, null);
    });

    test("a tool call streams as a dynamic tool part before the answer", async () => {
      upstream.toolTurn([{ id: "call_6x7", name: "calculate", arguments: JSON.stringify({ expression: "6 * 7" }) }], (results) =>
        results.some((r) => r.content.includes("42")) ? "6 times 7 is 42." : "The tool gave no answer.",
      );
      const stream = await newTransport().sendMessages({
        chatId: "tool-chunks",
        trigger: "submit-message",
        messageId: undefined,
        messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "what is 6 times 7?" }] }],
        abortSignal: undefined,
      });
      const [forChunks, forMessage] = stream.tee();
      const chunks = await validChunks(forChunks, sdk);
      const types = chunks.map((c) => c.type).filter((t) => t !== "text-delta");
      assert.deepEqual(types, ["start", "tool-input-available", "tool-output-available", "text-start", "text-end", "finish"]);
      const [input, output] = chunks.filter((c) => c.type.startsWith("tool-"));
      assert.deepEqual(input, { type: "tool-input-available", toolCallId: "call_6x7", toolName: "calculate", input: { expression: "6 * 7" }, dynamic: true });
      assert.equal(output.toolCallId, "call_6x7");
      assert.equal(output.output.result, 42);

      /** @type {UIMessage | undefined} */
      let last;
      for await (const message of readUIMessageStream({ stream: /** @type {any} */ (forMessage) })) last = message;
      const tool = /** @type {any} */ (last?.parts.find((part) => part.type === "dynamic-tool"));
      assert.equal(tool?.toolName, "calculate");
      assert.equal(tool?.state, "output-available");
      assert.deepEqual(tool?.input, { expression: "6 * 7" });
      assert.equal(tool?.output.result, 42);
      assert.equal(textOf(last), "6 times 7 is 42.");
      // The tool part comes before the answer's text, as it happened.
      assert.ok(last && last.parts.indexOf(tool) < last.parts.findIndex((part) => part.type === "text"));
    });

    test("a failed tool call becomes tool-output-error, and AbstractChat keeps it in the reply", async () => {
      upstream.toolTurn([{ id: "call_nope", name: "no_such_tool", arguments: "{}" }], () => "That tool does not exist.");
      const chat = new TestChat({ transport: newTransport() });
      await chat.sendMessage({ text: "Use a tool you do not have" });
      assert.equal(chat.status, "ready");
      const reply = chat.messages[1];
      const tool = /** @type {any} */ (reply?.parts.find((part) => part.type === "dynamic-tool"));
      assert.equal(tool?.toolName, "no_such_tool");
      assert.equal(tool?.state, "output-error");
      assert.match(tool?.errorText ?? "", /\S/);
      assert.equal(textOf(reply), "That tool does not exist.");
    });
  });
}
