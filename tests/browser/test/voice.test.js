// @ts-check
/**
 * @file Voice in the chat UI, in headless Chromium against the real server
 * with the real local voice engines (Whisper + Piper): a sentence spoken by
 * `espeak-ng` is fed to Chromium as its (fake) microphone; the page must
 * show the transcript, play the spoken reply, let the user speak over it,
 * release the microphone when turned off, and fall back to typing when the
 * microphone is refused.
 *
 * Needs a server built with `--features voice-local`, the models from
 * `scripts/setup-models.sh` and the `espeak-ng` command.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { artifactsDir, launchBrowser } from "../lib/browser.js";
import { voiceEnv } from "../lib/server.js";
import { sendMessage, startStack, waitForReply } from "./helpers.js";

/** @typedef {import("playwright-core").Page} Page */
/** @typedef {import("playwright-core").BrowserContext} BrowserContext */

const SENTENCE = "I would like to book a table for dinner tonight.";
const REPLY = "Of course. I have booked a table for two at seven tonight.";
const LONG_REPLY = [
  "Here is a long answer, so that there is time to talk over it.",
  "First, the restaurant opens at six in the evening.",
  "Second, the terrace has the best view of the river.",
  "Third, the kitchen closes at eleven, so there is no rush.",
  "Fourth, the house dessert is a lemon tart that people travel for.",
  "Finally, remember to bring a jacket, because evenings get cold.",
].join(" ");

/** Chromium switches for a fake microphone that "says" the WAV file (looping). */
const fakeMic = (/** @type {string} */ wav) => [
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  `--use-file-for-fake-audio-capture=${wav}`,
];

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** The first test's page, continued by the second. @type {Awaited<ReturnType<typeof stack.page>>} */
let session;
let workDir = "";
/** The sentence once, then silence long enough to finish a turn before Chromium loops the file. */
let onceWav = "";
/** The sentence every ~6.5 s: the second time, it talks over the reply. */
let repeatingWav = "";

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "colloquy-voice-"));
  onceWav = await speechWav(SENTENCE, path.join(workDir, "once.wav"), { leadMs: 1000, trailMs: 40_000 });
  repeatingWav = await speechWav(SENTENCE, path.join(workDir, "repeating.wav"), { leadMs: 1000, trailMs: 3000 });
  stack = await startStack({ serverEnv: voiceEnv(), browserArgs: fakeMic(onceWav) });
});
after(async () => {
  await session?.context.close();
  await stack?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test("talking into the mic: the meter moves, the transcript shows, the reply is spoken, turning it off releases the mic", async (t) => {
  const token = await stack.token();
  session = await stack.page({ token });
  const { page, context, errors } = session;
  await probeAudio(context);
  await page.goto(`${stack.server.url}/`);
  const mic = page.getByRole("button", { name: "Voice input", exact: true });
  await mic.and(page.locator(":enabled")).waitFor();
  assert.equal(await mic.getAttribute("aria-pressed"), "false");

  stack.upstream.reply(REPLY);
  await mic.click();
  assert.equal(await mic.getAttribute("aria-pressed"), "true");
  await page.locator("#voice-panel:visible").waitFor();

  // The level meter follows the voice: several different levels, some loud.
  await page.waitForFunction(
    () => {
      const w = /** @type {any} */ (window);
      const panel = /** @type {HTMLElement} */ (document.getElementById("voice-panel"));
      const level = Number(panel.style.getPropertyValue("--level") || 0);
      (w.__levels ??= new Set()).add(level.toFixed(2));
      const levels = [...w.__levels].map(Number);
      return levels.length >= 4 && Math.max(...levels) > 0.3;
    },
    null,
    { polling: 50, timeout: 20_000 },
  );
  await page.screenshot({ path: path.join(artifactsDir, "voice-listening.png") });

  // What was said appears as the user's message, then is confirmed (one bubble).
  const said = page.locator(".msg-user .msg-bubble");
  await said.waitFor({ timeout: 60_000 });
  const transcript = (await said.textContent()) ?? "";
  const wer = wordErrorRate(SENTENCE, transcript);
  t.diagnostic(`transcript: "${transcript}" (word error rate ${wer.toFixed(2)})`);
  assert.ok(wer <= 0.1, `transcript "${transcript}" (word error rate ${wer.toFixed(2)})`);
  await page.locator(".msg-user.status-sent").waitFor();
  assert.equal(await page.locator(".msg-user").count(), 1, "the ack confirms the transcript's bubble");
  await page.locator(".msg-user .msg-spoken").waitFor();

  // The reply arrives as text and as speech, scheduled for playback.
  await waitForReply(page, REPLY, 60_000);
  await page.waitForFunction(() => {
    const stats = /** @type {any} */ (window).colloquyVoiceStats;
    return stats.chunks >= 10 && stats.scheduledSeconds > 1;
  }, null, { timeout: 60_000 });
  const stats = await voiceStats(page);
  assert.equal(stats.tts, true, "the socket asked for spoken replies");
  assert.ok(stats.chunksSent > 10, `audio was streamed (${stats.chunksSent} chunks)`);
  t.diagnostic(`voice stats: ${JSON.stringify(stats)}`);
  await page.screenshot({ path: path.join(artifactsDir, "voice-reply.png") });

  // Off: every microphone track ends and the capture context closes at
  // once; the output context closes once the reply has been spoken.
  await mic.click();
  assert.equal(await mic.getAttribute("aria-pressed"), "false");
  await page.waitForFunction(() => {
    const probe = /** @type {any} */ (window).__voiceProbe;
    const tracks = probe.streams.flatMap((/** @type {MediaStream} */ s) => s.getTracks());
    return tracks.length > 0 && tracks.every((/** @type {MediaStreamTrack} */ t) => t.readyState === "ended");
  });
  await page.waitForFunction(
    () => {
      const probe = /** @type {any} */ (window).__voiceProbe;
      return probe.contexts.length >= 2 && probe.contexts.every((/** @type {AudioContext} */ c) => c.state === "closed");
    },
    null,
    { timeout: 60_000 },
  );
  // With voice off, the socket goes back to text-only replies.
  await page.waitForFunction(() => /** @type {any} */ (window).colloquyVoiceStats.tts === false, null, { timeout: 30_000 });
  assert.equal(await page.locator("#voice-panel").isVisible(), false);
  assert.deepEqual(errors, []);
});

test("voice picks up an open conversation: its text-only socket is reopened to speak, losing no words", async (t) => {
  const { page, errors } = session;
  // A fresh load: the conversation's socket opens without spoken replies.
  await page.reload();
  await page.locator(".msg-user").first().waitFor();
  await page.locator("#conn-badge[data-state=open]").waitFor();
  assert.notEqual((await voiceStats(page)).tts, true);
  const mic = page.getByRole("button", { name: "Voice input", exact: true });
  await mic.and(page.locator(":enabled")).waitFor();
  const SECOND = "Thanks, see you at seven.";
  stack.upstream.reply(SECOND);
  // Chromium's fake microphone starts its file again: the same sentence.
  await mic.click();
  await page.waitForFunction(() => /** @type {any} */ (window).colloquyVoiceStats.tts === true);
  await page.locator(".msg-user").nth(1).waitFor({ timeout: 60_000 });
  const transcript = (await page.locator(".msg-user .msg-bubble").nth(1).textContent()) ?? "";
  const wer = wordErrorRate(SENTENCE, transcript);
  t.diagnostic(`transcript: "${transcript}" (word error rate ${wer.toFixed(2)})`);
  assert.ok(wer <= 0.1, `transcript "${transcript}" (word error rate ${wer.toFixed(2)})`);
  await waitForReply(page, SECOND, 60_000);
  const before = (await voiceStats(page)).chunks;
  await page.waitForFunction((seen) => /** @type {any} */ (window).colloquyVoiceStats.chunks > seen, before, { timeout: 60_000 });
  await page.locator("#conn-badge[data-state=open]").waitFor();
  assert.equal(await page.locator(".msg-user").count(), 2);
  await mic.click();
  assert.deepEqual(errors, []);
});

test("speaking over a spoken reply stops its audio at once and keeps only what was heard", async () => {
  const browser = await launchBrowser({ args: fakeMic(repeatingWav) });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const token = await stack.token();
    await context.addInitScript((value) => localStorage.setItem("colloquy.token", value), token);
    /** @type {string[]} */
    const errors = [];
    const page = await context.newPage();
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(`${stack.server.url}/`);
    const mic = page.getByRole("button", { name: "Voice input", exact: true });
    await mic.and(page.locator(":enabled")).waitFor();
    // The first utterance gets a long reply; the sentence comes round again
    // while it is being spoken.
    stack.upstream.reply(LONG_REPLY, { delayMs: 40 });
    await mic.click();
    const cut = page.locator(".msg-assistant.status-interrupted");
    await cut.locator(".msg-interrupted", { hasText: "Interrupted" }).waitFor({ timeout: 90_000 });
    const heard = (await cut.first().locator(".msg-bubble").textContent().catch(() => "")) ?? "";
    assert.ok(heard.length < LONG_REPLY.length, `only what was heard is kept: "${heard}"`);
    const stats = await voiceStats(page);
    assert.ok(stats.interruptions >= 1 || stats.sourcesStopped >= 1, JSON.stringify(stats));
    await page.screenshot({ path: path.join(artifactsDir, "voice-interrupted.png") });
    await mic.click();
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test("a refused microphone says so in place, and typing still works", async () => {
  // No fake-UI switch: the permission prompt is refused, as a user would.
  const browser = await launchBrowser({ args: ["--use-fake-device-for-media-stream", "--deny-permission-prompts"] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const token = await stack.token();
    await context.addInitScript((value) => localStorage.setItem("colloquy.token", value), token);
    /** @type {string[]} */
    const errors = [];
    const page = await context.newPage();
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(`${stack.server.url}/`);
    const mic = page.getByRole("button", { name: "Voice input", exact: true });
    await mic.and(page.locator(":enabled")).waitFor();
    await mic.click();
    const message = page.locator("#voice-error[role=alert]");
    await message.waitFor();
    assert.match((await message.textContent()) ?? "", /Microphone access is blocked.*typing works/i);
    assert.equal(await mic.getAttribute("aria-pressed"), "false");
    assert.equal(await page.locator("#voice-panel").isVisible(), false);

    await sendMessage(page, "Typing still works");
    await waitForReply(page, "You said: Typing still works");
    await page.screenshot({ path: path.join(artifactsDir, "voice-denied.png") });
    // The message can be dismissed from the keyboard.
    await page.getByRole("button", { name: "Dismiss microphone message" }).press("Enter");
    await message.waitFor({ state: "hidden" });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

// ---- helpers ---------------------------------------------------------------

/** Record every microphone stream and audio context the page creates. @param {BrowserContext} context */
async function probeAudio(context) {
  await context.addInitScript(() => {
    const probe = { streams: /** @type {MediaStream[]} */ ([]), contexts: /** @type {AudioContext[]} */ ([]) };
    /** @type {any} */ (window).__voiceProbe = probe;
    const devices = navigator.mediaDevices;
    const getUserMedia = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (constraints) => {
      const stream = await getUserMedia(constraints);
      probe.streams.push(stream);
      return stream;
    };
    const Native = window.AudioContext;
    window.AudioContext = class extends Native {
      /** @param {AudioContextOptions} [options] */
      constructor(options) {
        super(options);
        probe.contexts.push(this);
      }
    };
  });
}

/** @param {Page} page @returns {Promise<Record<string, any>>} */
function voiceStats(page) {
  return page.evaluate(() => ({ .../** @type {any} */ (window).colloquyVoiceStats }));
}

/**
 * `text` spoken by espeak-ng, padded with silence before and after, as a
 * 16-bit PCM WAV file at `file`.
 * @param {string} text
 * @param {string} file
 * @param {{ leadMs: number, trailMs: number }} padding
 */
async function speechWav(text, file, padding) {
  const raw = `${file}.raw.wav`;
  try {
    execFileSync("espeak-ng", ["-w", raw, text]);
  } catch (error) {
    throw new Error(`cannot run espeak-ng (Debian: apt-get install espeak-ng): ${error}`);
  }
  const { rate, channels, data } = parseWav(await readFile(raw));
  await rm(raw, { force: true });
  const frame = channels * 2;
  const silence = (/** @type {number} */ ms) => Buffer.alloc(Math.round((rate * ms) / 1000) * frame);
  await writeFile(file, wav(rate, channels, Buffer.concat([silence(padding.leadMs), data, silence(padding.trailMs)])));
  return file;
}

/** The format and samples of a 16-bit PCM WAV file. @param {Buffer} bytes */
function parseWav(bytes) {
  assert.equal(bytes.toString("ascii", 0, 4), "RIFF");
  assert.equal(bytes.toString("ascii", 8, 12), "WAVE");
  let offset = 12;
  let rate = 0;
  let channels = 0;
  /** @type {Buffer | null} */
  let data = null;
  while (offset + 8 <= bytes.length) {
    const id = bytes.toString("ascii", offset, offset + 4);
    // espeak-ng streams its output: the data size may be a placeholder.
    const size = Math.min(bytes.readUInt32LE(offset + 4), bytes.length - offset - 8);
    if (id === "fmt ") {
      assert.equal(bytes.readUInt16LE(offset + 8), 1, "PCM");
      channels = bytes.readUInt16LE(offset + 10);
      rate = bytes.readUInt32LE(offset + 12);
      assert.equal(bytes.readUInt16LE(offset + 22), 16, "16-bit");
    } else if (id === "data") {
      data = bytes.subarray(offset + 8, offset + 8 + size);
    }
    offset += 8 + size + (size % 2);
  }
  assert.ok(rate && channels && data, "a PCM WAV file");
  return { rate, channels, data: /** @type {Buffer} */ (data) };
}

/** A 16-bit PCM WAV file. @param {number} rate @param {number} channels @param {Buffer} data */
function wav(rate, channels, data) {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/** Lower-case words, punctuation dropped ("Tonight." -> "tonight"). @param {string} text */
function words(text) {
  return text.toLowerCase().replace(/[^a-z0-9' ]+/g, " ").split(/\s+/).filter(Boolean);
}

/** Word error rate of `hypothesis` against `reference` (word-level edit distance / reference words). */
function wordErrorRate(/** @type {string} */ reference, /** @type {string} */ hypothesis) {
  const ref = words(reference);
  const hyp = words(hypothesis);
  let row = Array.from({ length: hyp.length + 1 }, (_, j) => j);
  for (let i = 1; i <= ref.length; i += 1) {
    const next = [i];
    for (let j = 1; j <= hyp.length; j += 1) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[hyp.length] / ref.length;
}

test("the settings name the server's voice, and 'speak replies' there is the speaker button's setting", async () => {
  const token = await stack.token();
  const { page, context } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);
  const speaker = page.locator("#speaker-button");
  await speaker.waitFor();
  await page.getByRole("button", { name: "Settings" }).click();
  const dialog = page.getByRole("dialog", { name: "Settings" });
  // One voice on this server: named, not offered as a choice.
  await dialog.getByText("Joe (American English)").waitFor();
  assert.equal(await dialog.getByRole("combobox").count(), 0);
  const speak = dialog.getByRole("checkbox", { name: /Speak replies aloud/ });
  assert.equal(await speak.isChecked(), true);
  await speak.uncheck();
  assert.equal(await speaker.getAttribute("aria-pressed"), "false");
  await dialog.getByRole("button", { name: "Done" }).click();
  await speaker.click();
  assert.equal(await speaker.getAttribute("aria-pressed"), "true");
  await page.getByRole("button", { name: "Settings" }).click();
  assert.equal(await speak.isChecked(), true, "the button's change shows in the settings");
  await context.close();
});
