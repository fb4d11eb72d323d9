// @ts-check
/**
 * @file The chat on a phone (390 x 844): message actions only where they
 * are wanted, touch targets of at least 44 px, a title the status badge
 * leaves room for, and a drawer that holds focus (issue 13, problem 7).
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { sendMessage, startStack, waitForReply } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {Awaited<ReturnType<typeof stack.page>>} */
let session;

const PHONE = { width: 390, height: 844 };
const TITLE = "Plan a three-day trip to Lisbon";

before(async () => {
  stack = await startStack();
  session = await stack.page({ token: await stack.token(), viewport: PHONE });
  const { page } = session;
  await page.goto(`${stack.server.url}/`);
  await sendMessage(page, TITLE);
  await waitForReply(page, `You said: ${TITLE}`);
  await sendMessage(page, "And what should I eat?");
  await waitForReply(page, "You said: And what should I eat?");
  await page.locator("#chat-title", { hasText: TITLE }).waitFor();
});
after(async () => {
  await session?.context.close();
  await stack?.stop();
});

/** Which messages show their action row (by index). @param {Page} page */
function rowsShown(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll(".msg")].flatMap((msg, index) => {
      const row = msg.querySelector(".msg-actions");
      if (!row) return [];
      const box = row.getBoundingClientRect();
      const shown = box.width > 1 && box.height > 1 && getComputedStyle(row).opacity !== "0";
      return shown ? [index] : [];
    }),
  );
}

/**
 * Interactive elements on screen smaller than 44 x 44 px.
 * @param {Page} page
 */
function smallTargets(page) {
  return page.evaluate(() => {
    const selector = "button, a[href], input, textarea, select, [role=tab], [tabindex]:not([tabindex='-1'])";
    return [...document.querySelectorAll(selector)].flatMap((el) => {
      const box = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      const onScreen = box.width > 1 && box.height > 1 && box.bottom > 0 && box.right > 0 && box.left < innerWidth && box.top < innerHeight;
      if (!onScreen || style.visibility === "hidden" || el.closest("[inert]")) return [];
      // Links inside running text are exempt (WCAG 2.5.8); so are scroll areas.
      if (el.closest(".msg-bubble") || el.matches("#messages")) return [];
      const name = el.id || el.getAttribute("aria-label") || el.textContent?.trim().slice(0, 30) || el.tagName;
      return box.height < 44 || box.width < 44 ? [`${name}: ${Math.round(box.width)}x${Math.round(box.height)}`] : [];
    });
  });
}

test("message actions show on the latest message and on the one tapped, not on every message", async () => {
  const { page } = session;
  assert.equal(await page.locator(".msg").count(), 4);
  assert.deepEqual(await rowsShown(page), [3], "only the latest reply's row");
  await page.locator(".msg-user .msg-bubble").first().click();
  assert.deepEqual(await rowsShown(page), [0, 3], "the tapped message's row too");
  await page.locator(".msg-assistant .msg-bubble").first().click();
  assert.deepEqual(await rowsShown(page), [1, 3], "one tapped message at a time");
});

test("touch targets are at least 44 px: chat, actions, drawer and sign-in", async () => {
  const { page } = session;
  await page.locator(".msg-user .msg-bubble").first().click();
  assert.deepEqual(await smallTargets(page), [], "chat view");
  await page.getByRole("button", { name: "Show conversations" }).click();
  await page.locator("#sidebar .conv-link").first().waitFor();
  await page.waitForFunction(() => document.getElementById("sidebar")?.getBoundingClientRect().left === 0);
  assert.deepEqual(await smallTargets(page), [], "drawer");
  await page.keyboard.press("Escape");

  const signedOut = await stack.page({ viewport: PHONE });
  await signedOut.page.goto(`${stack.server.url}/`);
  await signedOut.page.locator("#auth-view").waitFor();
  assert.deepEqual(await smallTargets(signedOut.page), [], "sign-in");
  await signedOut.context.close();
});

test("the status badge leaves the title whole", async () => {
  const { page } = session;
  await page.locator("#conn-badge[data-state=open]").waitFor();
  const title = await page
    .locator("#chat-title")
    .evaluate((el) => ({ text: el.textContent, fits: el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight }));
  assert.deepEqual(title, { text: TITLE, fits: true });
  assert.equal(await page.getByRole("status").filter({ hasText: "Connected" }).count(), 1, "the state is still said to screen readers");
});

test("the drawer holds focus while open, Escape closes it, and closed it takes no focus", async () => {
  const { page } = session;
  const inSidebar = () => page.evaluate(() => Boolean(document.activeElement?.closest("#sidebar")));
  await page.getByRole("button", { name: "Show conversations" }).click();
  assert.equal(await inSidebar(), true, "focus moves into the drawer");
  for (let i = 0; i < 12; i += 1) {
    await page.keyboard.press("Tab");
    assert.equal(await inSidebar(), true, `Tab ${i + 1} stays in the drawer`);
  }
  for (let i = 0; i < 4; i += 1) {
    await page.keyboard.press("Shift+Tab");
    assert.equal(await inSidebar(), true, `Shift+Tab ${i + 1} stays in the drawer`);
  }
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => !document.getElementById("chat-view")?.classList.contains("drawer-open"));
  assert.equal(await page.evaluate(() => document.activeElement?.id), "menu-button", "focus returns to the menu button");
  for (let i = 0; i < 25; i += 1) {
    await page.keyboard.press("Tab");
    assert.equal(await inSidebar(), false, `closed, Tab ${i + 1} does not go into the hidden drawer`);
  }
  assert.deepEqual(session.errors, []);
});
