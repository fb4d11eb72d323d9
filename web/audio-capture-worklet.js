// @ts-check
/**
 * @file The microphone's audio thread (an AudioWorklet module, loaded by
 * `voice.js` with `audioWorklet.addModule`): resamples the input from the
 * context's rate to 16 kHz with a low-pass filter, converts to PCM16 and
 * posts ~100 ms chunks to the main thread (10 a second keeps the socket far
 * below its frame-rate limit), plus a loudness level every ~50 ms for the
 * meter.
 *
 * Messages to the main thread:
 * - `{ type: "chunk", pcm: ArrayBuffer, rms: number }` (PCM16 LE, 16 kHz mono; transferred)
 * - `{ type: "level", rms: number }`
 * - `{ type: "flushed" }` after a `{ type: "flush" }` request: the partial chunk was posted
 * Messages from it: `{ type: "flush" }`, `{ type: "stop" }` (the processor ends).
 */

import { INPUT_SAMPLE_RATE, Resampler, floatToPcm16 } from "./audio-dsp.js";

/**
 * What the AudioWorkletGlobalScope provides (not in TypeScript's DOM lib).
 * @typedef {{ new (options?: AudioWorkletNodeOptions): { readonly port: MessagePort } }} ProcessorBase
 */
const scope = /** @type {{ AudioWorkletProcessor: ProcessorBase, registerProcessor: (name: string, ctor: unknown) => void, sampleRate: number }} */ (
  /** @type {unknown} */ (globalThis)
);

/** Milliseconds of audio per posted chunk. */
const CHUNK_MS = 100;
/** Milliseconds between level reports. */
const LEVEL_MS = 50;

class CaptureProcessor extends scope.AudioWorkletProcessor {
  #resampler = new Resampler(scope.sampleRate, INPUT_SAMPLE_RATE);
  #chunk = new Float32Array((INPUT_SAMPLE_RATE * CHUNK_MS) / 1000);
  #filled = 0;
  #levelEvery = (INPUT_SAMPLE_RATE * LEVEL_MS) / 1000;
  #levelCount = 0;
  #levelSum = 0;
  #running = true;

  /** @param {AudioWorkletNodeOptions} [options] */
  constructor(options) {
    super(options);
    this.port.onmessage = (/** @type {MessageEvent} */ event) => {
      if (event.data?.type === "flush") {
        this.#post();
        this.port.postMessage({ type: "flushed" });
      } else if (event.data?.type === "stop") {
        this.#running = false;
      }
    };
  }

  /** @param {Float32Array[][]} inputs */
  process(inputs) {
    if (!this.#running) return false;
    const channels = inputs[0];
    // No input connected (yet, or the track ended): nothing to do.
    if (!channels || channels.length === 0) return true;
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < mono.length; i += 1) mono[i] += channel[i] / channels.length;
      }
    }
    const samples = this.#resampler.process(mono);
    for (let i = 0; i < samples.length; i += 1) {
      const s = samples[i];
      this.#chunk[this.#filled] = s;
      this.#filled += 1;
      this.#levelSum += s * s;
      this.#levelCount += 1;
      if (this.#levelCount >= this.#levelEvery) {
        this.port.postMessage({ type: "level", rms: Math.sqrt(this.#levelSum / this.#levelCount) });
        this.#levelSum = 0;
        this.#levelCount = 0;
      }
      if (this.#filled === this.#chunk.length) this.#post();
    }
    return true;
  }

  /** Post what the chunk holds (if anything) and start a new one. */
  #post() {
    if (this.#filled === 0) return;
    const samples = this.#chunk.subarray(0, this.#filled);
    let sum = 0;
    for (let i = 0; i < samples.length; i += 1) sum += samples[i] * samples[i];
    const pcm = floatToPcm16(samples);
    this.port.postMessage({ type: "chunk", pcm: pcm.buffer, rms: Math.sqrt(sum / samples.length) }, [pcm.buffer]);
    this.#filled = 0;
  }
}

scope.registerProcessor("colloquy-capture", CaptureProcessor);
