// @ts-check
/**
 * @file Tool calls in the chat UI (issue 15): the model (the fake upstream)
 * calls the server's `calculate` tool for "what is 6 times 7?"; the reply
 * shows the call running, then a collapsible view of its arguments and
 * result above the answer, each step read out politely; a failed call is
 * marked; and the calls come back after a reload, from the socket's replay
 * of a reply in progress and from `GET /api/conversations/{id}` once stored.
 */

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { violations } from "../lib/axe.js";
import { artifactsDir } from "../lib/browser.js";
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

const SIX_TIMES_SEVEN = { id: "call_6x7", name: "calculate", arguments: JSON.stringify({ expression: "6 * 7" }) };
/** The model's answer, from the result the server sent back to it. @param {{ content: string }[]} results */
const answer = (results) => (results.some((r) => r.content.includes("42")) ? "6 times 7 is 42." : "The tool gave no answer.");

/**
 * Collect everything the polite announcer says, in order, on every page
 * (and reload) of `context` from now on.
 * @param {import("playwright-core").BrowserContext} context
 */
async function recordAnnouncements(context) {
  await context.addInitScript(() => {
    const said = /** @type {string[]} */ (/** @type {any} */ (window).announced = []);
    document.addEventListener("DOMContentLoaded", () => {
      const announcer = /** @type {HTMLElement} */ (document.getElementById("announcer"));
      const observer = new MutationObserver(() => {
        if (announcer.textContent) said.push(announcer.textContent);
      });
      observer.observe(announcer, { childList: true, characterData: true, subtree: true });
    });
  });
}

/** @param {Page} page @returns {Promise<string[]>} */
const announcements = (page) => page.evaluate(() => /** @type {any} */ (window).announced);

test("a tool call shows running, then its arguments and result in a collapsible view, read out politely", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  // Hold the server's frames from the call's end on (pongs pass, so the
  // socket stays alive), to look at the running state for as long as needed.
  let holding = false;
  let released = false;
  /** @type {(() => void)[]} */
  const held = [];
  const release = () => {
    released = true;
    holding = false;
    for (const send of held.splice(0)) send();
  };
  await page.routeWebSocket(/\/api\/v1\/chat\/ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => server.send(message));
    server.onMessage((message) => {
      const event = typeof message === "string" ? JSON.parse(message) : {};
      if (!released && event.type === "tool" && event.status === "end") holding = true;
      if (holding && event.type !== "pong") held.push(() => ws.send(message));
      else ws.send(message);
    });
  });
  await recordAnnouncements(context);
  await page.goto(`${stack.server.url}/`);
  stack.upstream.toolTurn([SIX_TIMES_SEVEN], answer);
  try {
    await sendMessage(page, "what is 6 times 7?");
    const running = page.locator(".msg-assistant .tool-call.running");
    await running.waitFor();
    assert.equal((await running.textContent())?.trim(), "Running calculate…");
    await page.waitForFunction(() => /** @type {any} */ (window).announced.includes("Running tool calculate."));
    await page.screenshot({ path: path.join(artifactsDir, "tool-running.png") });
  } finally {
    release();
  }
  await waitForReply(page, "6 times 7 is 42.");
  const summary = page.locator(".msg-assistant .tool-call.done .tool-summary");
  assert.match((await summary.textContent()) ?? "", /^Used calculate in \d+ ms$/);
  const details = page.locator(".msg-assistant .tool-details");
  assert.equal(await details.evaluate((node) => /** @type {HTMLDetailsElement} */ (node).open), false, "collapsed at first");
  // Keyboard: the summary takes focus and Enter expands it.
  await summary.focus();
  await page.keyboard.press("Enter");
  const values = details.locator(".tool-value");
  await values.first().waitFor();
  assert.deepEqual(JSON.parse((await values.nth(0).textContent()) ?? ""), { expression: "6 * 7" });
  assert.equal(JSON.parse((await values.nth(1).textContent()) ?? "").result, 42);
  assert.deepEqual(await details.locator(".tool-label").allTextContents(), ["Arguments", "Result"]);
  // The answer follows the call, in the same reply.
  const order = await page.locator(".msg-assistant").last().evaluate((node) => {
    const tools = /** @type {Element} */ (node.querySelector(".msg-tools"));
    const bubble = /** @type {Element} */ (node.querySelector(".msg-bubble"));
    return tools.compareDocumentPosition(bubble) & Node.DOCUMENT_POSITION_FOLLOWING;
  });
  assert.ok(order, "the tool call comes before the answer");
  const said = await announcements(page);
  assert.ok(said.some((words) => words.includes("Tool calculate finished.")), said.join(" | "));
  assert.ok(said.some((words) => words.includes("Reply: 6 times 7 is 42.")), said.join(" | "));
  assert.deepEqual(await violations(page), []);
  await page.screenshot({ path: path.join(artifactsDir, "tool-done.png") });
  assert.deepEqual(errors, []);
  await context.close();
});

test("a failed tool call is marked as failed, with the error in its view", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await recordAnnouncements(context);
  await page.goto(`${stack.server.url}/`);
  stack.upstream.toolTurn([{ id: "call_nope", name: "no_such_tool", arguments: "{}" }], () => "I have no such tool.");
  await sendMessage(page, "Use a tool you do not have");
  await waitForReply(page, "I have no such tool.");
  const failed = page.locator(".msg-assistant .tool-call.failed");
  assert.match((await failed.locator(".tool-summary").textContent()) ?? "", /^no_such_tool failed/);
  await failed.locator(".tool-summary").click();
  const error = failed.locator(".tool-error");
  await error.waitFor();
  assert.equal(await error.locator(".tool-label").textContent(), "Error");
  assert.match((await error.locator(".tool-value").textContent()) ?? "", /\(unknown_tool\)$/);
  const said = await announcements(page);
  assert.ok(said.some((words) => words.startsWith("Tool no_such_tool failed: ")), said.join(" | "));
  assert.deepEqual(await violations(page), []);
  assert.deepEqual(errors, []);
  await context.close();
});

test("tool calls come back after a reload: replayed mid-reply, then loaded with the stored reply", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await recordAnnouncements(context);
  await page.goto(`${stack.server.url}/`);
  // The answer waits after the tool ran: the reply is still in progress.
  const gate = deferred();
  stack.upstream.toolTurn([SIX_TIMES_SEVEN], answer, { before: (index) => (index === 0 ? gate.promise : undefined) });
  try {
    await sendMessage(page, "what is 6 times 7?");
    await page.locator(".msg-assistant .tool-call.done").waitFor();
    await page.waitForFunction(() => /^#\/c\//.test(location.hash));
    // Reload: the stored question comes over HTTP, the reply's events from the socket's replay.
    await page.reload();
    await page.locator(".msg-assistant .tool-call.done", { hasText: "Used calculate" }).waitFor();
    await page.waitForFunction(() => /** @type {any} */ (window).announced.some((/** @type {string} */ w) => w.includes("Tool calculate finished.")));
  } finally {
    gate.resolve();
  }
  await waitForReply(page, "6 times 7 is 42.");
  assert.equal(await page.locator(".msg-assistant .tool-call").count(), 1, "the replayed call is shown once");

  // Reload again: now the stored reply brings its call over HTTP, and
  // history is not read out.
  await page.reload();
  await waitForReply(page, "6 times 7 is 42.");
  const summary = page.locator(".msg-assistant .tool-summary");
  await summary.click();
  const values = page.locator(".msg-assistant .tool-details[open] .tool-value");
  await values.first().waitFor();
  assert.deepEqual(JSON.parse((await values.nth(0).textContent()) ?? ""), { expression: "6 * 7" });
  assert.equal(JSON.parse((await values.nth(1).textContent()) ?? "").result, 42);
  assert.deepEqual(await announcements(page), []);
  assert.deepEqual(errors, []);
  await context.close();
});
