// @ts-check
/**
 * @file Untrusted text stays text (XSS attempts in a reply and in a title),
 * the chat works from the keyboard alone, and screenshots at desktop and
 * phone sizes land in tests/artifacts/ for people to look at.
 */

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { artifactsDir } from "../lib/browser.js";
import { conversationId, sendMessage, startStack, waitForReply } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

const ATTACK_TITLE = "<img src=x onerror=alert('title')>";
const ATTACK_REPLY = [
  "Here you go: <img src=x onerror=alert('reply')> and <script>alert('script')</script>, **bold** too.",
  "",
  "[a link](javascript:alert('link')) and [a safe one](https://example.com/docs).",
  "",
  "```html",
  "<img src=x onerror=alert('code')>",
  "```",
].join("\n");

test("HTML in a reply or a title renders as inert text", async () => {
  const token = await stack.token();
  const { page, context, dialogs, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  stack.upstream.reply(ATTACK_REPLY);
  // The first message names the conversation: the title is an attack too.
  await sendMessage(page, ATTACK_TITLE);
  await page.locator(".msg-assistant[aria-busy=false] .code-block").waitFor();

  const reply = page.locator(".msg-assistant .msg-bubble");
  const text = (await reply.textContent()) ?? "";
  assert.ok(text.includes("<img src=x onerror=alert('reply')>"), text);
  assert.ok(text.includes("<script>alert('script')</script>"), text);
  assert.equal(await reply.locator("strong").textContent(), "bold", "markdown still renders");
  assert.equal(await reply.locator("code").last().textContent(), "<img src=x onerror=alert('code')>");
  assert.equal(await reply.getByRole("button", { name: /^Copy html/ }).count(), 1, "code blocks get a copy button");
  assert.equal(await page.locator(".msg-user .msg-bubble").textContent(), ATTACK_TITLE);
  await page.waitForFunction((title) => document.querySelector(".conv-link")?.textContent === title, ATTACK_TITLE);
  assert.equal(await page.locator("#chat-title").textContent(), ATTACK_TITLE);

  const found = await page.evaluate(() => ({
    images: document.querySelectorAll("img").length,
    inlineScripts: document.querySelectorAll("script:not([src])").length,
    scriptLinks: document.querySelectorAll('a[href^="javascript" i]').length,
    safeLinks: [...document.querySelectorAll(".msg-bubble a")].map((a) => [a.getAttribute("href"), a.getAttribute("rel")]),
  }));
  assert.deepEqual(found, {
    images: 0,
    inlineScripts: 0,
    scriptLinks: 0,
    safeLinks: [["https://example.com/docs", "noopener noreferrer nofollow"]],
  });
  assert.deepEqual(dialogs, [], "no alert fired");
  assert.deepEqual(errors, []);
  await context.close();
});

test("keyboard only: continue as a guest, Tab to the message box, Shift+Enter for a new line, Enter sends", async () => {
  const { page, context } = await stack.page();
  await page.goto(`${stack.server.url}/`);
  await page.locator("#auth-view").waitFor();
  /** @param {string} selector */
  const tabTo = async (selector, limit = 25) => {
    for (let i = 0; i < limit; i += 1) {
      if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
      await page.keyboard.press("Tab");
    }
    assert.fail(`Tab never reached ${selector}`);
  };
  await tabTo("#anon-button");
  await page.keyboard.press("Enter");
  await page.locator("#chat-view").waitFor();
  // Start from nothing focused and Tab into the composer.
  await page.evaluate(() => /** @type {HTMLElement} */ (document.activeElement)?.blur());
  await tabTo("#input");
  await page.keyboard.type("first line");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("second line");
  assert.equal(await page.locator("#input").inputValue(), "first line\nsecond line");
  await page.keyboard.press("Enter");
  await page.locator(".msg-user .msg-bubble", { hasText: "second line" }).waitFor();
  assert.equal(await page.locator(".msg-user .msg-bubble").textContent(), "first line\nsecond line");
  assert.equal(await page.locator("#input").inputValue(), "", "the box is cleared");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "input", "focus stays in the box");
  await waitForReply(page, "You said: first line\nsecond line".replace("\n", ""));
  await context.close();
});

const SHOWCASE = [
  "Here's a quick comparison of **WebSockets** and *Server-Sent Events*:",
  "",
  "| | WebSocket | SSE |",
  "|---|---|---|",
  "| Direction | both ways | server → client |",
  "| Reconnect | by the client | built in |",
  "",
  "A minimal client:",
  "",
  "```js",
  'const ws = new WebSocket("wss://example.com/chat");',
  'ws.onmessage = (e) => console.log(JSON.parse(e.data));',
  "```",
  "",
  "1. Open the socket",
  "2. Send `{\"type\": \"text\"}`",
  "3. Read the `delta` events",
].join("\n");

test("screenshots at desktop and phone sizes, light and dark", async () => {
  const token = await stack.token();
  let conversation = "";
  for (const [name, viewport, colorScheme] of /** @type {const} */ ([
    ["desktop-light", { width: 1280, height: 800 }, "light"],
    ["desktop-dark", { width: 1280, height: 800 }, "dark"],
    ["phone-light", { width: 390, height: 844 }, "light"],
    ["phone-dark", { width: 390, height: 844 }, "dark"],
  ])) {
    const { page, context } = await stack.page({ token, viewport, colorScheme });
    await page.goto(`${stack.server.url}/`);
    if (name === "desktop-light") {
      await page.locator("#empty-state").waitFor();
      await page.screenshot({ path: path.join(artifactsDir, "empty-desktop.png") });
      stack.upstream.reply(SHOWCASE);
      await sendMessage(page, "Compare WebSockets and SSE, with a tiny example");
      await page.locator(".msg-assistant[aria-busy=false] table").waitFor();
      conversation = await conversationId(page);
    } else {
      await page.goto(`${stack.server.url}/#/c/${conversation}`);
      await page.locator(".msg-assistant table").waitFor();
    }
    await page.locator("#conn-badge[data-state=open]").waitFor();
    await page.mouse.move(0, 0);
    await page.screenshot({ path: path.join(artifactsDir, `${name}.png`) });
    if (name === "phone-light") {
      await page.getByRole("button", { name: "Show conversations" }).click();
      await page.waitForTimeout(300); // the drawer's slide-in transition
      await page.screenshot({ path: path.join(artifactsDir, "phone-drawer.png") });
    }
    await context.close();
  }
  const { page, context } = await stack.page({ viewport: { width: 390, height: 844 } });
  await page.goto(`${stack.server.url}/`);
  await page.locator("#auth-view").waitFor();
  await page.screenshot({ path: path.join(artifactsDir, "signin-phone.png") });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: path.join(artifactsDir, "signin-desktop.png") });
  await page.evaluate((t) => localStorage.setItem("colloquy.token", t), token);
  await page.goto(`${stack.server.url}/v2/chat/test`);
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.locator("#log li", { hasText: '"type":"ready"' }).waitFor();
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await page.locator("#log li", { hasText: '"is_final":true' }).waitFor();
  await page.screenshot({ path: path.join(artifactsDir, "v2-test-page.png") });
  await context.close();
});
