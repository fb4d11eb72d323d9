// @ts-check
/**
 * @file Shared pieces of the browser tests: one fake upstream, one server
 * and one Chromium per test file, and small page helpers.
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { launchBrowser } from "../lib/browser.js";
import { startFakeOpenAI } from "../lib/fake-openai.js";
import { registerUser, startServer } from "../lib/server.js";

/** @typedef {import("playwright-core").Page} Page */
/** @typedef {import("playwright-core").Browser} Browser */

/** A promise with its resolve function, for gating the fake upstream. */
export function deferred() {
  /** @type {(value?: unknown) => void} */
  let resolve = () => {};
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** The id and name `startStack({ secondModel: true })` gives its second model. */
export const SECOND_MODEL = Object.freeze({ id: "second", name: "Second model" });

/**
 * Start everything a test file needs; `stop()` tears it down.
 * @param {{ serverEnv?: Record<string, string>, browserArgs?: string[], secondModel?: boolean }} [options]
 *   extra server environment (e.g. voice on), Chromium switches (e.g. a
 *   fake microphone), and a second model (another fake upstream, offered
 *   through a `[[models]]` config file)
 */
export async function startStack(options = {}) {
  const upstream = await startFakeOpenAI();
  const second = options.secondModel ? await startFakeOpenAI() : null;
  const configDir = second ? await mkdtemp(path.join(tmpdir(), "colloquy-config-")) : null;
  /** @type {Record<string, string>} */
  const env = { ...options.serverEnv };
  if (second && configDir) {
    const file = path.join(configDir, "colloquy.toml");
    const entry = [`id = "${SECOND_MODEL.id}"`, `name = "${SECOND_MODEL.name}"`, `model = "openai:second-model"`, `base_url = "${second.url}/v1"`];
    await writeFile(file, ["[[models]]", ...entry, ""].join("\n"));
    env.COLLOQUY_CONFIG = file;
  }
  const server = await startServer({ upstreamUrl: upstream.url, env });
  const browser = await launchBrowser({ args: options.browserArgs });
  const stack = {
    upstream,
    /** The second model's upstream (with `secondModel`). */
    second,
    server,
    browser,
    async stop() {
      await browser.close().catch(() => {});
      await stack.server.destroy().catch(() => {});
      await upstream.close();
      await second?.close();
      if (configDir) await rm(configDir, { recursive: true, force: true });
    },
    /** A fresh user's token. */
    token: () => registerUser(stack.server.url),
    /**
     * A new browser context and page; with `token`, already signed in.
     * Page errors and dialogs are collected so tests can assert none happened.
     * @param {{ token?: string, viewport?: { width: number, height: number }, colorScheme?: "light" | "dark" }} [options]
     */
    async page(options = {}) {
      const context = await browser.newContext({
        viewport: options.viewport ?? { width: 1280, height: 800 },
        colorScheme: options.colorScheme ?? "light",
      });
      if (options.token) {
        await context.addInitScript((token) => {
          if (!localStorage.getItem("colloquy.token")) localStorage.setItem("colloquy.token", token);
        }, options.token);
      }
      const page = await context.newPage();
      /** @type {string[]} */
      const errors = [];
      /** @type {string[]} */
      const dialogs = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      page.on("console", (message) => {
        // Chromium logs refused socket connections (a server restarting);
        // those are the network, not the page.
        const text = message.text();
        if (message.type() === "error" && !/ERR_CONNECTION_REFUSED|WebSocket connection to/.test(text)) errors.push(text);
      });
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        dialog.dismiss().catch(() => {});
      });
      return { context, page, errors, dialogs };
    },
  };
  return stack;
}

/**
 * The text of the last assistant message, once it is final and equals `expected`.
 * @param {Page} page
 * @param {string} expected
 */
export async function waitForReply(page, expected, timeout = 20_000) {
  await page.waitForFunction(
    (text) => {
      const replies = document.querySelectorAll(".msg-assistant");
      const last = replies[replies.length - 1];
      return last?.getAttribute("aria-busy") === "false" && last.querySelector(".msg-bubble")?.textContent === text;
    },
    expected,
    { timeout },
  );
}

/**
 * Wait until the last assistant message's text contains `fragment`.
 * @param {Page} page @param {string} fragment
 */
export async function waitForReplyContaining(page, fragment, timeout = 20_000) {
  await page.waitForFunction(
    (text) => {
      const replies = document.querySelectorAll(".msg-assistant");
      return (replies[replies.length - 1]?.textContent ?? "").includes(text);
    },
    fragment,
    { timeout },
  );
}

/** The open conversation's id, from the URL. @param {Page} page */
export async function conversationId(page) {
  await page.waitForFunction(() => /^#\/c\/[0-9a-f-]{36}$/.test(location.hash));
  return page.evaluate(() => location.hash.slice("#/c/".length));
}

/** Type into the composer and press Enter. @param {Page} page @param {string} text */
export async function sendMessage(page, text) {
  await page.locator("#input").fill(text);
  await page.locator("#input").press("Enter");
}
