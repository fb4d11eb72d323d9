// @ts-check
/**
 * @file Two people on one browser: whatever the first one saw, typed or
 * queued must be gone when they sign out, before the next one signs in on
 * the same page (issue 13, problem 1).
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api } from "../lib/server.js";
import { conversationId, deferred, sendMessage, startStack, waitForReply, waitForReplyContaining } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

const PASSWORD = "correct horse battery";
let counter = 0;

/** Register an account over HTTP; returns its email and token. @param {string} name */
async function account(name) {
  counter += 1;
  const email = `${name}${Date.now()}${counter}@example.com`;
  const data = await api(stack.server.url, "POST", "/auth/register", { body: { email, password: PASSWORD } });
  return { email, token: /** @type {string} */ (data.access_token) };
}

/** Sign in through the form. @param {Page} page @param {string} email */
async function signIn(page, email) {
  await page.locator("#auth-view").waitFor();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.locator("#auth-submit").click();
  await page.locator("#account-name", { hasText: email }).waitFor();
}

test("after A signs out, B signing in on the same page sees nothing of A, and B's first message starts B's own conversation", async () => {
  const a = await account("alice");
  const b = await account("bob");
  const { page, context, errors } = await stack.page();
  /** @type {import("playwright-core").WebSocket[]} */
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws));
  await page.goto(`${stack.server.url}/`);

  await signIn(page, a.email);
  await sendMessage(page, "Alice's secret plan");
  await waitForReply(page, "You said: Alice's secret plan");
  const aliceConversation = await conversationId(page);
  await page.locator(".conv-link", { hasText: "Alice's secret plan" }).waitFor();
  // A's settings: a dark theme, and Enter adding lines instead of sending.
  await page.getByRole("button", { name: "Settings" }).click();
  await page.getByRole("radio", { name: "Dark" }).check();
  await page.getByRole("checkbox", { name: "Enter sends the message" }).uncheck();
  await page.getByRole("button", { name: "Done" }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");

  // A second reply is still streaming, and a draft sits in the box, when A leaves.
  const gate = deferred();
  stack.upstream.reply("Alice's streaming answer goes on and on after she has left.", {
    before: (index) => (index === 2 ? gate.promise : undefined),
  });
  try {
    await page.locator("#input").fill("Alice's second question");
    await page.locator("#input").press("Control+Enter");
    await waitForReplyContaining(page, "Alice's streaming");
    await page.locator("#input").fill("Alice's unsent draft");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#auth-view").waitFor();
    const aliceSockets = [...sockets];
    assert.ok(aliceSockets.length > 0);
    for (const ws of aliceSockets) {
      if (!ws.isClosed()) await ws.waitForEvent("close");
    }
    assert.equal(await page.getByLabel("Email").inputValue(), "", "A's email is not left in the form");
    const stored = await page.evaluate(() => ({ ...localStorage, ...sessionStorage }));
    assert.ok(!Object.values(stored).includes(a.token), `A's token is gone: ${JSON.stringify(Object.keys(stored))}`);
    assert.equal(stored["colloquy.anonymousToken"], undefined);
    assert.deepEqual(Object.keys(stored).filter((key) => key.startsWith("colloquy.")), [], "A's settings are gone too");
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme ?? null), null, "the sign-in screen is not in A's theme");
    assert.equal(await page.evaluate(() => location.hash), "", "the URL names no conversation");
    assert.equal(await page.title(), "Colloquy");

    await signIn(page, b.email);
    // A's reply carries on on the server; none of it may reach B's page.
    gate.resolve();
    await page.locator("#empty-state").waitFor();
    await page.locator(".conv-empty").waitFor();
    const seen = await page.evaluate(() => ({
      messages: document.querySelectorAll(".msg").length,
      conversations: document.querySelectorAll(".conv-link").length,
      title: document.getElementById("chat-title")?.textContent,
      hash: location.hash,
      draft: /** @type {HTMLTextAreaElement} */ (document.getElementById("input")).value,
      text: document.body.innerText,
    }));
    assert.deepEqual(
      { ...seen, text: /alice/i.test(seen.text) },
      { messages: 0, conversations: 0, title: "New chat", hash: "", draft: "", text: false },
    );
    // B starts from the default settings, not A's (sendMessage below presses Enter).
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme ?? null), null, "not A's theme");
    assert.equal(await page.locator("#composer-hint").textContent(), "Enter to send · Shift+Enter for a new line");

    await sendMessage(page, "Bob's first message");
    await waitForReply(page, "You said: Bob's first message");
    const bobConversation = await conversationId(page);
    assert.notEqual(bobConversation, aliceConversation);
    assert.deepEqual(
      await page.locator(".msg .msg-bubble").allTextContents(),
      ["Bob's first message", "You said: Bob's first message"],
      "B's message is drawn on its own, under nothing of A's",
    );
    await page.locator(".conv-link", { hasText: "Bob's first message" }).waitFor();
    assert.deepEqual(await page.locator(".conv-link").allTextContents(), ["Bob's first message"]);
    assert.doesNotMatch(await page.locator("body").innerText(), /alice/i);

    // On the server too, B's conversation holds only B's turn.
    const stored2 = await api(stack.server.url, "GET", `/api/conversations/${bobConversation}`, { token: b.token });
    assert.deepEqual(
      stored2.messages.map((/** @type {any} */ m) => m.content),
      ["Bob's first message", "You said: Bob's first message"],
    );
    const alice = await api(stack.server.url, "GET", "/api/conversations", { token: a.token });
    assert.equal(alice.conversations.length, 1, "nothing of B's went to A's account");
  } finally {
    gate.resolve();
  }
  assert.deepEqual(errors, []);
  await context.close();
});

/** Continue as a guest and have one exchange. @param {Page} page */
async function guestChats(page) {
  await page.goto(`${stack.server.url}/`);
  await page.getByRole("button", { name: "Continue without an account" }).click();
  await page.locator("#account-name", { hasText: "Guest session" }).waitFor();
  await sendMessage(page, "A guest's question");
  await waitForReply(page, "You said: A guest's question");
  await page.locator(".conv-link").waitFor();
}

const PHONE = { width: 390, height: 844 };

test("a guest signing out is offered an account first; Create account keeps the chats, says so as good news, and the drawer is closed", async () => {
  const { page, context, errors } = await stack.page({ viewport: PHONE });
  await guestChats(page);
  await page.getByRole("button", { name: "Show conversations" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
  const dialog = page.getByRole("dialog", { name: /guest/i });
  await dialog.waitFor();
  assert.match((await dialog.textContent()) ?? "", /Your conversation is kept only in this guest session/);
  assert.ok(await page.evaluate(() => localStorage.getItem("colloquy.token")), "still signed in while asked");

  await dialog.getByRole("button", { name: "Create account" }).click();
  await page.locator("#auth-view").waitFor();
  assert.equal(await page.getByRole("tab", { name: "Create account" }).getAttribute("aria-selected"), "true");
  await page.getByLabel("Email").fill(`kept${Date.now()}@example.com`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.locator("#auth-submit").click();
  const notice = page.locator("#notice", { hasText: "1 conversation moved to your account." });
  await notice.waitFor();
  const style = await page.evaluate(() => {
    const box = /** @type {HTMLElement} */ (document.getElementById("notice"));
    const probe = document.createElement("span");
    probe.style.color = "var(--danger)";
    document.body.append(probe);
    const danger = getComputedStyle(probe).color;
    probe.remove();
    return { kind: box.dataset.kind, role: box.getAttribute("role"), red: getComputedStyle(box).color === danger };
  });
  assert.deepEqual(style, { kind: "success", role: "status", red: false }, "good news is not shown as an error");
  await page.locator(".conv-link", { hasText: "A guest's question" }).waitFor();
  assert.equal(await page.locator("#chat-view").evaluate((el) => el.classList.contains("drawer-open")), false, "the drawer is closed");
  assert.equal(await page.locator("#scrim").isVisible(), false);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a guest who signs out anyway leaves nothing behind, and the drawer is closed for whoever comes next", async () => {
  const { page, context, errors } = await stack.page({ viewport: PHONE });
  await guestChats(page);
  await page.getByRole("button", { name: "Show conversations" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("dialog", { name: /guest/i }).getByRole("button", { name: "Sign out anyway" }).click();
  await page.locator("#auth-view").waitFor();
  const stored = await page.evaluate(() => Object.keys(localStorage).filter((key) => /token/i.test(key)));
  assert.deepEqual(stored, [], "no token, and no guest session left to be claimed by the next account");

  await page.getByRole("button", { name: "Continue without an account" }).click();
  await page.locator("#account-name", { hasText: "Guest session" }).waitFor();
  await page.locator(".conv-empty").waitFor();
  assert.equal(await page.locator(".msg").count(), 0);
  assert.equal(await page.locator("#chat-view").evaluate((el) => el.classList.contains("drawer-open")), false);
  assert.equal(await page.locator("#scrim").isVisible(), false);
  assert.deepEqual(errors, []);
  await context.close();
});

test("a session the server no longer knows, found at load, is signed out: no token kept, no conversation in the URL", async () => {
  const { page, context, errors } = await stack.page();
  await page.addInitScript(() => {
    if (!sessionStorage.getItem("seeded")) {
      sessionStorage.setItem("seeded", "1");
      localStorage.setItem("colloquy.token", "expired-or-revoked");
    }
  });
  await page.goto(`${stack.server.url}/#/c/01234567-89ab-7def-8123-456789abcdef`);
  await page.locator("#auth-view").waitFor();
  assert.equal(await page.evaluate(() => location.hash), "");
  assert.equal(await page.evaluate(() => localStorage.getItem("colloquy.token")), null);
  assert.equal(await page.locator("#auth-error").isVisible(), false, "nothing to apologize for");
  assert.deepEqual(errors.filter((error) => !/status of 401/.test(error)), []);
  await context.close();
});
