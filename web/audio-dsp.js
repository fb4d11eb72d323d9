// @ts-check
/**
 * @file Audio helpers with no DOM: PCM16 <-> float, base64 of PCM, RMS
 * level, and a streaming resampler with a real low-pass filter.
 *
 * Shared by the capture worklet (which imports it into the audio thread),
 * the voice module on the main thread, and the Node unit tests. The wire
 * format is what the server speaks: mono PCM16 little-endian, base64 in
 * JSON events, 16 kHz up and 24 kHz down.
 */

/** What the server transcribes (Hz). */
export const INPUT_SAMPLE_RATE = 16_000;
/** What the server speaks (Hz). */
export const OUTPUT_SAMPLE_RATE = 24_000;

/** Whether this machine stores an Int16Array little-endian (all browsers today). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Float samples in [-1, 1] to PCM16 (clamped; -1 -> -32768, 1 -> 32767).
 * @param {Float32Array} samples
 * @returns {Int16Array}
 */
export function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i += 1) {
    const s = Math.max(-1, Math.min(1, samples[i] || 0));
    out[i] = Math.round(s < 0 ? s * 0x8000 : s * 0x7fff);
  }
  return out;
}

/**
 * PCM16 to float samples in [-1, 1).
 * @param {Int16Array} pcm
 * @returns {Float32Array<ArrayBuffer>}
 */
export function pcm16ToFloat(pcm) {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i += 1) out[i] = pcm[i] / 0x8000;
  return out;
}

/**
 * Bytes to base64 (in slices: `String.fromCharCode(...bytes)` on a large
 * array would overflow the call stack).
 * @param {Uint8Array} bytes
 */
export function bytesToBase64(bytes) {
  let binary = "";
  const SLICE = 0x8000;
  for (let i = 0; i < bytes.length; i += SLICE) {
    binary += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + SLICE)));
  }
  return btoa(binary);
}

/**
 * Base64 to bytes; throws on text that is not base64.
 * @param {string} text
 */
export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * PCM16 samples as base64 of their little-endian bytes.
 * @param {Int16Array} pcm
 */
export function pcm16ToBase64(pcm) {
  if (LITTLE_ENDIAN) return bytesToBase64(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
  const bytes = new Uint8Array(pcm.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < pcm.length; i += 1) view.setInt16(i * 2, pcm[i], true);
  return bytesToBase64(bytes);
}

/**
 * Base64 of little-endian PCM16 bytes to samples (a trailing odd byte is
 * ignored).
 * @param {string} text
 * @returns {Int16Array}
 */
export function base64ToPcm16(text) {
  const bytes = base64ToBytes(text);
  const count = bytes.length >> 1;
  if (LITTLE_ENDIAN) return new Int16Array(bytes.buffer, 0, count);
  const view = new DataView(bytes.buffer);
  const pcm = new Int16Array(count);
  for (let i = 0; i < count; i += 1) pcm[i] = view.getInt16(i * 2, true);
  return pcm;
}

/**
 * Root mean square of `samples` (0 for none): the loudness a level meter shows.
 * @param {ArrayLike<number>} samples
 */
export function rms(samples) {
  if (!samples.length) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i += 1) sum += samples[i] * samples[i];
  return Math.sqrt(sum / samples.length);
}

/**
 * Meter position (0..1) for a loudness: -60 dBFS and below is empty, -10
 * dBFS and above is full, so ordinary speech moves a level meter visibly.
 * @param {number} level RMS, 0..1
 */
export function meterLevel(level) {
  if (!(level > 0)) return 0;
  const db = 20 * Math.log10(level);
  return Math.max(0, Math.min(1, (db + 60) / 50));
}

/**
 * A linear-phase low-pass FIR: a Blackman-windowed sinc with `taps` (odd)
 * coefficients, cutoff `cutoff` in cycles per sample (0..0.5), unity gain
 * at DC.
 * @param {number} cutoff
 * @param {number} taps
 */
export function lowPassKernel(cutoff, taps) {
  const size = taps | 1;
  const middle = (size - 1) / 2;
  const kernel = new Float32Array(size);
  let sum = 0;
  for (let k = 0; k < size; k += 1) {
    const x = k - middle;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const window = 0.42 - 0.5 * Math.cos((2 * Math.PI * k) / (size - 1)) + 0.08 * Math.cos((4 * Math.PI * k) / (size - 1));
    kernel[k] = sinc * window;
    sum += kernel[k];
  }
  for (let k = 0; k < size; k += 1) kernel[k] /= sum;
  return kernel;
}

/**
 * Streaming sample-rate conversion of one channel, fed in blocks of any
 * size (an AudioWorklet's 128-frame quanta): the same input gives the same
 * output however it is split.
 *
 * Downsampling first low-passes below the new Nyquist frequency (a
 * windowed-sinc FIR, evaluated only where output samples fall), then reads
 * between input samples linearly. Without the filter, everything between 8
 * and 24 kHz of a 48 kHz microphone would fold back into the speech band
 * (naive decimation); with it, what the server hears is what was said.
 * Upsampling needs no filter: linear interpolation alone.
 */
export class Resampler {
  /** Input samples still needed (filter history and the next positions). */
  #buffer;
  /** Input position of the next output sample, in `#buffer` coordinates. */
  #position;
  /** Filter half-length: samples needed on either side of a position. */
  #half;
  /** @type {Float32Array | null} */
  #kernel;

  /**
   * @param {number} inputRate Hz
   * @param {number} [outputRate] Hz (default 16 kHz)
   */
  constructor(inputRate, outputRate = INPUT_SAMPLE_RATE) {
    if (!(inputRate > 0) || !(outputRate > 0)) throw new RangeError("sample rates must be positive");
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    /** Input samples per output sample. */
    this.step = inputRate / outputRate;
    if (this.step > 1) {
      // Cut a little below the output Nyquist; ~24 taps per output sample
      // leaves the aliases above 8 kHz well below the speech (-70 dB+).
      this.#kernel = lowPassKernel((0.5 * 0.92) / this.step, Math.ceil(this.step * 24) | 1);
      this.#half = (this.#kernel.length - 1) / 2;
    } else {
      this.#kernel = null;
      this.#half = 0;
    }
    // Silence before the first sample, so the first outputs have history.
    this.#buffer = new Float32Array(this.#half);
    this.#position = this.#half;
  }

  /**
   * Convert the next block; returns the output samples it completes (the
   * filter needs a few samples of look-ahead, so output lags input slightly).
   * @param {Float32Array} input
   * @returns {Float32Array}
   */
  process(input) {
    if (this.step === 1) return Float32Array.from(input);
    const buffer = new Float32Array(this.#buffer.length + input.length);
    buffer.set(this.#buffer);
    buffer.set(input, this.#buffer.length);
    const half = this.#half;
    // Output n needs samples up to floor(position) + 1 + half.
    const available = Math.max(0, Math.ceil((buffer.length - 1 - half - this.#position) / this.step));
    const out = new Float32Array(available);
    let produced = 0;
    let position = this.#position;
    while (produced < available) {
      const index = Math.floor(position);
      if (index + 1 + half >= buffer.length) break;
      const fraction = position - index;
      const a = this.#filtered(buffer, index);
      const b = fraction > 0 ? this.#filtered(buffer, index + 1) : a;
      out[produced] = a + (b - a) * fraction;
      produced += 1;
      position += this.step;
    }
    // Keep what the next outputs still need.
    const keepFrom = Math.max(0, Math.floor(position) - half);
    this.#buffer = buffer.slice(keepFrom);
    this.#position = position - keepFrom;
    return produced === available ? out : out.subarray(0, produced);
  }

  /** @param {Float32Array} buffer @param {number} index */
  #filtered(buffer, index) {
    const kernel = this.#kernel;
    if (!kernel) return buffer[index];
    const start = index - this.#half;
    let sum = 0;
    for (let k = 0; k < kernel.length; k += 1) sum += kernel[k] * buffer[start + k];
    return sum;
  }
}
