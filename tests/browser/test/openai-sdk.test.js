// @ts-check
/**
 * @file The official `openai` SDKs, unchanged, as clients of Colloquy's
 * OpenAI-compatible endpoint: a Colloquy access token as the API key, the
 * server's `/v1` as the base URL, plain and streamed chat completions. The
 * Node SDK runs here; the Python SDK runs `tests/sdk/openai_client.py`
 * (installed by scripts/test-browser.sh).
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { startStack } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {OpenAI} */
let client;

before(async () => {
  stack = await startStack();
  client = new OpenAI({ apiKey: await stack.token(), baseURL: `${stack.server.url}/v1`, maxRetries: 0 });
});
after(async () => {
  await stack?.stop();
});

test("the SDK lists the server's models", async () => {
  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  assert.deepEqual(models, ["openai:fake"]);
});

test("the SDK gets a plain completion", async () => {
  stack.upstream.reply("Forty-two.");
  const completion = await client.chat.completions.create({
    model: "openai:fake",
    messages: [{ role: "user", content: "What is six times seven?" }],
  });
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.choices[0].message.content, "Forty-two.");
  assert.equal(completion.choices[0].finish_reason, "stop");
});

test("the SDK streams a completion chunk by chunk", async () => {
  stack.upstream.reply("Streaming works fine.");
  const stream = await client.chat.completions.create({
    model: "openai:fake",
    messages: [{ role: "user", content: "Stream please" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let chunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks += 1;
    text += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, "Streaming works fine.");
  assert.ok(chunks > 2, `several chunks: ${chunks}`);
  assert.ok(usage, "usage chunk");
});

test("the SDK surfaces the server's errors", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-9", messages: [{ role: "user", content: "hi" }] }),
    (/** @type {any} */ error) => error.status === 400 && /no such model/.test(error.message),
  );
  const stranger = new OpenAI({ apiKey: "not-a-token", baseURL: `${stack.server.url}/v1`, maxRetries: 0 });
  await assert.rejects(stranger.models.list(), (/** @type {any} */ error) => error.status === 401);
});

test("the Python SDK lists models, completes, streams and surfaces errors", async () => {
  const sdkDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../sdk");
  stack.upstream.reply("Forty-two.");
  stack.upstream.reply("Streaming from Python.");
  const { stdout } = await promisify(execFile)(process.env.PYTHON ?? "python3", [path.join(sdkDir, "openai_client.py")], {
    env: {
      ...process.env,
      PYTHONPATH: path.join(sdkDir, ".packages"),
      COLLOQUY_URL: stack.server.url,
      COLLOQUY_TOKEN: await stack.token(),
      COLLOQUY_MODEL: "openai:fake",
    },
    timeout: 60_000,
  });
  assert.deepEqual(JSON.parse(stdout), {
    models: ["openai:fake"],
    plain: "Forty-two.",
    finish_reason: "stop",
    streamed: "Streaming from Python.",
    refused: 400,
  });
});
