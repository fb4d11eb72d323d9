// @ts-check
/**
 * @file The upgrade nudge: a text refused with `quota_exceeded` (here the
 * `free` plan allows one message a day) shows the banner with the plan,
 * records `paywall_shown`; its Upgrade button records `upgrade_clicked`
 * and starts checkout, whose refusal (no billing on this server) is shown
 * in the banner.
 */

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { artifactsDir } from "../lib/browser.js";
import { api, registerUser } from "../lib/server.js";
import { sendMessage, startStack, waitForReply } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
const ADMIN = `admin${Date.now()}@example.com`;

before(async () => {
  stack = await startStack({
    serverEnv: { COLLOQUY_PLANS__FREE__MESSAGES_PER_DAY: "1", COLLOQUY_ADMINS: `[${ADMIN}]` },
  });
});
after(async () => {
  await stack?.stop();
});

/** Today's count of analytics event `name` (UTC), read as an admin. @param {string} admin @param {string} name */
async function countToday(admin, name) {
  const summary = await api(stack.server.url, "GET", "/api/analytics/summary", { token: admin });
  const today = new Date().toISOString().slice(0, 10);
  const day = summary.days.find((/** @type {{ date: string }} */ d) => d.date === today);
  return day?.counts?.[name] ?? 0;
}

test("a text over the daily quota shows the upgrade nudge, and Upgrade starts checkout", async () => {
  const data = await api(stack.server.url, "POST", "/auth/register", {
    body: { email: ADMIN, password: "correct horse battery" },
  });
  const admin = data.access_token;
  const token = await registerUser(stack.server.url);
  const { page, errors } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);

  stack.upstream.reply("Happy to help.");
  await sendMessage(page, "First question");
  await waitForReply(page, "Happy to help.");
  const nudge = page.locator("#upgrade-nudge");
  assert.equal(await nudge.isVisible(), false, "no nudge under the quota");

  await sendMessage(page, "Second question");
  await nudge.waitFor({ state: "visible" });
  const text = (await page.locator("#upgrade-nudge-text").textContent()) ?? "";
  assert.match(text, /today's messages on the free plan/);
  assert.match(text, /It resets at/);
  await page.waitForFunction(() => document.querySelectorAll(".msg-user").length === 2);
  await page.screenshot({ path: path.join(artifactsDir, "upgrade-nudge.png") });

  // Shown: recorded once.
  await waitFor(async () => (await countToday(admin, "paywall_shown")) === 1);

  await page.locator("#upgrade-nudge-upgrade").click();
  const error = page.locator("#upgrade-nudge-error");
  await error.waitFor({ state: "visible" });
  assert.notEqual((await error.textContent())?.trim(), "", "the checkout refusal is shown");
  assert.equal(await page.locator("#upgrade-nudge-upgrade").isEnabled(), true, "Upgrade can be tried again");
  await waitFor(async () => (await countToday(admin, "upgrade_clicked")) === 1);

  await page.locator("#upgrade-nudge-close").click();
  assert.equal(await nudge.isVisible(), false);
  assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

/** Poll `check` until it holds (10 s at most). @param {() => Promise<boolean>} check */
async function waitFor(check) {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
