// @ts-check
/**
 * @file The UI's conversation model (no DOM): how stored messages and
 * socket events combine into what the page shows.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConversationState } from "../../../web/conversation-state.js";

/** @param {Partial<import("../../../web/protocol.js").StoredMessage>} m */
const stored = (m) => /** @type {import("../../../web/protocol.js").StoredMessage} */ ({ status: "complete", created_at: "", content: "", ...m });

test("a loaded conversation whose last reply is not stored waits for it, and resumes after the last seq", () => {
  const state = new ConversationState();
  state.load([
    stored({ id: "u1", sender: "user", content: "hi", seq: 1, reply_id: "a1" }),
    stored({ id: "a1", sender: "assistant", content: "hello", seq: 4 }),
    stored({ id: "u2", sender: "user", content: "more", seq: 5, reply_id: "a2" }),
  ]);
  assert.deepEqual(state.messages.map((m) => [m.id, m.status]), [["u1", "sent"], ["a1", "complete"], ["u2", "sent"], ["a2", "waiting"]]);
  assert.equal(state.lastSeq, 5);
  assert.equal(state.busy, true);
});

test("a local message is re-keyed by its ack; deltas stream; the final message replaces them", () => {
  const state = new ConversationState();
  state.addLocal("c1", "hello");
  const acked = state.apply({ type: "ack", client_id: "c1", message_id: "u1", seq: 1, content: "hello", reply_id: "a1" });
  assert.equal(acked.structural, true);
  assert.deepEqual(state.messages.map((m) => [m.id, m.role, m.status]), [["u1", "user", "sent"], ["a1", "assistant", "waiting"]]);
  state.apply({ type: "delta", message_id: "a1", seq: 2, content: "Hel" });
  assert.equal(state.get("a1")?.status, "streaming");
  state.apply({ type: "delta", message_id: "a1", seq: 3, content: "lo" });
  state.apply({ type: "message", message_id: "a1", seq: 4, content: "Hello!", sender: "assistant", status: "complete", is_final: true });
  assert.equal(state.get("a1")?.content, "Hello!", "not Hello + Hello!");
  assert.equal(state.busy, false);
});

test("a reply error is attached to the reply; a refused text is marked failed", () => {
  const state = new ConversationState();
  state.apply({ type: "ack", message_id: "u1", seq: 1, content: "x", reply_id: "a1" });
  state.apply({ type: "error", code: "no_model", message: "No AI model is configured on this server.", message_id: "a1", seq: 2 });
  state.apply({ type: "message", message_id: "a1", seq: 3, content: "", sender: "assistant", status: "error", is_final: true });
  assert.deepEqual(state.get("a1")?.error, { code: "no_model", message: "No AI model is configured on this server." });
  state.addLocal("c2", "y".repeat(10));
  state.reject("c2", { code: "message_too_long", message: "too long" });
  assert.equal(state.get("local:c2")?.status, "failed");
});

test("tool events show as running, then done with the result or failed with the error, on their reply", () => {
  const state = new ConversationState();
  state.apply({ type: "ack", message_id: "u1", seq: 1, content: "x", reply_id: "a1" });
  const base = /** @type {const} */ ({ type: "tool", message_id: "a1", name: "calculate" });
  state.apply({ ...base, call_id: "c1", status: "start", arguments: { expression: "6 * 7" }, seq: 2 });
  state.apply({ ...base, call_id: "c2", status: "start", arguments: { expression: "1 / x" }, seq: 3 });
  assert.deepEqual(state.get("a1")?.tools.map((t) => [t.id, t.status]), [["c1", "running"], ["c2", "running"]]);
  // Calls of one round end in the order they finish.
  state.apply({ ...base, call_id: "c2", status: "end", error: { code: "invalid_expression", message: "bad" }, duration_ms: 2, seq: 4 });
  state.apply({ ...base, call_id: "c1", status: "end", result: 42, duration_ms: 1, seq: 5 });
  assert.deepEqual(state.get("a1")?.tools, [
    { id: "c1", name: "calculate", status: "done", arguments: { expression: "6 * 7" }, result: 42, durationMs: 1 },
    { id: "c2", name: "calculate", status: "failed", arguments: { expression: "1 / x" }, error: { code: "invalid_expression", message: "bad" }, durationMs: 2 },
  ]);
  // A reply that ends leaves no call running.
  state.apply({ ...base, call_id: "c3", status: "start", arguments: {}, seq: 6 });
  state.apply({ type: "message", message_id: "a1", seq: 7, content: "", sender: "assistant", status: "interrupted", is_final: true });
  assert.equal(state.get("a1")?.tools[2].status, "done");
});

test("a loaded conversation puts the stored tool calls on their replies", () => {
  const state = new ConversationState();
  state.load(
    [stored({ id: "u1", sender: "user", content: "6 x 7?", seq: 1, reply_id: "a1" }), stored({ id: "a1", sender: "assistant", content: "42", seq: 4 })],
    [{ message_id: "a1", call_id: "c1", name: "calculate", status: "end", arguments: { expression: "6 * 7" }, result: 42, duration_ms: 3, round: 0 }],
  );
  assert.deepEqual(state.get("a1")?.tools, [{ id: "c1", name: "calculate", status: "done", arguments: { expression: "6 * 7" }, result: 42, durationMs: 3 }]);
});

test("a transcript shows as the user's message at once; its ack confirms it without a second bubble", () => {
  const state = new ConversationState();
  const shown = state.apply({ type: "transcript", text: "what time is it", client_id: "voice-1" });
  assert.equal(shown.structural, true);
  assert.deepEqual(state.messages.map((m) => [m.role, m.content, m.status, m.spoken]), [["user", "what time is it", "sending", true]]);
  state.apply({ type: "ack", client_id: "voice-1", message_id: "u1", seq: 1, content: "what time is it", reply_id: "a1" });
  assert.deepEqual(state.messages.map((m) => [m.id, m.status]), [["u1", "sent"], ["a1", "waiting"]]);
  // The ack may overtake the transcript: still one bubble.
  state.apply({ type: "ack", client_id: "voice-2", message_id: "u2", seq: 5, content: "and the date", reply_id: "a2" });
  state.apply({ type: "transcript", text: "and the date", client_id: "voice-2" });
  assert.equal(state.messages.filter((m) => m.content === "and the date").length, 1);
  assert.equal(state.get("u2")?.spoken, true);
  // Nothing intelligible: no bubble.
  assert.deepEqual(state.apply({ type: "transcript", text: "" }).changed, []);
});

test("a reply the user spoke over shows what was heard, marked interrupted", () => {
  const state = new ConversationState();
  state.apply({ type: "ack", client_id: "voice-1", message_id: "u1", seq: 1, content: "tell me a story", reply_id: "a1" });
  state.apply({ type: "delta", message_id: "a1", seq: 2, content: "Once upon a time, " });
  state.apply({ type: "delta", message_id: "a1", seq: 3, content: "there was a fox" });
  state.apply({ type: "interrupted", message_id: "a1", played_ms: 900, content: "Once upon a time," });
  assert.deepEqual([state.get("a1")?.content, state.get("a1")?.status, state.get("a1")?.spokenOver], ["Once upon a time,", "interrupted", true]);
  assert.equal(state.busy, false);
  // Late deltas and the generation's own (longer) end do not bring back unheard text...
  state.apply({ type: "delta", message_id: "a1", seq: 4, content: " who" });
  state.apply({ type: "message", message_id: "a1", seq: 5, content: "Once upon a time, there was a fox who", sender: "assistant", status: "interrupted", is_final: true });
  assert.equal(state.get("a1")?.content, "Once upon a time,");
  // ...and the stored cut, the second final message, is what stays.
  state.apply({ type: "message", message_id: "a1", seq: 6, content: "Once upon a time,", sender: "assistant", status: "interrupted", is_final: true });
  assert.deepEqual([state.get("a1")?.content, state.get("a1")?.status], ["Once upon a time,", "interrupted"]);
});
