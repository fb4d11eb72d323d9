// @ts-check
/**
 * @file Branches in the chat UI (issue 16): a regenerated reply and an
 * edited message keep the ones they replace, and "‹ 2/3 ›" moves between
 * them, with the mouse or the keyboard; the path shown survives a reload.
 * Also the sidebar's streak and the header menu's summary view.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { violations } from "../lib/axe.js";
import { sendMessage, startStack, waitForReply } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** The texts of the messages shown, in order. @param {Page} page */
function shown(page) {
  return page.evaluate(() => [...document.querySelectorAll(".msg .msg-bubble")].map((b) => b.textContent));
}

/** The branch control labelled `label` (e.g. "Reply 2 of 2"), once shown. @param {Page} page @param {string} label */
async function branchControl(page, label) {
  const control = page.getByRole("group", { name: label });
  await control.waitFor();
  return control;
}

test("regenerating and editing keep the alternatives, and ‹ › moves between them from the keyboard", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply("Red.");
  await sendMessage(page, "Name a colour");
  await waitForReply(page, "Red.");
  assert.equal(await page.locator(".branch-nav").count(), 0, "no alternatives yet");

  stack.upstream.reply("Blue.");
  await page.getByRole("button", { name: "Regenerate reply" }).click();
  await waitForReply(page, "Blue.");
  await branchControl(page, "Reply 2 of 2");
  assert.deepEqual(await shown(page), ["Name a colour", "Blue."]);

  // Back to the first reply with the mouse; then on from the keyboard,
  // where focus stays on the control.
  await page.getByRole("button", { name: "Previous reply (1 of 2)" }).click();
  await branchControl(page, "Reply 1 of 2");
  assert.deepEqual(await shown(page), ["Name a colour", "Red."]);
  const focused = () => page.evaluate(() => document.activeElement?.getAttribute("aria-label"));
  await page.waitForFunction(() => document.activeElement?.classList.contains("branch-step"));
  assert.equal(await focused(), "Next reply (2 of 2)", "the step still possible has focus");
  await page.keyboard.press("Enter");
  await branchControl(page, "Reply 2 of 2");
  assert.deepEqual(await shown(page), ["Name a colour", "Blue."]);
  await page.waitForFunction(() => document.activeElement?.classList.contains("branch-step"));
  assert.equal(await focused(), "Previous reply (1 of 2)");

  // An edit is an alternative of the question: the answers under the
  // original stay with it.
  stack.upstream.reply("Apple.");
  const question = page.locator(".msg-user").first();
  await question.hover();
  await question.getByRole("button", { name: "Edit and resend" }).click();
  await page.locator(".msg-edit-input").fill("Name a fruit");
  await page.locator(".msg-edit-input").press("Enter");
  await waitForReply(page, "Apple.");
  await branchControl(page, "Version 2 of 2");
  assert.deepEqual(await shown(page), ["Name a fruit", "Apple."]);
  assert.deepEqual(await violations(page), []);

  await page.getByRole("button", { name: "Previous version (1 of 2)" }).click();
  await branchControl(page, "Version 1 of 2");
  assert.deepEqual(await shown(page), ["Name a colour", "Blue."]);
  await branchControl(page, "Reply 2 of 2");

  // The server keeps the path shown: a reload comes back to it.
  await page.reload();
  await branchControl(page, "Version 1 of 2");
  assert.deepEqual(await shown(page), ["Name a colour", "Blue."]);

  // A new message follows the path shown, and the model reads only it.
  await sendMessage(page, "And another?");
  await waitForReply(page, "You said: And another?");
  const prompt = stack.upstream.requests.at(-1)?.messages.map((/** @type {{ content: string }} */ m) => m.content);
  assert.deepEqual(prompt?.slice(1), ["Name a colour", "Blue.", "And another?"]);
  assert.deepEqual(errors, []);
});

test("the sidebar shows the day streak and the header menu the conversation's summary", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  assert.equal(await page.locator("#streak").isVisible(), false, "no streak before a message");
  stack.upstream.reply("Rain, then sun.");
  await sendMessage(page, "What is the weather like?");
  await waitForReply(page, "Rain, then sun.");
  await page.locator("#streak", { hasText: "1-day streak" }).waitFor();

  await page.getByRole("button", { name: "Share or export conversation" }).click();
  await page.getByRole("button", { name: "Summary" }).click();
  const dialog = page.getByRole("dialog", { name: "Summary" });
  await dialog.getByText("No summary yet.").waitFor();
  stack.upstream.reply("The user asked about the weather: rain, then sun.");
  await dialog.getByRole("button", { name: "Summarize" }).click();
  await dialog.getByText("The user asked about the weather: rain, then sun.").waitFor();
  await dialog.getByText(/^Updated /).waitFor();
  assert.equal(await dialog.getByRole("button", { name: "Update summary" }).isVisible(), true);
  assert.deepEqual(await violations(page), []);
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });

  // Stored: opened again, it is read back.
  await page.getByRole("button", { name: "Share or export conversation" }).click();
  await page.getByRole("button", { name: "Summary" }).click();
  await dialog.getByText("The user asked about the weather: rain, then sun.").waitFor();
  await dialog.getByRole("button", { name: "Close" }).click();
  // "No summary yet" is the API's 404, which the browser logs.
  assert.deepEqual(errors.filter((error) => !/status of 404/.test(error)), []);
});
