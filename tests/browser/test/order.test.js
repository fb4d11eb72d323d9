// @ts-check
/**
 * @file Issue 13, problem 2: a question sent while a reply streams. The
 * live view shows each reply under its own question, and after a reload
 * the stored conversation reads the same way.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { deferred, sendMessage, startStack } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** The conversation's bubbles, top to bottom. @param {import("playwright-core").Page} page */
function bubbles(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll(".msg-user .msg-bubble, .msg-assistant .msg-bubble")].map((node) =>
      (node.textContent ?? "").trim(),
    ),
  );
}

test("a reply stays under its own question, live and after a reload", async () => {
  const token = await stack.token();
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const gate = deferred();
  stack.upstream.reply("First answer, slowly.", { before: (index) => (index === 2 ? gate.promise : undefined) });
  stack.upstream.reply("Second answer.");
  await sendMessage(page, "First question");
  await page.locator(".msg-assistant[aria-busy=true]").waitFor();
  await sendMessage(page, "Second question");
  await page.locator(".msg-user", { hasText: "Second question" }).waitFor();
  gate.resolve(undefined);
  await page.waitForFunction(
    () => [...document.querySelectorAll(".msg-assistant")].filter((node) => node.getAttribute("aria-busy") === "false").length === 2,
  );
  const expected = ["First question", "First answer, slowly.", "Second question", "Second answer."];
  assert.deepEqual(await bubbles(page), expected, "live");
  await page.reload();
  await page.locator(".msg-assistant", { hasText: "Second answer." }).waitFor();
  assert.deepEqual(await bubbles(page), expected, "after a reload");
  assert.deepEqual(errors, []);
});
