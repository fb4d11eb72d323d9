// @ts-check
/**
 * @file The browser's audio for voice chat, without any page UI:
 *
 * - {@link MicCapture}: the microphone (echo cancellation, noise suppression
 *   and gain control on) into an AudioWorklet (`audio-capture-worklet.js`)
 *   that resamples to 16 kHz, converts to PCM16 and hands over ~100 ms
 *   chunks and a loudness level;
 * - {@link SpeechPlayer}: gapless playback of the spoken reply's 24 kHz PCM16
 *   chunks, each scheduled right after the previous one, stoppable at once
 *   (the user spoke over it, or pressed Stop).
 *
 * Both release everything they hold when stopped: microphone tracks are
 * stopped, nodes disconnected and audio contexts closed (a live track keeps
 * the browser's recording indicator on; an open context keeps audio
 * hardware busy).
 */

import { base64ToPcm16, pcm16ToFloat } from "./audio-dsp.js";

/** The microphone settings voice chat asks for. */
export const MIC_CONSTRAINTS = Object.freeze({
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
});

/** Where the capture worklet is served. */
const WORKLET_URL = "/audio-capture-worklet.js";

/** The AudioContext constructor, when this browser has one. */
function audioContextClass() {
  const scope = /** @type {{ AudioContext?: typeof AudioContext, webkitAudioContext?: typeof AudioContext }} */ (
    /** @type {unknown} */ (globalThis)
  );
  return scope.AudioContext ?? scope.webkitAudioContext;
}

/** A reason voice input cannot work here, shown to the user as is. */
export class VoiceError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * Why voice input cannot work in this page, or null when it can.
 * @returns {VoiceError | null}
 */
export function voiceUnsupported() {
  if (globalThis.isSecureContext === false) {
    return new VoiceError("insecure", "Voice input needs a secure (HTTPS) connection. You can keep typing.");
  }
  if (!globalThis.navigator?.mediaDevices?.getUserMedia) {
    return new VoiceError("unsupported", "This browser has no microphone access. You can keep typing.");
  }
  if (!audioContextClass() || typeof globalThis.AudioWorkletNode !== "function") {
    return new VoiceError("unsupported", "This browser cannot process microphone audio. You can keep typing.");
  }
  return null;
}

/**
 * What went wrong opening the microphone, in words for the user.
 * @param {unknown} error
 * @returns {VoiceError}
 */
export function micError(error) {
  if (error instanceof VoiceError) return error;
  const name = error instanceof Error || error instanceof DOMException ? error.name : "";
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return new VoiceError(
        "denied",
        "Microphone access is blocked. To talk, allow the microphone for this site in your browser's settings; typing works as usual.",
      );
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return new VoiceError("no_device", "No microphone was found. Connect one to talk; typing works as usual.");
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return new VoiceError(
        "busy",
        "The microphone could not be started (another app may be using it). Typing works as usual.",
      );
    default:
      return new VoiceError("failed", "The microphone could not be started. Typing works as usual.");
  }
}

/**
 * @typedef {object} CaptureHandlers
 * @property {(pcm: Int16Array, rms: number) => void} onChunk ~100 ms of 16 kHz PCM16
 * @property {(rms: number) => void} [onLevel] loudness (RMS, 0..1), ~20 times a second
 * @property {() => void} [onEnded] the microphone went away (unplugged, permission revoked)
 */

/** The microphone, as 16 kHz PCM16 chunks. One use: start, then stop. */
export class MicCapture {
  /** @type {AudioContext | null} */
  #context = null;
  /** @type {MediaStream | null} */
  #stream = null;
  /** @type {MediaStreamAudioSourceNode | null} */
  #source = null;
  /** @type {AudioWorkletNode | null} */
  #node = null;
  #stopped = false;

  /** @param {CaptureHandlers} handlers */
  constructor(handlers) {
    this.handlers = handlers;
  }

  /** The audio context's state, for diagnostics ("none" before start). */
  get contextState() {
    return this.#context?.state ?? "none";
  }

  /** The microphone's tracks (ended once stopped). */
  get tracks() {
    return this.#stream?.getTracks() ?? [];
  }

  /**
   * Ask for the microphone and start capturing. Rejects with a
   * {@link VoiceError} saying what went wrong (nothing is left open).
   * Call from a user gesture: the audio context may start only then.
   */
  async start() {
    const unsupported = voiceUnsupported();
    if (unsupported) throw unsupported;
    const Context = /** @type {typeof AudioContext} */ (audioContextClass());
    try {
      // Created before awaiting the permission prompt, while the click that
      // asked for it still counts as a user gesture. The device's own rate:
      // the worklet resamples (supported everywhere, unlike mixed rates).
      this.#context = new Context({ latencyHint: "interactive" });
      const loading = this.#context.audioWorklet.addModule(WORKLET_URL);
      // Awaited below, unless the permission is refused first: never unhandled.
      loading.catch(() => {});
      this.#stream = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
      await loading;
      if (this.#stopped) throw new VoiceError("cancelled", "The microphone was turned off.");
      const context = this.#context;
      this.#source = context.createMediaStreamSource(this.#stream);
      this.#node = new AudioWorkletNode(context, "colloquy-capture", {
        numberOfInputs: 1,
        // One silent output, connected: a node without a path to the
        // destination is not pulled (processed) by every browser.
        numberOfOutputs: 1,
        outputChannelCount: [1],
        channelCount: 1,
        channelCountMode: "explicit",
        channelInterpretation: "speakers",
      });
      this.#node.port.onmessage = (event) => this.#onMessage(event.data);
      this.#source.connect(this.#node);
      this.#node.connect(context.destination);
      for (const track of this.#stream.getAudioTracks()) {
        track.addEventListener("ended", () => {
          if (!this.#stopped) this.handlers.onEnded?.();
        });
      }
      if (context.state !== "running") await context.resume();
    } catch (error) {
      await this.#release();
      throw micError(error);
    }
  }

  /**
   * Stop capturing and release the microphone. With `flush`, the audio of
   * the last partial chunk is handed over first (what was said just before
   * the click still counts).
   * @param {{ flush?: boolean }} [options]
   */
  async stop(options = {}) {
    if (this.#stopped) return;
    this.#stopped = true;
    const node = this.#node;
    if (options.flush && node && this.#context?.state === "running") {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 250);
        node.port.addEventListener("message", (event) => {
          if (event.data?.type === "flushed") {
            clearTimeout(timer);
            resolve(undefined);
          }
        });
        node.port.postMessage({ type: "flush" });
      });
    }
    await this.#release();
  }

  /** @param {any} data */
  #onMessage(data) {
    if (this.#stopped && data?.type !== "chunk") return;
    if (data?.type === "chunk") this.handlers.onChunk(new Int16Array(data.pcm), data.rms);
    else if (data?.type === "level") this.handlers.onLevel?.(data.rms);
  }

  async #release() {
    this.#stopped = true;
    const node = this.#node;
    if (node) {
      node.port.postMessage({ type: "stop" });
      node.port.onmessage = null;
      node.port.close();
      node.disconnect();
    }
    this.#source?.disconnect();
    for (const track of this.#stream?.getTracks() ?? []) track.stop();
    this.#node = null;
    this.#source = null;
    const context = this.#context;
    if (context && context.state !== "closed") await context.close().catch(() => {});
  }
}

/**
 * @typedef {object} PlayerStats
 * @property {number} chunks audio chunks scheduled
 * @property {number} scheduledSeconds audio scheduled in total
 * @property {number} dropped chunks dropped (muted reply, undecodable)
 * @property {number} stopped sources stopped before their end
 */

/** A scheduled piece of a reply. */
/** @typedef {{ node: AudioBufferSourceNode, messageId: string, end: number }} Scheduled */

/**
 * Gapless playback of spoken replies. Chunks are PCM16 at any rate; each
 * starts exactly where the previous one ends (`max(now, end of queue)`), so
 * a steady stream plays without clicks, and a late chunk starts at once.
 */
export class SpeechPlayer {
  /** @type {AudioContext | null} */
  #context = null;
  /** Context time where the next chunk starts. */
  #nextStart = 0;
  /** @type {Set<Scheduled>} */
  #scheduled = new Set();
  /** Replies whose audio is no longer wanted (spoken over, stopped, muted). */
  #muted = /** @type {Set<string>} */ (new Set());
  /** @type {PlayerStats} */
  stats = { chunks: 0, scheduledSeconds: 0, dropped: 0, stopped: 0 };

  /** @param {{ onIdle?: () => void }} [hooks] `onIdle`: the last scheduled chunk finished */
  constructor(hooks = {}) {
    this.hooks = hooks;
  }

  /** The output context's state ("none" when there is none). */
  get contextState() {
    return this.#context?.state ?? "none";
  }

  /** Whether audio is playing or scheduled. */
  get playing() {
    return this.#scheduled.size > 0;
  }

  /** Ids of the replies with audio playing or scheduled. */
  get playingIds() {
    return [...new Set([...this.#scheduled].map((s) => s.messageId))];
  }

  /**
   * Create (or wake) the output context. Call from a user gesture when you
   * can: browsers start audio only after one.
   */
  prepare() {
    const Context = audioContextClass();
    if (!Context) return null;
    if (!this.#context || this.#context.state === "closed") {
      this.#context = new Context({ latencyHint: "interactive" });
      this.#nextStart = 0;
    }
    if (this.#context.state === "suspended") this.#context.resume().catch(() => {});
    return this.#context;
  }

  /**
   * Schedule one chunk of reply `messageId`: base64 PCM16 LE at `sampleRate`.
   * Returns whether it was scheduled.
   * @param {string} messageId
   * @param {string} data
   * @param {number} sampleRate
   */
  play(messageId, data, sampleRate) {
    if (this.#muted.has(messageId)) {
      this.stats.dropped += 1;
      return false;
    }
    let samples;
    try {
      samples = pcm16ToFloat(base64ToPcm16(data));
    } catch {
      this.stats.dropped += 1;
      return false;
    }
    const context = this.prepare();
    if (!context || samples.length === 0 || !(sampleRate > 0)) {
      this.stats.dropped += 1;
      return false;
    }
    const buffer = context.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples, 0);
    const node = context.createBufferSource();
    node.buffer = buffer;
    node.connect(context.destination);
    // After a gap (first chunk, or the stream ran dry) start a hair later
    // than "now": a start in the past would clip the chunk's beginning.
    const now = context.currentTime;
    const start = this.#nextStart > now ? this.#nextStart : now + 0.02;
    node.start(start);
    this.#nextStart = start + buffer.duration;
    /** @type {Scheduled} */
    const scheduled = { node, messageId, end: this.#nextStart };
    this.#scheduled.add(scheduled);
    node.onended = () => {
      node.disconnect();
      if (this.#scheduled.delete(scheduled) && this.#scheduled.size === 0) this.hooks.onIdle?.();
    };
    this.stats.chunks += 1;
    this.stats.scheduledSeconds += buffer.duration;
    return true;
  }

  /**
   * Drop everything of `messageId` from now on: what is scheduled stops at
   * once and later chunks are ignored.
   * @param {string} messageId
   */
  cut(messageId) {
    this.#muted.add(messageId);
    this.#stopWhere((s) => s.messageId === messageId);
  }

  /** Stop all audio now; the replies it belonged to stay silent. */
  stopAll() {
    for (const id of this.playingIds) this.#muted.add(id);
    this.#stopWhere(() => true);
  }

  /** Ignore any audio of `messageId` that arrives from now on. @param {string} messageId */
  mute(messageId) {
    this.#muted.add(messageId);
  }

  /** Stop everything and close the output context. */
  async close() {
    this.#stopWhere(() => true);
    const context = this.#context;
    this.#context = null;
    this.#nextStart = 0;
    if (context && context.state !== "closed") await context.close().catch(() => {});
  }

  /** @param {(s: Scheduled) => boolean} predicate */
  #stopWhere(predicate) {
    let any = false;
    for (const scheduled of [...this.#scheduled]) {
      if (!predicate(scheduled)) continue;
      this.#scheduled.delete(scheduled);
      scheduled.node.onended = null;
      try {
        scheduled.node.stop();
      } catch {
        // Not started yet in some engines: disconnecting silences it anyway.
      }
      scheduled.node.disconnect();
      this.stats.stopped += 1;
      any = true;
    }
    // Whatever comes next starts now, not after the audio just dropped.
    if (this.#scheduled.size === 0) {
      this.#nextStart = 0;
      if (any) this.hooks.onIdle?.();
    } else {
      this.#nextStart = Math.max(...[...this.#scheduled].map((s) => s.end));
    }
  }
}
