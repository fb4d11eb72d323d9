// @ts-check
/**
 * @file Share links from the chat header: the read-only page a link opens
 * (for someone not signed in), "Continue this conversation" into a copy of
 * one's own, and "Stop sharing" turning the link off.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { violations } from "../lib/axe.js";
import { sendMessage, startStack, waitForReply } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** Open the header menu and pick `entry`. @param {import("playwright-core").Page} page @param {string} entry */
async function fromMenu(page, entry) {
  await page.getByRole("button", { name: "Share or export conversation" }).click();
  await page.getByRole("button", { name: entry }).click();
}

test("a share link opens a read-only page that anyone can continue from; stopping sharing turns it off", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply("Bring **bread** and fruit.");
  await sendMessage(page, "Plan a picnic <img src=x onerror=alert(1)>");
  await waitForReply(page, "Bring bread and fruit.");

  await fromMenu(page, "Share link");
  const notice = page.locator("#notice-text");
  await notice.filter({ hasText: "/s/" }).waitFor();
  const url = /** @type {RegExpMatchArray} */ ((await notice.textContent())?.match(/https?:\/\/\S+\/s\/[A-Za-z0-9_-]+/))[0];
  assert.ok(url.startsWith(stack.server.url), url);

  // Someone with no account on this browser.
  const reader = await stack.page();
  await reader.page.goto(url);
  await reader.page.getByRole("heading", { level: 1, name: "Plan a picnic" }).waitFor();
  const items = reader.page.getByRole("list", { name: "Messages" }).getByRole("listitem");
  await items.nth(1).waitFor();
  assert.equal(await items.count(), 2);
  assert.match((await items.nth(0).textContent()) ?? "", /Plan a picnic <img src=x onerror=alert\(1\)>/);
  assert.equal(await reader.page.locator(".shared-messages img").count(), 0, "markup stays text");
  assert.equal(await items.nth(1).locator("strong").textContent(), "bread");
  assert.deepEqual(await violations(reader.page), []);
  assert.deepEqual(reader.dialogs, []);

  await reader.page.getByRole("button", { name: "Continue this conversation" }).click();
  await reader.page.waitForURL(/#\/c\//);
  await waitForReply(reader.page, "Bring bread and fruit.");
  assert.deepEqual(reader.errors, []);

  await fromMenu(page, "Stop sharing");
  await notice.filter({ hasText: "Sharing stopped" }).waitFor();
  const late = await stack.page();
  await late.page.goto(url);
  await late.page.getByRole("heading", { level: 1, name: "Conversation not found" }).waitFor();
  assert.equal(await late.page.getByRole("button", { name: "Continue this conversation" }).isVisible(), false);
  assert.deepEqual(errors, []);
});

test("a shared reply shows its tool calls above its text, collapsible as in the chat", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const call = { id: "call_6x7", name: "calculate", arguments: JSON.stringify({ expression: "6 * 7" }) };
  stack.upstream.toolTurn([call], () => "It is 42.");
  await sendMessage(page, "6 times 7?");
  await waitForReply(page, "It is 42.");
  await fromMenu(page, "Share link");
  const notice = page.locator("#notice-text");
  await notice.filter({ hasText: "/s/" }).waitFor();
  const url = /** @type {RegExpMatchArray} */ ((await notice.textContent())?.match(/https?:\/\/\S+\/s\/[A-Za-z0-9_-]+/))[0];

  const reader = await stack.page();
  await reader.page.goto(url);
  const reply = reader.page.locator(".shared-message.from-assistant");
  const summary = reply.locator(".tool-summary");
  await summary.waitFor();
  assert.equal((await summary.textContent())?.trim(), "Used calculate");
  await summary.click();
  const values = reply.locator(".tool-value");
  assert.deepEqual(JSON.parse((await values.nth(0).textContent()) ?? ""), { expression: "6 * 7" });
  assert.equal(JSON.parse((await values.nth(1).textContent()) ?? "").result, 42);
  const toolsFirst = await reply.evaluate((node) => {
    const tools = /** @type {Element} */ (node.querySelector(".msg-tools"));
    const body = /** @type {Element} */ (node.querySelector(".shared-body"));
    return Boolean(tools.compareDocumentPosition(body) & Node.DOCUMENT_POSITION_FOLLOWING);
  });
  assert.ok(toolsFirst, "the calls come before the reply's text");
  assert.deepEqual(await violations(reader.page), []);
  assert.deepEqual(reader.errors, []);
  assert.deepEqual(errors, []);
});
