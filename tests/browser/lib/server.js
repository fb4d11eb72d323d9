// @ts-check
/**
 * @file Start the real `colloquy` binary for a test: an ephemeral port, a
 * fresh data dir, and the fake upstream as its OpenAI-compatible model.
 * Voice is off unless a test asks for it ({@link voiceEnv}): loading the
 * speech engines takes seconds that text-only tests need not wait.
 * `restart()` stops it gracefully (SIGTERM) and starts a new process on the
 * same port and data dir, as a deploy would.
 */

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The server binary: `COLLOQUY_BIN`, else the debug build in the cargo target dir. */
export function serverBinary() {
  if (process.env.COLLOQUY_BIN) return process.env.COLLOQUY_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target");
  return path.join(target, "debug", "colloquy");
}

/**
 * Server environment for the real local voice engines (Whisper + Piper),
 * from the models `scripts/setup-models.sh` puts in `data/models` (or
 * `COLLOQUY_AUDIO__MODELS_DIR`). Needs a build with `--features voice-local`.
 * @returns {Record<string, string>}
 */
export function voiceEnv() {
  return {
    COLLOQUY_VOICE: "local",
    COLLOQUY_AUDIO__MODELS_DIR: process.env.COLLOQUY_AUDIO__MODELS_DIR ?? path.join(repoRoot, "data", "models"),
  };
}

/**
 * @typedef {object} RunningServer
 * @property {string} url
 * @property {number} port
 * @property {string} dataDir
 * @property {string[]} logs
 * @property {(signal?: NodeJS.Signals) => Promise<void>} stop
 * @property {() => Promise<RunningServer>} restart
 * @property {() => Promise<void>} destroy stop and delete the data dir
 */

/**
 * @param {{ upstreamUrl: string, port?: number, dataDir?: string, env?: Record<string, string> }} options
 * @returns {Promise<RunningServer>}
 */
export async function startServer(options) {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), "colloquy-browser-")));
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  delete env.COLLOQUY_CONFIG;
  delete env.DATABASE_URL;
  Object.assign(env, {
    COLLOQUY_MODEL: "openai:fake",
    OPENAI_BASE_URL: `${options.upstreamUrl}/v1`,
    COLLOQUY_LOG: "info",
    COLLOQUY_VOICE: "none",
    // A title request after each first reply would take the next scripted reply.
    COLLOQUY_AUTO_TITLES: "false",
    NO_COLOR: "1",
    RUST_BACKTRACE: "1",
    ...options.env,
  });
  const child = spawn(serverBinary(), ["serve", "--addr", `127.0.0.1:${options.port ?? 0}`, "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  /** @type {string[]} */
  const logs = [];
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const address = await new Promise((resolve, reject) => {
    // Generous: with voice on, the speech models load before it listens.
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs.join("")}`)), 90_000);
    /** @param {Buffer} data */
    const onData = (data) => {
      const text = data.toString().replace(/\x1b\[[0-9;]*m/g, "");
      logs.push(text);
      const match = /listening on http:\/\/([0-9.]+:\d+)/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("error", (error) => reject(error));
    exited.then(({ code }) => reject(new Error(`server exited (${code}) before listening:\n${logs.join("")}`)));
  });
  const port = Number(address.split(":").pop());

  /** @type {RunningServer} */
  const running = {
    url: `http://${address}`,
    port,
    dataDir,
    logs,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    async restart() {
      await running.stop();
      return startServer({ ...options, port, dataDir });
    },
    async destroy() {
      await running.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return running;
}

/**
 * Call the HTTP API.
 * @param {string} base
 * @param {string} method
 * @param {string} path
 * @param {{ token?: string, body?: unknown }} [options]
 */
export async function api(base, method, path, options = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(base + path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return data;
}

let counter = 0;
/** Register a fresh user; returns its token. @param {string} base */
export async function registerUser(base) {
  counter += 1;
  const email = `user${Date.now()}${counter}@example.com`;
  const data = await api(base, "POST", "/auth/register", { body: { email, password: "correct horse battery" } });
  return /** @type {string} */ (data.access_token);
}
