// @ts-check
/**
 * @file Exports carry each reply's tool calls (name, arguments, result or
 * error) in the order they were made, gathered from every page.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { fetchWhole, toJson, toMarkdown } from "../../../web/export.js";

/** @param {string} id @param {string} content */
const m = (id, content) => ({ id, sender: id.startsWith("u") ? "user" : "assistant", content, status: "complete", seq: 0, created_at: "" });

test("an export shows each reply's tool calls in order, from every page", async () => {
  /** @type {Record<string, any>} */
  const pages = {
    newest: {
      id: "c",
      title: "Sums",
      messages: [m("u2", "And 2^10?"), m("a2", "1024.")],
      tool_calls: [{ message_id: "a2", call_id: "x", name: "calculate", status: "end", arguments: { expression: "2^10" }, result: { result: 1024 } }],
      has_more: true,
      next_before: 10,
    },
    10: {
      id: "c",
      title: "Sums",
      messages: [m("u1", "6 times 7?"), m("a1", "42.")],
      tool_calls: [
        { message_id: "a1", call_id: "p", name: "get_current_time", status: "end", arguments: { timezone: "Mars/X" }, error: { code: "unknown_timezone", message: "no such zone" } },
        { message_id: "a1", call_id: "q", name: "calculate", status: "end", arguments: { expression: "6 * 7" }, result: { result: 42 } },
      ],
      has_more: false,
      next_before: null,
    },
  };
  const api = /** @type {any} */ ({ getConversation: async (/** @type {string} */ _id, /** @type {number | undefined} */ before) => pages[before ?? "newest"] });
  const whole = await fetchWhole(api, "c");

  const data = JSON.parse(toJson(whole));
  assert.equal(data.messages[0].tool_calls, undefined, "a user message has none");
  assert.deepEqual(data.messages[1].tool_calls, [
    { name: "get_current_time", arguments: { timezone: "Mars/X" }, error: { code: "unknown_timezone", message: "no such zone" } },
    { name: "calculate", arguments: { expression: "6 * 7" }, result: { result: 42 } },
  ]);
  assert.deepEqual(data.messages[3].tool_calls, [{ name: "calculate", arguments: { expression: "2^10" }, result: { result: 1024 } }]);

  const markdown = toMarkdown(whole);
  const time = markdown.indexOf("_Tool `get_current_time`_");
  const calc = markdown.indexOf("_Tool `calculate`_");
  assert.ok(time > markdown.indexOf("6 times 7?") && time < calc && calc < markdown.indexOf("42."), markdown);
  assert.ok(markdown.includes("Error: no such zone (unknown_timezone)"), markdown);
  assert.ok(markdown.includes('"result": 1024'), markdown);
});
