// @ts-check
/**
 * @file Conversation search from the sidebar, and exporting a conversation
 * as Markdown or JSON from the chat header.
 */

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { fetchWhole, fileName, toMarkdown } from "../../../web/export.js";
import { conversationId, sendMessage, startStack, waitForReply } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** The ids of the listed conversations, top to bottom. @param {import("playwright-core").Page} page */
const listed = (page) => page.evaluate(() => [...document.querySelectorAll(".conv-item")].map((li) => /** @type {HTMLElement} */ (li).dataset.id));

/** Wait until the list shows exactly `ids` (any order). @param {import("playwright-core").Page} page @param {string[]} ids */
async function waitForListed(page, ids) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll(".conv-item")].map((li) => /** @type {HTMLElement} */ (li).dataset.id).sort();
      return JSON.stringify(have) === JSON.stringify([...want].sort());
    },
    ids,
  );
}

test("searching the sidebar shows only the conversations that match; clearing it restores the list", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply("Apples are crunchy and sweet.");
  await sendMessage(page, "Tell me about fruit");
  await waitForReply(page, "Apples are crunchy and sweet.");
  const fruit = await conversationId(page);
  await page.getByRole("button", { name: "New chat" }).click();
  stack.upstream.reply("Boats float on water.");
  await sendMessage(page, "Tell me about sailing");
  await waitForReply(page, "Boats float on water.");
  const sailing = await conversationId(page);
  await waitForListed(page, [fruit, sailing]);

  const field = page.getByRole("searchbox", { name: "Search conversations" });
  await field.fill("CRUNCHY");
  await waitForListed(page, [fruit]);
  await page.getByRole("status").filter({ hasText: "1 conversation match" }).waitFor();

  await field.fill("submarine");
  await waitForListed(page, []);
  await page.locator(".conv-empty", { hasText: "No conversations match" }).waitFor();
  assert.equal(await page.locator("#search-status").textContent(), "No conversations match");

  await field.fill("");
  await waitForListed(page, [fruit, sailing]);
  assert.equal(await page.locator(".conv-empty").count(), 0);
  assert.equal(await page.locator("#search-status").textContent(), "");
  assert.deepEqual((await listed(page)).length, 2);
  assert.deepEqual(errors, []);
});

test("the header exports the open conversation as Markdown and as JSON", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply("Pack light.");
  await sendMessage(page, "Trip advice?");
  await waitForReply(page, "Pack light.");
  const id = await conversationId(page);
  const renamed = await fetch(`${stack.server.url}/api/conversations/${id}`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ title: "Trip: plans/ideas?" }),
  });
  assert.equal(renamed.status, 200);

  const exportAs = async (/** @type {string} */ name) => {
    await page.getByRole("button", { name: "Share or export conversation" }).click();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name }).click()]);
    return { name: download.suggestedFilename(), text: await readFile(/** @type {string} */ (await download.path()), "utf8") };
  };

  const markdown = await exportAs("Export as Markdown");
  assert.equal(markdown.name, "Trip plans ideas.md");
  assert.equal(markdown.text, "# Trip: plans/ideas?\n\n**You:**\n\nTrip advice?\n\n**Assistant:**\n\nPack light.\n");

  const json = await exportAs("Export as JSON");
  assert.equal(json.name, "Trip plans ideas.json");
  const data = JSON.parse(json.text);
  assert.equal(data.id, id);
  assert.equal(data.title, "Trip: plans/ideas?");
  assert.ok(!Number.isNaN(Date.parse(data.exported_at)));
  assert.deepEqual(
    data.messages.map((/** @type {any} */ m) => [m.sender, m.content, m.status]),
    [
      ["user", "Trip advice?", "complete"],
      ["assistant", "Pack light.", "complete"],
    ],
  );
  for (const message of data.messages) assert.deepEqual(Object.keys(message), ["id", "sender", "content", "status", "created_at"]);
  assert.deepEqual(errors, []);
});

test("an export follows the conversation's pages back to the first message", async () => {
  /** @param {string} id @param {string} content */
  const m = (id, content) => ({ id, sender: id.startsWith("u") ? "user" : "assistant", content, status: "complete", seq: 0, created_at: "" });
  /** @type {Record<string, any>} */
  const pages = {
    newest: { id: "c", title: "", messages: [m("u3", "three"), m("a3", "3!")], has_more: true, next_before: 20 },
    20: { id: "c", title: "", messages: [m("u2", "two"), m("a2", "2!")], has_more: true, next_before: 10 },
    10: { id: "c", title: "", messages: [m("u1", "one"), m("a1", "1!")], has_more: false, next_before: null },
  };
  const api = /** @type {any} */ ({ getConversation: async (/** @type {string} */ _id, /** @type {number | undefined} */ before) => pages[before ?? "newest"] });
  const whole = await fetchWhole(api, "c");
  assert.deepEqual(whole.messages.map((x) => x.id), ["u1", "a1", "u2", "a2", "u3", "a3"]);
  assert.ok(toMarkdown(whole).startsWith("# New chat\n\n**You:**\n\none\n\n**Assistant:**\n\n1!\n\n**You:**\n\ntwo"));
  assert.equal(fileName(' ..\u0007<CON>/"x"  '), "CON x");
  assert.equal(fileName("///"), "conversation");
});
