// @ts-check
/**
 * @file Losing the connection mid-reply, in a real browser: the socket is
 * cut from the test (Playwright proxies it), or the server process is
 * restarted on the same port and data dir. Either way the reply must end
 * up complete on the page, exactly once.
 *
 * These rely on the server's resume support (`?last_seq=`: replay every
 * event after it).
 *
 * The server's own trouble (its storage failing: HTTP 503, socket close
 * 1011) must never sign the user out: the page keeps the token and retries.
 *
 * A network that goes away without closing anything (`setOffline`) must be
 * noticed within seconds, by the client's heartbeat deadline.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { once } from "node:events";
import { api } from "../lib/server.js";
import { tokenize } from "../lib/fake-openai.js";
import { conversationId, deferred, sendMessage, startStack, waitForReply, waitForReplyContaining } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

const STORY = "Once upon a time a socket dropped, and yet every single word of this story still arrived exactly once.";

/** `last_seq` of a socket URL, or null. @param {string} url */
const lastSeqOf = (url) => {
  const value = new URL(url).searchParams.get("last_seq");
  return value === null ? null : Number(value);
};

/** Resolves once the fake upstream has sent token `index`. @param {number} index */
function tokenSent(index) {
  return new Promise((resolve) => {
    /** @param {number} sent */
    const listener = (sent) => {
      if (sent < index) return;
      stack.upstream.events.off("token", listener);
      resolve(undefined);
    };
    stack.upstream.events.on("token", listener);
  });
}

/**
 * A page whose chat sockets go through the test: the first one can be cut,
 * later ones wait for `allowReconnect` before reaching the server.
 * @param {string} token
 */
async function pageWithCuttableSocket(token) {
  const session = await stack.page({ token });
  /** @type {string[]} */
  const urls = [];
  /** @type {(() => void) | null} */
  let cut = null;
  const allowReconnect = deferred();
  await session.page.routeWebSocket(/\/api\/v1\/chat\/ws/, async (ws) => {
    urls.push(ws.url());
    const number = urls.length;
    if (number > 1) await allowReconnect.promise;
    const server = ws.connectToServer();
    if (number === 1) {
      cut = () => {
        ws.close({ code: 4001, reason: "network lost (test)" });
        server.close();
      };
    }
  });
  return { ...session, urls, cut: () => cut?.(), allowReconnect };
}

test("a socket cut mid-reply resumes from the in-flight log: the reply completes, nothing doubled", async () => {
  const token = await stack.token();
  const { page, urls, cut, allowReconnect, context, errors } = await pageWithCuttableSocket(token);
  await page.goto(`${stack.server.url}/`);

  // Pause after 3 tokens (cut there), then after 7 (reconnect there).
  const first = deferred();
  const second = deferred();
  stack.upstream.reply(STORY, {
    before: (index) => (index === 3 ? first.promise : index === 7 ? second.promise : undefined),
  });
  const tokens = tokenize(STORY);
  try {
    await sendMessage(page, "Tell me a story");
    await waitForReplyContaining(page, tokens.slice(0, 3).join(""));
    cut();
    await page.locator("#conn-badge[data-state=reconnecting]").waitFor();
    // While the page is offline the reply goes on: tokens 3..6 are missed.
    const sixth = tokenSent(6);
    first.resolve();
    await sixth;
    allowReconnect.resolve();
    await page.locator("#conn-badge[data-state=open]").waitFor();
    await waitForReplyContaining(page, tokens.slice(0, 7).join(""));
    second.resolve();
    await waitForReply(page, STORY);
  } finally {
    first.resolve();
    second.resolve();
  }
  assert.equal(urls.length, 2, "one reconnect");
  assert.equal(lastSeqOf(urls[0]), null, "a new chat starts without last_seq");
  assert.ok((lastSeqOf(urls[1]) ?? 0) >= 4, `resumed after the deltas seen: ${urls[1]}`);
  assert.equal(await page.locator(".msg-assistant").count(), 1);
  assert.equal(await page.locator(".msg-user").count(), 1, "the user message was not sent twice");
  assert.deepEqual(errors, []);
  await context.close();
});

test("a socket cut mid-reply that reconnects after the reply ended gets the stored reply, once", async () => {
  const token = await stack.token();
  const { page, cut, allowReconnect, context } = await pageWithCuttableSocket(token);
  await page.goto(`${stack.server.url}/`);
  const gate = deferred();
  stack.upstream.reply(STORY, { before: (index) => (index === 3 ? gate.promise : undefined) });
  try {
    await sendMessage(page, "Tell me the story again");
    const id = await conversationId(page);
    await waitForReplyContaining(page, "Once upon a");
    cut();
    const done = once(stack.upstream.events, "done");
    gate.resolve();
    await done;
    // Wait until the server has stored the reply, then let the page back in.
    for (let i = 0; i < 100; i += 1) {
      const conversation = await api(stack.server.url, "GET", `/api/conversations/${id}`, { token });
      if (conversation.messages.some((/** @type {any} */ m) => m.sender === "assistant")) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    allowReconnect.resolve();
    await waitForReply(page, STORY);
  } finally {
    gate.resolve();
  }
  assert.equal(await page.locator(".msg-assistant").count(), 1);
  await context.close();
});

test("the server restarting mid-reply: the page reconnects on its own, the reply is whole and chat goes on", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const gate = deferred();
  stack.upstream.reply(STORY, { before: (index) => (index === 4 ? gate.promise : undefined) });
  try {
    await sendMessage(page, "One more story, please");
    await waitForReplyContaining(page, "Once upon a time");
    // Graceful shutdown lets the reply finish, then closes sockets with 1012.
    const stopping = stack.server.stop();
    gate.resolve();
    await stopping;
    await page.locator("#conn-badge[data-state=reconnecting]").waitFor();
    stack.server = await stack.server.restart();
    await page.locator("#conn-badge[data-state=open]").waitFor({ timeout: 30_000 });
    await waitForReply(page, STORY);
  } finally {
    gate.resolve();
  }
  await sendMessage(page, "Are you still there?");
  await waitForReply(page, "You said: Are you still there?");
  assert.equal(await page.locator(".msg-assistant").count(), 2);
  assert.deepEqual(errors, []);
  await context.close();
});

test("the server's storage failing (503, then close 1011) keeps the session: the page retries on its own", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  let refusedMe = 0;
  await page.route("**/api/auth/me", async (route) => {
    if (refusedMe >= 2) return route.continue();
    refusedMe += 1;
    await route.fulfill({
      status: 503,
      headers: { "retry-after": "1" },
      contentType: "application/json",
      body: JSON.stringify({ error: { code: "unavailable", message: "the service is temporarily unavailable; try again shortly" } }),
    });
  });
  /** @type {string[]} */
  const sockets = [];
  await page.routeWebSocket(/\/api\/v1\/chat\/ws/, (ws) => {
    sockets.push(ws.url());
    // The first socket meets a server whose database failed; later ones reach it.
    if (sockets.length === 1) ws.close({ code: 1011, reason: "Service unavailable" });
    else ws.connectToServer();
  });
  await page.goto(`${stack.server.url}/`);
  // The chat opens once /api/auth/me answers; the socket opens with the first message.
  await page.locator("#account-name", { hasText: "@" }).waitFor({ timeout: 30_000 });
  assert.equal(refusedMe, 2, "/api/auth/me was retried after two 503s");
  await sendMessage(page, "Are you back?");
  await waitForReply(page, "You said: Are you back?");
  assert.ok(sockets.length >= 2, "the socket closed with 1011 was reopened");
  assert.equal(await page.locator("#conn-badge").getAttribute("data-state"), "open");
  assert.equal(await page.evaluate(() => localStorage.getItem("colloquy.token")), token, "the token was kept");
  assert.equal(await page.locator("#auth-view").isHidden(), true, "never sent to the sign-in screen");
  // Chromium logs the refused requests themselves; those are the network, not the page.
  assert.deepEqual(
    errors.filter((error) => !/status of 503/.test(error)),
    [],
  );
  await context.close();
});

/**
 * How soon a silent drop mid-reply must show: the client pings after 2 s
 * of silence while a reply is being written and gives up 4 s after that
 * (colloquy-client.js defaults), plus room for a slow machine.
 */
const SILENT_DROP_WINDOW_MS = 9_000;

test("a silent network drop mid-reply shows within seconds; back online the reply completes and the offline banner clears", async () => {
  const token = await stack.token();
  const { page, context, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const gate = deferred();
  stack.upstream.reply(STORY, { before: (index) => (index === 3 ? gate.promise : undefined) });
  const tokens = tokenize(STORY);
  try {
    await sendMessage(page, "Tell me a story while the network goes");
    await waitForReplyContaining(page, tokens.slice(0, 3).join(""));
    await page.locator(".conv-link").waitFor();
    await page.locator("#conn-badge[data-state=open]").waitFor();

    await context.setOffline(true);
    await page.locator("#conn-badge:not([data-state=open])").waitFor({ timeout: SILENT_DROP_WINDOW_MS });
    // The reply goes on on the server meanwhile.
    const done = once(stack.upstream.events, "done");
    gate.resolve();
    await done;
    // Something that needs the network while it is gone: the banner says so.
    const item = page.locator(".conv-item").first();
    await item.hover();
    await item.getByRole("button", { name: /^Rename/ }).click();
    await page.getByLabel("New title").fill("Renamed offline");
    await page.getByLabel("New title").press("Enter");
    await page.locator("#notice", { hasText: "Cannot reach the server" }).waitFor();

    await context.setOffline(false);
    await page.locator("#conn-badge[data-state=open]").waitFor({ timeout: 15_000 });
    await page.locator("#notice").waitFor({ state: "hidden" });
    await waitForReply(page, STORY);
  } finally {
    gate.resolve();
  }
  assert.equal(await page.locator(".msg-assistant").count(), 1, "the reply once");
  assert.deepEqual(
    errors.filter((error) => !/ERR_INTERNET_DISCONNECTED/.test(error)),
    [],
  );
  await context.close();
});
