// @ts-check
/**
 * @file The JS client's rules, against a scripted WebSocket (no server,
 * fake timers): backoff with jitter, resume URL, de-duplication, the
 * outgoing queue, heartbeats, and which close codes reconnect.
 */

import assert from "node:assert/strict";
import { beforeEach, mock, test } from "node:test";
import { backoffDelay, ColloquyClient } from "../../../web/colloquy-client.js";

/** A stand-in socket the test drives by hand. */
class FakeSocket {
  /** @type {FakeSocket[]} */
  static all = [];
  readyState = 0;
  /** @type {string[]} */
  sent = [];
  /** @type {((event: { data: unknown }) => void) | null} */
  onmessage = null;
  /** @type {((event: { code: number, reason: string }) => void) | null} */
  onclose = null;
  /** @type {(() => void) | null} */
  onerror = null;
  /** @type {{ code?: number, reason?: string } | null} */
  closedWith = null;

  /** @param {string} url */
  constructor(url) {
    this.url = url;
    FakeSocket.all.push(this);
  }
  /** @param {string} data */
  send(data) {
    this.sent.push(data);
  }
  /** @param {number} [code] @param {string} [reason] */
  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  // ---- driven by the test ----
  /** @param {object} event */
  receive(event) {
    this.readyState = 1;
    this.onmessage?.({ data: JSON.stringify(event) });
  }
  /** @param {number} code @param {string} [reason] */
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** @param {string} type */
  sentOf(type) {
    return this.sent.map((s) => JSON.parse(s)).filter((e) => e.type === type);
  }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const ready = (/** @type {number} */ lastSeq, id = "c1") => ({ type: "ready", conversation_id: id, last_seq: lastSeq });
/** Let the client's async connect step run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** @param {Partial<import("../../../web/colloquy-client.js").ClientOptions>} [options] */
function client(options = {}) {
  return new ColloquyClient({
    token: "t0k",
    baseUrl: "http://chat.test",
    WebSocket: /** @type {any} */ (FakeSocket),
    random: () => 0.5,
    ...options,
  });
}

beforeEach(() => {
  FakeSocket.all = [];
  mock.timers.reset();
});

test("backoff is exponential with full jitter, capped", () => {
  assert.equal(backoffDelay(0, 500, 10_000, () => 0.999), 499);
  assert.equal(backoffDelay(3, 500, 10_000, () => 0.5), 2000);
  assert.equal(backoffDelay(20, 500, 10_000, () => 0.5), 5000);
  assert.equal(backoffDelay(5, 500, 10_000, () => 0), 0);
});

test("connects with token and conversation; a reconnect resumes after the last seq seen, dropping repeats", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client({ conversationId: "c1" });
  /** @type {string[]} */
  const deltas = [];
  c.on("delta", (e) => deltas.push(e.content));
  c.connect();
  await settle();
  assert.equal(last().url, "ws://chat.test/api/v1/chat/ws?token=t0k&conversationId=c1");
  last().receive(ready(4));
  assert.equal(c.state, "open");
  last().receive({ type: "delta", message_id: "r", seq: 5, content: "Hel" });
  last().receive({ type: "delta", message_id: "r", seq: 6, content: "lo" });
  last().drop(1006);
  assert.equal(c.state, "reconnecting");
  mock.timers.tick(10_000);
  await settle();
  assert.equal(last().url, "ws://chat.test/api/v1/chat/ws?token=t0k&conversationId=c1&last_seq=6");
  last().receive(ready(7));
  // The replay overlaps: 6 was seen, 7 is new.
  last().receive({ type: "delta", message_id: "r", seq: 6, content: "lo" });
  last().receive({ type: "delta", message_id: "r", seq: 7, content: "!" });
  assert.deepEqual(deltas, ["Hel", "lo", "!"]);
  c.disconnect();
});

test("texts queue while offline and are resent with the same client_id until acked", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client();
  const clientId = c.send("hello");
  c.connect();
  await settle();
  assert.equal(last().sent.length, 0, "nothing is written before ready");
  last().receive(ready(0));
  assert.deepEqual(last().sentOf("text"), [{ type: "text", content: "hello", client_id: clientId }]);
  last().drop(1006);
  mock.timers.tick(10_000);
  await settle();
  last().receive(ready(0));
  assert.deepEqual(last().sentOf("text"), [{ type: "text", content: "hello", client_id: clientId }], "resent, same id");
  last().receive({ type: "ack", client_id: clientId, message_id: "m", seq: 1, content: "hello", reply_id: "r" });
  assert.equal(c.pendingCount, 0);
  last().drop(1006);
  mock.timers.tick(10_000);
  await settle();
  last().receive(ready(1));
  assert.deepEqual(last().sentOf("text"), [], "acknowledged texts are not resent");
  c.disconnect();
});

test("1008 (not authenticated) stops for good; 1012 (restart) reconnects", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client();
  /** @type {string[]} */
  const fatal = [];
  c.on("fatal", (e) => fatal.push(e.reason));
  c.connect();
  await settle();
  last().receive(ready(0));
  last().drop(1012, "service restart");
  assert.equal(c.state, "reconnecting");
  mock.timers.tick(10_000);
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  last().drop(1008, "Not authenticated");
  assert.equal(c.state, "closed");
  assert.deepEqual(fatal, ["Not authenticated"]);
  mock.timers.tick(60_000);
  await settle();
  assert.equal(FakeSocket.all.length, 2, "no reconnect loop");
});

test("1011 (server failed) and 1013 (try again later) reconnect with backoff, keeping the token", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client();
  /** @type {string[]} */
  const fatal = [];
  c.on("fatal", (e) => fatal.push(e.reason));
  c.connect();
  await settle();
  last().drop(1011, "Service unavailable");
  assert.equal(c.state, "reconnecting");
  mock.timers.tick(10_000);
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  last().drop(1013, "try again later");
  assert.equal(c.state, "reconnecting");
  mock.timers.tick(10_000);
  await settle();
  assert.equal(FakeSocket.all.length, 3);
  assert.ok(last().url.includes("token=t0k"), last().url);
  last().receive(ready(0));
  assert.equal(c.state, "open");
  assert.deepEqual(fatal, []);
});

test("a silent socket is dropped after a ping goes unanswered, then replaced", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client({ heartbeatIntervalMs: 15_000, heartbeatTimeoutMs: 5_000 });
  c.connect();
  await settle();
  last().receive(ready(0));
  mock.timers.tick(15_000);
  assert.deepEqual(last().sentOf("ping"), [{ type: "ping" }]);
  last().receive({ type: "pong" });
  mock.timers.tick(4_999);
  assert.equal(c.state, "open", "a pong keeps it alive");
  mock.timers.tick(15_000 - 4_999);
  assert.equal(last().sentOf("ping").length, 2, "the next ping");
  mock.timers.tick(5_000);
  assert.equal(last().closedWith?.code, 4000, "no pong: dropped");
  assert.equal(c.state, "reconnecting");
  mock.timers.tick(10_000);
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  c.disconnect();
});

test("while a reply is being written, silence is noticed within the short interval plus the deadline", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client({ heartbeatIntervalMs: 15_000, activeHeartbeatIntervalMs: 2_000, heartbeatTimeoutMs: 3_000 });
  c.connect();
  await settle();
  last().receive(ready(0));
  c.send("hello", { clientId: "k1" });
  last().receive({ type: "ack", client_id: "k1", message_id: "u1", seq: 1, content: "hello", reply_id: "a1" });
  last().receive({ type: "delta", message_id: "a1", seq: 2, content: "Hi" });
  // Deltas keep it quiet: no pings while frames flow.
  mock.timers.tick(1_999);
  last().receive({ type: "delta", message_id: "a1", seq: 3, content: " there" });
  assert.deepEqual(last().sentOf("ping"), []);
  // Then the network goes silent mid-reply.
  mock.timers.tick(2_000);
  assert.equal(last().sentOf("ping").length, 1, "a ping after 2 s of silence");
  mock.timers.tick(2_999);
  assert.equal(c.state, "open");
  mock.timers.tick(1);
  assert.equal(last().closedWith?.code, 4000, "dead 5 s after the last frame");
  assert.equal(c.state, "reconnecting");
  c.disconnect();
});

test("once the reply is final the socket goes back to idle pings; going offline pings at once", async (t) => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  // Node's global is no EventTarget: lend it one for the browser's network events.
  const network = new EventTarget();
  const global = /** @type {any} */ (globalThis);
  global.addEventListener = network.addEventListener.bind(network);
  global.removeEventListener = network.removeEventListener.bind(network);
  t.after(() => {
    delete global.addEventListener;
    delete global.removeEventListener;
  });
  const c = client({ heartbeatIntervalMs: 15_000, activeHeartbeatIntervalMs: 2_000, heartbeatTimeoutMs: 3_000 });
  c.connect();
  await settle();
  last().receive(ready(0));
  c.send("hello", { clientId: "k1" });
  last().receive({ type: "ack", client_id: "k1", message_id: "u1", seq: 1, content: "hello", reply_id: "a1" });
  last().receive({ type: "message", message_id: "a1", seq: 2, content: "Hi", sender: "assistant", status: "complete", is_final: true });
  mock.timers.tick(14_999);
  assert.deepEqual(last().sentOf("ping"), [], "idle: no ping before 15 s");
  network.dispatchEvent(new Event("offline"));
  assert.equal(last().sentOf("ping").length, 1, "offline: a ping at once");
  mock.timers.tick(3_000);
  assert.equal(c.state, "reconnecting", "no answer before the deadline: dropped");
  c.disconnect();
});

test("resync_required reloads the conversation over HTTP and resumes after it", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  /** @type {string[]} */
  const fetched = [];
  const fetchStub = /** @type {typeof fetch} */ (
    /** @type {unknown} */ (
      async (/** @type {string} */ url) => {
        fetched.push(url);
        return new Response(JSON.stringify({ id: "c1", title: "", last_seq: 9, messages: [{ seq: 3 }, { seq: 9 }] }));
      }
    )
  );
  const c = client({ conversationId: "c1", fetch: fetchStub });
  /** @type {unknown[]} */
  const reloaded = [];
  c.on("resync", (conversation) => reloaded.push(conversation.id));
  c.connect();
  await settle();
  last().receive(ready(2));
  last().receive({ type: "error", code: "resync_required", message: "fell behind" });
  mock.timers.tick(10_000);
  await settle();
  await settle();
  assert.deepEqual(fetched, ["http://chat.test/api/conversations/c1"]);
  assert.deepEqual(reloaded, ["c1"]);
  assert.match(last().url, /last_seq=9$/);
  c.disconnect();
});

test("stop while offline is delivered after the reconnect", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client();
  c.connect();
  await settle();
  c.stop();
  last().receive(ready(0));
  assert.deepEqual(last().sentOf("stop"), [{ type: "stop" }]);
  c.disconnect();
});

test("audio is sent only while open, never queued or replayed; tts rides on the URL", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  const c = client({ conversationId: "c1", tts: true });
  /** @type {string[]} */
  const heard = [];
  c.on("transcript", (e) => heard.push(e.text));
  c.on("audio", (e) => heard.push(`audio:${e.message_id}`));
  assert.equal(c.sendAudio("AAAA"), false, "not connected: dropped");
  c.connect();
  await settle();
  assert.equal(last().url, "ws://chat.test/api/v1/chat/ws?token=t0k&conversationId=c1&tts=1");
  assert.equal(c.ttsApplied, true);
  assert.equal(c.sendAudio("AAAA"), false, "not ready yet: dropped");
  last().receive(ready(0));
  assert.equal(c.sendAudio("AQA=", 16_000), true);
  assert.equal(c.endAudio(), true);
  assert.deepEqual(last().sent.map((s) => JSON.parse(s)), [
    { type: "audio", data: "AQA=", sample_rate: 16_000 },
    { type: "audio_end" },
  ]);
  // Voice events have no seq: they pass de-duplication untouched.
  last().receive({ type: "transcript", text: "hello there", client_id: "voice-1" });
  last().receive({ type: "audio", message_id: "r1", data: "AAA=", sample_rate: 24_000 });
  assert.deepEqual(heard, ["hello there", "audio:r1"]);
  // Changing tts applies at the next connection; reconnect() applies it now.
  assert.equal(c.setTts(false), true);
  assert.equal(c.ttsApplied, false);
  last().drop(1006);
  assert.equal(c.sendAudio("AAAA"), false, "offline: dropped");
  mock.timers.tick(10_000);
  await settle();
  assert.match(last().url, /&tts=0$/);
  last().receive(ready(0));
  assert.deepEqual(last().sent, [], "no audio was replayed after the reconnect");
  c.disconnect();
});
