// @ts-check
/**
 * @file Texts over the server's `max_message_chars` (16,000 by default, as
 * `/api/config` says): the box counts as the limit nears, keeps a text it
 * cannot send, says why once, and never resends a refused text; and no
 * empty conversation is left behind by a text that was never accepted
 * (issue 13, problems 4 and 5).
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchBrowser } from "../lib/browser.js";
import { api } from "../lib/server.js";
import { conversationId, deferred, sendMessage, startStack, waitForReply } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

/** The user's conversations, as the server lists them. @param {string} token */
async function listed(token) {
  const { conversations } = await api(stack.server.url, "GET", "/api/conversations", { token });
  return /** @type {{ id: string, title: string, last_seq: number }[]} */ (conversations);
}

/**
 * Serve the page a config without the text limit (an older server's), so
 * the server is the judge of length; `voice` also says voice is offered.
 * @param {Page} page @param {{ voice?: boolean }} [options]
 */
async function withoutTextLimit(page, { voice = false } = {}) {
  await page.route("**/api/config", async (route) => {
    const response = await route.fetch();
    const config = await response.json();
    delete config.limits;
    if (voice) config.voice = { ...config.voice, available: true, tts_default: false };
    await route.fulfill({ response, json: config });
  });
}

/** `text` frames the page wrote on its chat sockets. @param {Page} page */
function textFramesOf(page) {
  /** @type {string[]} */
  const texts = [];
  page.on("websocket", (ws) =>
    ws.on("framesent", ({ payload }) => {
      const event = typeof payload === "string" ? JSON.parse(payload) : null;
      if (event?.type === "text") texts.push(event.content);
    }),
  );
  return texts;
}

test("the box counts characters near the limit; an over-long text stays in it with one clear message and is never sent", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  const texts = textFramesOf(page);
  await page.goto(`${stack.server.url}/`);
  const input = page.locator("#input");
  const counter = page.locator("#char-count");

  await input.fill("A short question");
  assert.equal(await counter.isVisible(), false, "no counter far from the limit");
  await input.fill("x".repeat(15_000));
  await counter.waitFor();
  assert.equal(await counter.textContent(), "15,000 / 16,000");

  await input.fill("y".repeat(20_000));
  assert.match((await counter.textContent()) ?? "", /^20,000 \/ 16,000/);
  assert.equal(await input.getAttribute("aria-invalid"), "true");
  await input.press("Enter");
  const error = page.locator("#composer-error");
  await error.waitFor();
  assert.equal(
    await error.textContent(),
    "This message is 20,000 characters long; the limit is 16,000. Shorten it by 4,000 characters to send it.",
  );
  assert.equal((await input.inputValue()).length, 20_000, "the text is kept");
  assert.equal(await page.locator("#notice").isVisible(), false, "said once, not also in the banner");
  assert.equal(await page.locator(".msg").count(), 0, "nothing was drawn as sent");
  assert.deepEqual(texts, [], "nothing was sent");

  // Within the limit it goes; the message about the limit goes with it.
  const fits = "z".repeat(16_000);
  await input.fill(fits);
  assert.equal(await error.isVisible(), false);
  await input.press("Enter");
  await waitForReply(page, `You said: ${fits}`);
  assert.equal(await input.inputValue(), "");
  assert.equal(texts.length, 1);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a text the server refuses goes back into the box, is explained once, and is never resent", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  // A page that does not know the limit (an older config): the server is the judge.
  await withoutTextLimit(page);
  const texts = textFramesOf(page);
  await page.goto(`${stack.server.url}/`);
  const long = "w".repeat(20_000);
  await sendMessage(page, long);
  const error = page.locator("#composer-error");
  await error.waitFor();
  assert.equal(await error.textContent(), "This message is 20,000 characters long; the limit is 16,000. Shorten it by 4,000 characters to send it.");
  assert.equal(await page.locator("#input").inputValue(), long, "the refused text is back in the box");
  assert.equal(await page.locator("#notice").isVisible(), false, "not shown a second time in the banner");
  assert.equal(await page.locator(".msg").count(), 0, "no bubble for a text that was not accepted");
  assert.equal(await page.getByRole("button", { name: "Retry sending" }).count(), 0, "nothing to retry");

  await sendMessage(page, "Something shorter");
  await waitForReply(page, "You said: Something shorter");
  assert.equal(await error.isVisible(), false);
  assert.deepEqual(
    texts.map((text) => text.length),
    [20_000, "Something shorter".length],
    "the refused text was sent once, never again",
  );
  assert.equal((await listed(token)).length, 1);
  assert.deepEqual(errors, []);
  await context.close();
});

test("the mic and a refused text store no conversation, so no empty New chat shows even after a reload", async () => {
  const token = await stack.token();
  // A microphone for the mic button; the server has no voice (its audio is refused).
  const browser = await launchBrowser({ args: ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // Spoken replies off, in this user's settings.
    const me = await api(stack.server.url, "GET", "/api/auth/me", { token });
    await context.addInitScript(
      ({ t, user }) => {
        if (!localStorage.getItem("colloquy.token")) localStorage.setItem("colloquy.token", t);
        localStorage.setItem("colloquy.settings", JSON.stringify({ user, speakReplies: false }));
      },
      { t: token, user: me.id },
    );
    const page = await context.newPage();
    // The page believes voice is offered and does not know the text limit.
    await withoutTextLimit(page, { voice: true });
    /** Reload and wait for the list: nothing may be listed or complained about. */
    const reloadShowsNothing = async () => {
      const list = page.waitForResponse((r) => r.url().includes("/api/conversations?"));
      await page.reload();
      await list;
      await page.locator(".conv-empty").waitFor();
      assert.equal(await page.locator(".conv-link").count(), 0, "no empty New chat entries");
      assert.equal(await page.locator("#notice").isVisible(), false, "no notice about a missing conversation");
    };
    await page.goto(`${stack.server.url}/`);
    // The mic opens a socket (a new chat's id), then stops on the server's refusal.
    await page.locator("#mic-button:not([disabled])").click();
    await page.locator("#voice-error", { hasText: "Voice is not available" }).waitFor();
    assert.deepEqual(await listed(token), [], "pressing the mic stores no conversation");
    await reloadShowsNothing();

    await sendMessage(page, "v".repeat(20_000));
    await page.locator("#composer-error").waitFor();
    assert.deepEqual(await listed(token), [], "a refused text stores no conversation");
    await reloadShowsNothing();

    await sendMessage(page, "A real question");
    await waitForReply(page, "You said: A real question");
    await page.locator(".conv-link", { hasText: "A real question" }).waitFor();
    assert.deepEqual(await page.locator(".conv-link").allTextContents(), ["A real question"]);
    assert.equal((await listed(token)).length, 1);
    await context.close();
  } finally {
    await browser.close();
  }
});

test("a new chat not stored yet stays the open chat while the list loads, so its first accepted message lands in it", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  // The page does not know the text limit, and its first list is slow.
  await withoutTextLimit(page);
  const listHeld = deferred();
  await page.route("**/api/conversations?*", async (route) => {
    await listHeld.promise;
    await route.continue();
  });
  /** @type {string[]} */
  const readyIds = [];
  page.on("websocket", (ws) =>
    ws.on("framereceived", ({ payload }) => {
      const event = typeof payload === "string" ? JSON.parse(payload) : null;
      if (event?.type === "ready") readyIds.push(event.conversation_id);
    }),
  );
  await page.goto(`${stack.server.url}/`);
  // Refused by the server: the socket has its new chat's id, nothing is stored.
  await sendMessage(page, "v".repeat(20_000));
  await page.locator("#composer-error").waitFor();
  assert.equal(new URL(page.url()).hash, "", "nothing to name in the URL yet");
  listHeld.resolve();
  await page.locator(".conv-empty").waitFor();

  await sendMessage(page, "Sent while the list loaded");
  await waitForReply(page, "You said: Sent while the list loaded");
  assert.equal(readyIds.length, 1, "one socket, kept open");
  assert.equal(await conversationId(page), readyIds[0], "the URL names the chat once stored");
  assert.deepEqual(
    (await listed(token)).map((c) => c.id),
    [readyIds[0]],
  );
  assert.deepEqual(errors, []);
  await context.close();
});
