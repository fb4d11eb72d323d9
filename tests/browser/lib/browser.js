// @ts-check
/**
 * @file Headless Chromium for the tests: the system's `chromium` (Debian
 * package, found on PATH at run time or via `CHROMIUM_PATH`), driven by
 * `playwright-core`. No browser is ever downloaded.
 */

import { execFileSync } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/** Screenshots go here (gitignored). */
export const artifactsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../artifacts");

function chromiumPath() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("chromium is not installed (Debian: apt-get install chromium), or set CHROMIUM_PATH");
  }
}

/**
 * Launch headless Chromium.
 * @param {{ args?: string[] }} [options] `args`: extra command-line switches
 *   (e.g. the fake microphone of the voice tests)
 */
export async function launchBrowser(options = {}) {
  await mkdir(artifactsDir, { recursive: true });
  // launch() gives every browser a fresh temporary profile (user-data-dir).
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...(options.args ?? []),
    ],
  });
}
