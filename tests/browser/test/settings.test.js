// @ts-check
/**
 * @file The model picker and the settings panel (issue 13): with two models
 * configured (two fake upstreams speaking the real protocol), the reply
 * comes from the one picked, and the pick is kept; the settings dialog is
 * reachable and usable from the keyboard, its choices apply at once and
 * survive a reload; with send-on-Enter off, Enter adds a line and
 * Ctrl+Enter sends.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SECOND_MODEL, sendMessage, startStack, waitForReply, waitForReplyContaining } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack({ secondModel: true });
});
after(async () => {
  await stack?.stop();
});

/** The second model's upstream (always there: `secondModel`). */
const second = () => /** @type {NonNullable<typeof stack.second>} */ (stack.second);

test("with two models, the picker lists both and the reply comes from the one picked, which is kept", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const picker = page.getByLabel("Model");
  await picker.waitFor();
  assert.deepEqual(await picker.locator("option").allTextContents(), ["openai:fake", SECOND_MODEL.name]);
  assert.equal(await picker.inputValue(), "openai:fake", "the server's default first");

  await picker.selectOption({ label: SECOND_MODEL.name });
  const defaultRequests = stack.upstream.requests.length;
  second().reply("Answered by the second model.");
  await sendMessage(page, "Who answers?");
  await waitForReply(page, "Answered by the second model.");
  assert.equal(second().requests.length, 1);
  assert.equal(second().requests[0].model, "second-model");
  assert.equal(stack.upstream.requests.length, defaultRequests, "the default model was not asked");

  // Kept across a reload; switching back goes back to the default model.
  await page.reload();
  await page.locator(".msg-assistant").waitFor();
  await page.locator("#model-field:not([hidden])").waitFor();
  assert.equal(await page.getByLabel("Model").inputValue(), SECOND_MODEL.id);
  await page.getByLabel("Model").selectOption("openai:fake");
  await sendMessage(page, "And now?");
  await waitForReply(page, "You said: And now?");
  assert.equal(second().requests.length, 1);
  assert.deepEqual(errors, []);
  await context.close();
});

test("the settings dialog opens from the keyboard, applies the theme at once, keeps it, and gives focus back on Escape", async () => {
  const token = await stack.token();
  const { page, context } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  await page.locator("#chat-view:not([hidden])").waitFor();
  const button = page.getByRole("button", { name: "Settings" });
  await button.focus();
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog", { name: "Settings" });
  await dialog.waitFor();
  // The server offers no voice here: nothing about speaking is shown.
  assert.equal(await dialog.getByText("Speak replies aloud").isVisible(), false);
  assert.equal(await dialog.getByRole("radio", { name: "System" }).isChecked(), true);

  await dialog.getByRole("radio", { name: "Dark" }).check();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.equal(await button.evaluate((el) => el === document.activeElement), true, "focus is back on Settings");

  await page.reload();
  await page.locator("#chat-view:not([hidden])").waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark", "kept across a reload");
  await button.click();
  await dialog.getByRole("radio", { name: "System" }).check();
  await dialog.getByRole("button", { name: "Done" }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme ?? null), null);
  await context.close();
});

test("with send-on-Enter off, Enter adds a line and Ctrl+Enter sends; the hint says so", async () => {
  const token = await stack.token();
  const { page, context } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  await page.getByRole("button", { name: "Settings" }).click();
  const dialog = page.getByRole("dialog", { name: "Settings" });
  const setting = dialog.getByRole("checkbox", { name: "Enter sends the message" });
  assert.equal(await setting.isChecked(), true, "on by default");
  await setting.uncheck();
  await dialog.getByRole("button", { name: "Done" }).click();
  assert.match((await page.locator("#composer-hint").textContent()) ?? "", /Ctrl\+Enter to send/);

  const box = page.locator("#input");
  await box.fill("first line");
  await box.press("Enter");
  await box.pressSequentially("second line");
  assert.equal(await box.inputValue(), "first line\nsecond line", "Enter added a line");
  assert.equal(await page.locator(".msg").count(), 0, "nothing was sent");
  await box.press("Control+Enter");
  await waitForReplyContaining(page, "second line");
  assert.equal(await page.locator(".msg-user .msg-bubble").textContent(), "first line\nsecond line");
  assert.equal(await box.inputValue(), "");

  // The same rule in the editor of a sent message.
  const mine = page.locator(".msg-user").first();
  await mine.hover();
  await mine.getByRole("button", { name: "Edit and resend" }).click();
  const editor = page.locator(".msg-edit-input");
  await editor.press("End");
  await editor.press("Enter");
  assert.equal(await page.locator(".msg-edit-input").count(), 1, "Enter did not send the edit");
  await editor.press("Control+Enter");
  // An edit is an alternative to the message it edits (issue 16's branches).
  await page.locator(".msg-user .branch-count", { hasText: "2/2" }).waitFor();
  assert.equal(await page.locator(".msg-edit-input").count(), 0);

  // Kept across a reload.
  await page.reload();
  await page.locator(".msg").first().waitFor();
  assert.match((await page.locator("#composer-hint").textContent()) ?? "", /Ctrl\+Enter to send/);
  await context.close();
});
