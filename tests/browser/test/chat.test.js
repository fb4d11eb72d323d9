// @ts-check
/**
 * @file The chat UI end to end in headless Chromium against the real
 * server: sign-up, streaming, reload, the conversation list, stop, errors
 * in place, and the seed 001 socket test page.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, registerUser, startServer } from "../lib/server.js";
import { conversationId, deferred, sendMessage, startStack, waitForReply, waitForReplyContaining } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {Awaited<ReturnType<typeof stack.page>>} */
let session;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await session?.context.close();
  await stack?.stop();
});

const REPLY = "Streaming works, one token at a time, straight from the model.";

test("a new user signs up, sends a message and watches the reply stream in", async () => {
  session = await stack.page();
  const { page } = session;
  await page.goto(`${stack.server.url}/`);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Email").fill(`ada${Date.now()}@example.com`);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#chat-view").waitFor();

  // Hold the reply after four tokens, so the test sees it mid-stream.
  const gate = deferred();
  stack.upstream.reply(REPLY, { before: (index) => (index === 4 ? gate.promise : undefined) });
  await sendMessage(page, "Hello there");
  await page.locator(".msg-user", { hasText: "Hello there" }).waitFor();
  await page.waitForFunction(() => {
    const reply = document.querySelector(".msg-assistant");
    return reply?.getAttribute("aria-busy") === "true" && reply.textContent?.includes("Streaming works, one");
  });
  assert.equal(await page.locator("#stop-button").isVisible(), true, "Stop is offered while streaming");
  gate.resolve();
  await waitForReply(page, REPLY);
  assert.equal(await page.locator("#stop-button").isVisible(), false);
  assert.equal(await page.locator("#conn-badge").textContent(), "Connected");
  // The server named the conversation after the first message.
  await page.locator(".conv-link", { hasText: "Hello there" }).waitFor();
  assert.equal(await page.locator("#chat-title").textContent(), "Hello there");
  assert.deepEqual(session.errors, []);
});

test("reloading the page shows the conversation again", async () => {
  const { page } = session;
  const id = await conversationId(page);
  await page.reload();
  await page.locator(".msg-user", { hasText: "Hello there" }).waitFor();
  await waitForReply(page, REPLY);
  assert.equal(await conversationId(page), id);
  assert.equal(await page.locator("#chat-title").textContent(), "Hello there");
  await page.locator("#conn-badge[data-state=open]").waitFor();
  assert.deepEqual(session.errors, []);
});

test("conversations can be created, are listed newest first, renamed and deleted", async () => {
  const { page } = session;
  await page.getByRole("button", { name: "New chat" }).click();
  assert.equal(await page.locator("#chat-title").textContent(), "New chat");
  await sendMessage(page, "Second topic");
  await waitForReply(page, "You said: Second topic");
  await page.waitForFunction(() => document.querySelector(".conv-link")?.textContent === "Second topic");
  const titles = await page.locator(".conv-link").allTextContents();
  assert.deepEqual(titles, ["Second topic", "Hello there"], "newest first");

  // Rename the older one inline.
  const older = page.locator(".conv-item", { hasText: "Hello there" });
  await older.hover();
  await older.getByRole("button", { name: /^Rename/ }).click();
  const input = page.getByLabel("New title");
  await input.fill("Greetings");
  await input.press("Enter");
  await page.locator(".conv-link", { hasText: "Greetings" }).waitFor();

  // Delete it, confirming in the dialog.
  const renamed = page.locator(".conv-item", { hasText: "Greetings" });
  await renamed.hover();
  await renamed.getByRole("button", { name: /^Delete/ }).click();
  await page.locator("#confirm-dialog[open]").waitFor();
  await page.locator("#confirm-ok").click();
  await page.waitForFunction(() => ![...document.querySelectorAll(".conv-link")].some((a) => a.textContent === "Greetings"));
  assert.deepEqual(await page.locator(".conv-link").allTextContents(), ["Second topic"]);
  assert.deepEqual(session.dialogs, [], "no native dialogs");
});

test("stop interrupts the reply in progress", async () => {
  const { page } = session;
  const gate = deferred();
  stack.upstream.reply("This reply will be cut short before it can finish.", {
    before: (index) => (index === 3 ? gate.promise : undefined),
  });
  try {
    await sendMessage(page, "Talk for a long time");
    await waitForReplyContaining(page, "This reply will");
    await page.locator("#stop-button").click();
    await page.locator(".msg-assistant.status-interrupted", { hasText: "Stopped" }).waitFor();
    assert.equal(await page.locator("#stop-button").isVisible(), false);
  } finally {
    gate.resolve();
  }
});

test("a failed reply shows its error in place", async () => {
  const { page } = session;
  stack.upstream.script({ status: 500 });
  await sendMessage(page, "This one will fail");
  const error = page.locator(".msg-assistant .msg-error").last();
  await error.waitFor();
  assert.match((await error.textContent()) ?? "", /^Error\. The AI provider/);
  // Regenerate resends the question; this time it works.
  await page.locator(".msg-assistant").last().getByRole("button", { name: "Regenerate reply" }).click();
  await waitForReply(page, "You said: This one will fail");
});

test("edit-and-resend sends the edited text as a new message", async () => {
  const { page } = session;
  const user = page.locator(".msg-user").last();
  await user.hover();
  await user.getByRole("button", { name: "Edit and resend" }).click();
  const editor = page.getByLabel("Edit message");
  await editor.fill("This one was edited");
  await editor.press("Enter");
  await waitForReply(page, "You said: This one was edited");
});

test("the seed 001 test page exchanges raw JSON events on /v2/chat/{session_id}", async () => {
  const { page } = session;
  const token = await page.evaluate(() => localStorage.getItem("colloquy.token"));
  await page.goto(`${stack.server.url}/v2/chat/test`);
  assert.equal(await page.locator("#token").inputValue(), token);
  const sessionId = await page.locator("#session").inputValue();
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.locator("#log li", { hasText: '"type":"ready"' }).waitFor();
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await page.locator("#log li", { hasText: '"type":"ack"' }).waitFor();
  await page.locator("#log li", { hasText: '"is_final":true' }).waitFor();
  const conversation = await api(stack.server.url, "GET", `/api/conversations/${sessionId}`, { token: token ?? "" });
  assert.deepEqual(
    conversation.messages.map((/** @type {any} */ m) => [m.sender, m.content]),
    [
      ["user", "Hello!"],
      ["assistant", "You said: Hello!"],
    ],
  );
});

test("a guest chats, then creates an account and keeps the conversation (claim)", async () => {
  const { page, context, errors } = await stack.page();
  await page.goto(`${stack.server.url}/`);
  await page.getByRole("button", { name: "Continue without an account" }).click();
  await page.locator("#account-name", { hasText: "Guest session" }).waitFor();
  await sendMessage(page, "Remember me");
  await waitForReply(page, "You said: Remember me");
  await page.getByRole("button", { name: "Create an account to keep these chats" }).click();
  await page.getByLabel("Email").fill(`guest${Date.now()}@example.com`);
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#notice", { hasText: "1 conversation moved to your account." }).waitFor();
  await page.locator(".conv-link", { hasText: "Remember me" }).waitFor();
  assert.match((await page.locator("#account-name").textContent()) ?? "", /^guest\d+@example\.com$/);
  assert.equal(await page.locator("#claim-button").isVisible(), false);
  await page.locator(".conv-link", { hasText: "Remember me" }).click();
  await waitForReply(page, "You said: Remember me");
  assert.deepEqual(errors, []);
  await context.close();
});

test("a server without a model answers with no_model, shown in place", async () => {
  const bare = await startServer({ upstreamUrl: stack.upstream.url, env: { COLLOQUY_MODEL: "none" } });
  try {
    const token = await registerUser(bare.url);
    const { page, context } = await stack.page({ token });
    await page.goto(`${bare.url}/`);
    await sendMessage(page, "Anyone there?");
    const error = page.locator(".msg-assistant .msg-error");
    await error.waitFor();
    assert.equal(await error.textContent(), "Error. No AI model is configured on this server.");
    // Stored with the reply: a reload shows it again.
    await page.reload();
    await error.waitFor();
    await context.close();
  } finally {
    await bare.destroy();
  }
});

test("with one model on the server there is no model picker, and messages name no model", async () => {
  const token = await stack.token();
  const { page, context } = await stack.page({ token });
  /** @type {any[]} */
  const texts = [];
  page.on("websocket", (ws) =>
    ws.on("framesent", ({ payload }) => {
      const event = typeof payload === "string" ? JSON.parse(payload) : null;
      if (event?.type === "text") texts.push(event);
    }),
  );
  await page.goto(`${stack.server.url}/`);
  await sendMessage(page, "Which model?");
  await waitForReply(page, "You said: Which model?");
  assert.equal(await page.locator("#model-field").isHidden(), true);
  assert.equal(texts.length, 1);
  assert.equal("model" in texts[0], false);
  await context.close();
});
