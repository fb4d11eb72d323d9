// @ts-check
/**
 * @file Edit and regenerate as in ChatGPT (issue 13): only the latest reply
 * offers Regenerate (none while a reply is being written), and editing an
 * earlier message brings the view to its result, wherever the edit was made.
 * (What they keep as alternatives is branches.test.js.)
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { deferred, sendMessage, startStack, waitForReply } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** Which messages offer Regenerate, by their index among the replies. @param {Page} page */
function regenerateOffers(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll(".msg-assistant")].flatMap((reply, index) =>
      reply.querySelector('[data-action="regenerate"]') ? [index] : [],
    ),
  );
}

test("only the latest reply offers Regenerate, and none does while a reply is being written", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  await sendMessage(page, "First question");
  await waitForReply(page, "You said: First question");
  assert.deepEqual(await regenerateOffers(page), [0]);
  await sendMessage(page, "Second question");
  await waitForReply(page, "You said: Second question");
  assert.deepEqual(await regenerateOffers(page), [1], "the first reply no longer offers it");

  const gate = deferred();
  stack.upstream.reply("A reply that takes its time.", { before: (index) => (index === 2 ? gate.promise : undefined) });
  await sendMessage(page, "Third question");
  await page.locator(".msg-assistant", { hasText: "A reply" }).waitFor();
  assert.deepEqual(await regenerateOffers(page), [], "nothing to regenerate while a reply is written");
  gate.resolve();
  await waitForReply(page, "A reply that takes its time.");
  assert.deepEqual(await regenerateOffers(page), [2]);

  // Regenerating asks again, in the reply's place; the new one offers it.
  stack.upstream.reply("Another take.");
  await page.locator(".msg-assistant").nth(2).getByRole("button", { name: "Regenerate reply" }).click();
  await waitForReply(page, "Another take.");
  assert.equal(await page.locator(".msg-assistant").count(), 3);
  assert.deepEqual(await regenerateOffers(page), [2]);
  // Reloaded, the same.
  await page.reload();
  await page.locator(".msg-assistant", { hasText: "Another take." }).waitFor();
  assert.deepEqual(await regenerateOffers(page), [2]);
  assert.deepEqual(errors, []);
  await context.close();
});

test("editing an earlier message scrolls the view to the edited message and its reply", async () => {
  const token = await stack.token();
  const { page, context } = await stack.page({ token, viewport: { width: 1280, height: 640 } });
  await page.goto(`${stack.server.url}/`);
  const long = Array.from({ length: 6 }, (_, i) => `Line ${i + 1} of a reply long enough to need scrolling.`).join("\n\n");
  for (let i = 1; i <= 4; i += 1) {
    stack.upstream.reply(long);
    await sendMessage(page, `Question ${i}`);
    await page.locator(".msg-assistant[aria-busy=false]").nth(i - 1).waitFor();
  }
  const messages = page.locator("#messages");
  await messages.evaluate((box) => box.scrollTo(0, 0));
  // The last question: the edit replaces it and its reply (see
  // branches.test.js), and the three turns before it still scroll.
  const last = page.locator(".msg-user").nth(3);
  await last.hover();
  await last.getByRole("button", { name: "Edit and resend" }).click();
  await page.locator(".msg-edit-input").fill("Question 4, asked better");
  await page.locator(".msg-edit-input").press("Enter");
  await waitForReply(page, "You said: Question 4, asked better");

  const view = await messages.evaluate((box) => {
    const replies = box.querySelectorAll(".msg-assistant");
    const reply = replies[replies.length - 1].getBoundingClientRect();
    const frame = box.getBoundingClientRect();
    return {
      atEnd: box.scrollHeight - box.scrollTop - box.clientHeight < 4,
      replyShown: reply.top >= frame.top && reply.bottom <= frame.bottom + 1,
      scrolls: box.scrollHeight > box.clientHeight * 2,
    };
  });
  assert.deepEqual(view, { atEnd: true, replyShown: true, scrolls: true });
  assert.equal(await page.locator(".msg-user").last().textContent().then((t) => t?.includes("asked better")), true);
  await context.close();
});
