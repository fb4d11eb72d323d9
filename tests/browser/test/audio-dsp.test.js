// @ts-check
/**
 * @file The voice audio helpers (no browser): PCM16 <-> float, base64 of
 * PCM16 little-endian, and the resampler's low-pass (what is above the new
 * Nyquist frequency must not fold back into the speech band).
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Resampler,
  base64ToPcm16,
  floatToPcm16,
  lowPassKernel,
  meterLevel,
  pcm16ToBase64,
  pcm16ToFloat,
  rms,
} from "../../../web/audio-dsp.js";

/** `seconds` of a sine at `hz`, sampled at `rate`. */
function sine(hz, rate, seconds, amplitude = 0.5) {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i += 1) out[i] = amplitude * Math.sin((2 * Math.PI * hz * i) / rate);
  return out;
}

/** Resample `input` in blocks of `block` samples (an AudioWorklet's 128). */
function resampleInBlocks(/** @type {Float32Array} */ input, inRate, outRate, block = 128) {
  const resampler = new Resampler(inRate, outRate);
  /** @type {number[]} */
  const out = [];
  for (let i = 0; i < input.length; i += block) out.push(...resampler.process(input.subarray(i, i + block)));
  return Float32Array.from(out);
}

/** The strongest frequency (Hz) of `samples` at `rate`, by a plain DFT scan. */
function dominantHz(/** @type {Float32Array} */ samples, rate, step = 50) {
  let best = 0;
  let bestPower = -1;
  for (let hz = step; hz < rate / 2; hz += step) {
    let re = 0;
    let im = 0;
    for (let i = 0; i < samples.length; i += 1) {
      re += samples[i] * Math.cos((2 * Math.PI * hz * i) / rate);
      im -= samples[i] * Math.sin((2 * Math.PI * hz * i) / rate);
    }
    const power = re * re + im * im;
    if (power > bestPower) {
      bestPower = power;
      best = hz;
    }
  }
  return best;
}

test("float samples become PCM16 with clamping, and back", () => {
  const pcm = floatToPcm16(Float32Array.from([0, 1, -1, 0.5, -0.5, 2, -2, NaN]));
  assert.deepEqual([...pcm], [0, 32767, -32768, 16384, -16384, 32767, -32768, 0]);
  const back = pcm16ToFloat(Int16Array.from([0, 16384, -32768, 32767]));
  assert.deepEqual([...back], [0, 0.5, -1, 32767 / 32768]);
});

test("PCM16 travels as base64 of little-endian bytes", () => {
  const pcm = Int16Array.from([1, -2, 258, -32768, 32767]);
  const text = pcm16ToBase64(pcm);
  // 1 -> 01 00, -2 -> fe ff, 258 -> 02 01, -32768 -> 00 80, 32767 -> ff 7f
  assert.equal(Buffer.from(text, "base64").toString("hex"), "0100feff02010080ff7f");
  assert.deepEqual([...base64ToPcm16(text)], [...pcm]);
  // A view into a larger buffer encodes only its own samples.
  const view = new Int16Array(Int16Array.from([9, 1, -2, 9]).buffer, 2, 2);
  assert.deepEqual([...base64ToPcm16(pcm16ToBase64(view))], [1, -2]);
  // A trailing odd byte is ignored; bad base64 throws.
  assert.deepEqual([...base64ToPcm16(Buffer.from([1, 0, 7]).toString("base64"))], [1]);
  assert.throws(() => base64ToPcm16("not base64!"));
  // Large chunks (a whole second) encode without blowing the stack.
  const second = new Int16Array(48_000).fill(-1234);
  assert.equal(base64ToPcm16(pcm16ToBase64(second)).length, 48_000);
});

test("rms and the meter scale", () => {
  assert.equal(rms([]), 0);
  assert.ok(Math.abs(rms(sine(440, 16_000, 1, 1)) - Math.SQRT1_2) < 1e-3);
  assert.equal(meterLevel(0), 0);
  assert.equal(meterLevel(1), 1);
  assert.ok(meterLevel(0.05) > 0.3 && meterLevel(0.05) < 0.9, "speech-level audio moves the meter visibly");
});

test("the low-pass kernel has unity gain at DC and is symmetric", () => {
  const kernel = lowPassKernel(0.15, 73);
  assert.equal(kernel.length, 73);
  assert.ok(Math.abs(kernel.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  for (let k = 0; k < kernel.length; k += 1) assert.ok(Math.abs(kernel[k] - kernel[kernel.length - 1 - k]) < 1e-7);
});

for (const inRate of [48_000, 44_100]) {
  test(`${inRate} Hz -> 16 kHz keeps speech-band tones and removes what would alias`, () => {
    const seconds = 0.5;
    // A 1 kHz tone passes at its level and frequency.
    const tone = resampleInBlocks(sine(1000, inRate, seconds), inRate, 16_000);
    assert.ok(Math.abs(tone.length - 16_000 * seconds) <= 80, `about ${16_000 * seconds} samples, got ${tone.length}`);
    const settled = tone.subarray(200);
    assert.ok(Math.abs(rms(settled) - 0.5 * Math.SQRT1_2) < 0.01, `level kept: ${rms(settled)}`);
    assert.equal(dominantHz(settled.subarray(0, 1600), 16_000), 1000);
    // 12 kHz is above the new Nyquist (8 kHz): naive decimation would fold
    // it to 4 kHz at full level; the filter must remove it.
    const high = resampleInBlocks(sine(12_000, inRate, seconds), inRate, 16_000).subarray(200);
    assert.ok(rms(high) < 0.005, `12 kHz must be filtered out, rms ${rms(high)}`);
    const naive = sine(12_000, inRate, seconds).filter((_, i) => i % 3 === 0);
    assert.ok(rms(naive) > 0.1, "(naive decimation would keep it)");
  });
}

test("the resampler gives the same output however its input is split", () => {
  const input = sine(440, 48_000, 0.25);
  const whole = resampleInBlocks(input, 48_000, 16_000, input.length);
  const quanta = resampleInBlocks(input, 48_000, 16_000, 128);
  const odd = resampleInBlocks(input, 48_000, 16_000, 37);
  assert.equal(quanta.length, whole.length);
  assert.equal(odd.length, whole.length);
  for (let i = 0; i < whole.length; i += 1) {
    assert.ok(Math.abs(whole[i] - quanta[i]) < 1e-6 && Math.abs(whole[i] - odd[i]) < 1e-6, `sample ${i}`);
  }
});

test("16 kHz in is passed through; lower rates are upsampled", () => {
  const same = new Resampler(16_000, 16_000).process(Float32Array.from([0.1, -0.2, 0.3]));
  assert.deepEqual([...same].map((x) => Math.round(x * 10) / 10), [0.1, -0.2, 0.3]);
  const up = resampleInBlocks(sine(500, 8_000, 0.5), 8_000, 16_000);
  assert.ok(Math.abs(up.length - 8_000) <= 2, `${up.length}`);
  assert.equal(dominantHz(up.subarray(100, 1700), 16_000), 500);
});
