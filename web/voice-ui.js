// @ts-check
/**
 * @file Voice mode in the chat UI: the composer's microphone button, the
 * speaker toggle, the level meter and status line, and the glue between
 * {@link MicCapture} / {@link SpeechPlayer} and the conversation's socket.
 *
 * The mic streams 16 kHz chunks as `audio` events; the server's voice
 * activity detection decides when a turn ends, so the user just talks,
 * pauses, and talks again. While voice is on, replies are spoken: the
 * socket is reopened with `tts=1` (the client resumes, nothing is lost).
 * Turning voice off lets the reply being spoken finish; the socket goes
 * back to text-only replies once things are quiet, because reopening it
 * mid-reply would cut that reply short on the server.
 *
 * Typed chat never depends on any of this: when the microphone is refused
 * or missing, an inline message says so and the text box works as always.
 */

import { OUTPUT_SAMPLE_RATE, meterLevel, pcm16ToBase64 } from "./audio-dsp.js";
import { icon } from "./icons.js";
import { MicCapture, SpeechPlayer, VoiceError, voiceUnsupported } from "./voice.js";

/** @typedef {import("./colloquy-client.js").ColloquyClient} ColloquyClient */
/** @typedef {import("./colloquy-client.js").ChatErrorEvent} ChatErrorEvent */

/** @typedef {import("./protocol.js").VoiceConfig} VoiceConfig */

/**
 * What the page shows; also `data-phase` on the panel and the button.
 * @typedef {"idle" | "starting" | "listening" | "hearing" | "processing" | "thinking" | "speaking"} Phase
 */

/** Error codes the voice UI answers inline (the app leaves them alone). */
export const VOICE_ERROR_CODES = Object.freeze(["voice_unavailable", "invalid_audio", "stt_failed"]);

const STATUS_TEXT = /** @type {Record<Phase, string>} */ ({
  idle: "",
  starting: "Starting the microphone…",
  listening: "Listening… just talk, and pause when you're done.",
  hearing: "Hearing you…",
  processing: "Transcribing…",
  thinking: "Thinking…",
  speaking: "Speaking… talk to interrupt.",
});

/** Chunks kept while the socket opens, before anything was sent (~1 s). */
const PREROLL_CHUNKS = 10;
/** Level (RMS) above which the user counts as making sound. */
const LOUD_RMS = 0.02;
/** How long after the last loud level the user still counts as speaking. */
const LOUD_HOLD_MS = 600;
/** A spoken reply counts as over this long after its last audio chunk. */
const AUDIO_TAIL_MS = 1500;
/** Stop waiting for a transcript after this long. */
const TRANSCRIPT_TIMEOUT_MS = 20_000;

/**
 * @typedef {object} VoiceElements
 * @property {HTMLButtonElement} mic
 * @property {HTMLButtonElement} speaker
 * @property {HTMLElement} panel
 * @property {HTMLElement} status
 * @property {HTMLElement} error
 * @property {HTMLElement} errorText
 * @property {HTMLButtonElement} errorClose
 */

/**
 * @typedef {object} VoiceHooks
 * @property {() => ColloquyClient} ensureClient the open conversation's socket, connecting one if needed
 * @property {() => boolean} isBusy whether a reply is being generated
 * @property {() => string[]} busyReplyIds ids of the replies being generated
 * @property {() => void} [onChange] something the composer shows changed (e.g. speaking started or ended)
 * @property {(speak: boolean) => void} [onSpeakChange] the speaker button turned spoken replies on or off (to keep in the settings)
 */

export class VoiceController {
  /** @type {VoiceConfig | null} */
  #config = null;
  /** @type {ColloquyClient | null} */
  #client = null;
  /** @type {(() => void)[]} */
  #unsubscribe = [];
  /** @type {MicCapture | null} */
  #mic = null;
  /** @type {"off" | "starting" | "on"} */
  #micState = "off";
  #speak = true;
  /** The server heard speech that has no transcript yet. */
  #speechPending = false;
  /** The mic was turned off mid-utterance: its transcript is still coming. */
  #awaitingTranscript = false;
  #transcriptTimer = 0;
  /** @type {Int16Array[]} */
  #preroll = [];
  #sentAny = false;
  #lastLoudAt = 0;
  #lastAudioAt = 0;
  #syncTimer = 0;
  #noticeTimer = 0;
  /** A passing message shown instead of the phase's text. */
  #notice = "";
  #meter = 0;
  #player;
  stats = {
    chunksSent: 0,
    secondsSent: 0,
    chunksDropped: 0,
    levelUpdates: 0,
    levelPeak: 0,
    interruptions: 0,
    transcripts: 0,
  };

  /** @param {VoiceElements} elements @param {VoiceHooks} hooks */
  constructor(elements, hooks) {
    this.ui = elements;
    this.hooks = hooks;
    this.#player = new SpeechPlayer({ onIdle: () => this.#onPlaybackIdle() });
    elements.mic.addEventListener("click", () => this.toggleMic());
    elements.speaker.addEventListener("click", () => this.toggleSpeak());
    elements.errorClose.addEventListener("click", () => this.#hideError());
    // Leaving the page (or going into the back/forward cache) releases the mic.
    globalThis.addEventListener?.("pagehide", () => this.shutdown());
    this.#renderSpeaker();
    this.#render();
    this.#exposeStats();
  }

  /**
   * Apply the server's voice settings (`/api/config`): the mic works only
   * when the server says voice is available.
   * @param {VoiceConfig | null | undefined} config
   */
  configure(config) {
    this.#config = config ?? null;
    const available = Boolean(config?.available);
    const { mic, speaker } = this.ui;
    mic.disabled = !available;
    mic.title = available ? "Talk instead of typing" : "Voice input is not available on this server";
    mic.setAttribute("aria-label", available ? "Voice input" : "Voice input (not available on this server)");
    speaker.hidden = !available;
    if (!available && this.#micState !== "off") this.#stopMic(false);
  }

  /** Whether voice input can be used (the server offers it). */
  get available() {
    return Boolean(this.#config?.available);
  }

  /**
   * The `tts` setting a socket should open with: spoken replies while voice
   * is on (and the speaker is not muted). Unknown config: the server decides.
   * @returns {boolean | undefined}
   */
  get wantsTts() {
    if (!this.#config) return undefined;
    if (!this.#config.available) return false;
    return this.#speak && (this.#micState !== "off" || Boolean(this.#config.tts_default));
  }

  /** Whether a spoken reply is playing (the composer offers Stop). */
  get speaking() {
    return this.#player.playing;
  }

  /**
   * Follow `client`, the open conversation's socket (replacing any other).
   * @param {ColloquyClient} client
   */
  attach(client) {
    if (this.#client === client) return;
    this.#detachClient();
    this.#client = client;
    this.#unsubscribe = [
      client.on("ready", () => this.#flushPreroll()),
      client.on("state", (change) => this.#onConnection(change.state)),
      client.on("speech_started", () => this.#onSpeechStarted()),
      client.on("transcript", (event) => this.#onTranscript(event.text)),
      client.on("audio", (event) => this.#onAudio(event.message_id, event.data, event.sample_rate)),
      client.on("interrupted", (event) => {
        this.stats.interruptions += 1;
        this.#player.cut(event.message_id);
        this.#render();
      }),
      client.on("message", () => this.#render()),
      client.on("error", (event) => this.#onError(event)),
    ];
  }

  /**
   * The conversation closed (switched, signed out): everything stops, the
   * microphone and audio contexts are released.
   */
  detach() {
    this.#detachClient();
    this.#stopMic(false);
    this.#player.close().then(() => this.#render());
    this.#render();
  }

  /** Signed out: stop everything and clear what the voice controls show. */
  reset() {
    this.detach();
    this.#hideError();
    clearTimeout(this.#noticeTimer);
    this.#notice = "";
    this.#render();
  }

  /** The page is going away: release the microphone and audio now. */
  shutdown() {
    this.detach();
  }

  /** Turn the microphone on or off. */
  toggleMic() {
    if (this.#micState === "off") this.startMic();
    else this.stopMic();
  }

  /** Turn spoken replies on or off (the speaker button); the app keeps the choice. */
  toggleSpeak() {
    this.setSpeak(!this.#speak);
    this.hooks.onSpeakChange?.(this.#speak);
  }

  /** Speak replies while voice is on, or not (the settings). @param {boolean} speak */
  setSpeak(speak) {
    if (speak === this.#speak) return;
    this.#speak = speak;
    if (!this.#speak) {
      this.#player.stopAll();
      for (const id of this.hooks.busyReplyIds()) this.#player.mute(id);
    }
    this.#renderSpeaker();
    this.#syncTts(false);
    this.#render();
  }

  /** Stop the spoken reply now (the Stop button); its remaining audio is dropped. */
  stopSpeaking() {
    this.#player.stopAll();
    for (const id of this.hooks.busyReplyIds()) this.#player.mute(id);
    this.#render();
  }

  async startMic() {
    if (this.#micState !== "off" || !this.available) return;
    this.#hideError();
    const unsupported = voiceUnsupported();
    if (unsupported) return this.#showError(unsupported.message);
    this.#micState = "starting";
    this.#preroll = [];
    this.#sentAny = false;
    this.stats.levelPeak = 0;
    this.#render();
    // Inside the click: browsers let audio start only after a user gesture.
    if (this.#speak) this.#player.prepare();
    const mic = new MicCapture({
      onChunk: (pcm) => this.#onChunk(mic, pcm),
      onLevel: (level) => this.#onLevel(mic, level),
      onEnded: () => {
        if (this.#mic !== mic) return;
        this.#stopMic(true);
        this.#showError("The microphone stopped (it was disconnected or access was withdrawn). Typing works as usual.");
      },
    });
    this.#mic = mic;
    try {
      await mic.start();
    } catch (error) {
      if (this.#mic !== mic) return;
      this.#mic = null;
      this.#micState = "off";
      this.#render();
      const message = error instanceof VoiceError ? error.message : "The microphone could not be started.";
      if (!(error instanceof VoiceError && error.code === "cancelled")) this.#showError(message);
      return;
    }
    if (this.#mic !== mic) return;
    this.#micState = "on";
    // Speak replies from now on: reopen the socket with tts=1 (nothing has
    // been said yet, so nothing is cut), or open one.
    const client = this.hooks.ensureClient();
    this.attach(client);
    this.#syncTts(true);
    this.#render();
  }

  /** Turn the microphone off; what was said up to now is still transcribed. */
  async stopMic() {
    await this.#stopMic(true);
  }

  // ---- internals ---------------------------------------------------------

  /** @param {boolean} flush hand over the last audio and ask for its transcript */
  async #stopMic(flush) {
    const mic = this.#mic;
    if (!mic) return;
    this.#mic = null;
    const wasOn = this.#micState === "on";
    this.#micState = "off";
    this.#meter = 0;
    this.#render();
    await mic.stop({ flush: flush && wasOn });
    if (flush && wasOn && this.#client?.endAudio() && this.#speechPending) {
      this.#awaitingTranscript = true;
      clearTimeout(this.#transcriptTimer);
      this.#transcriptTimer = window.setTimeout(() => {
        this.#awaitingTranscript = false;
        this.#render();
      }, TRANSCRIPT_TIMEOUT_MS);
    }
    if (!flush) this.#speechPending = false;
    this.#syncTts(false);
    if (!this.#player.playing && !this.#client) this.#player.close();
    this.#render();
  }

  /** @param {MicCapture} mic @param {Int16Array} pcm */
  #onChunk(mic, pcm) {
    if (this.#mic !== mic && this.#mic !== null) return;
    const client = this.#client;
    if (client?.isReady && this.#preroll.length === 0) {
      this.#send(client, pcm);
    } else if (!this.#sentAny && this.#preroll.length < PREROLL_CHUNKS) {
      // The socket is (re)opening for voice: keep the first second.
      this.#preroll.push(pcm);
      if (client?.isReady) this.#flushPreroll();
    } else {
      // Live audio is dropped while the socket is down, never replayed.
      this.stats.chunksDropped += 1;
    }
  }

  #flushPreroll() {
    const client = this.#client;
    if (!client?.isReady) return;
    const chunks = this.#preroll;
    this.#preroll = [];
    for (const pcm of chunks) this.#send(client, pcm);
  }

  /** @param {ColloquyClient} client @param {Int16Array} pcm */
  #send(client, pcm) {
    if (client.sendAudio(pcm16ToBase64(pcm), 16_000)) {
      this.#sentAny = true;
      this.stats.chunksSent += 1;
      this.stats.secondsSent += pcm.length / 16_000;
    } else {
      this.stats.chunksDropped += 1;
    }
  }

  /** @param {MicCapture} mic @param {number} level */
  #onLevel(mic, level) {
    if (this.#mic !== mic) return;
    const now = performance.now();
    if (level > LOUD_RMS) this.#lastLoudAt = now;
    // Rise at once, fall smoothly.
    this.#meter = Math.max(meterLevel(level), this.#meter * 0.75);
    this.stats.levelUpdates += 1;
    this.stats.levelPeak = Math.max(this.stats.levelPeak, this.#meter);
    const value = this.#meter.toFixed(3);
    this.ui.panel.style.setProperty("--level", value);
    this.ui.mic.style.setProperty("--level", value);
    this.#render();
  }

  #onSpeechStarted() {
    this.#speechPending = true;
    // The user talks over the reply: silence it now, not after a round trip.
    if (this.#player.playing) this.#player.stopAll();
    this.#render();
  }

  /** @param {string} text */
  #onTranscript(text) {
    this.stats.transcripts += 1;
    this.#speechPending = false;
    this.#awaitingTranscript = false;
    clearTimeout(this.#transcriptTimer);
    if (!text.trim()) this.#flashNotice("Sorry, I didn't catch that. Please try again.");
    this.#render();
  }

  /** @param {string} messageId @param {string} data @param {number} sampleRate */
  #onAudio(messageId, data, sampleRate) {
    this.#lastAudioAt = performance.now();
    if (!this.#speak) {
      this.#player.mute(messageId);
      return;
    }
    const wasPlaying = this.#player.playing;
    this.#player.play(messageId, data, sampleRate || OUTPUT_SAMPLE_RATE);
    if (wasPlaying !== this.#player.playing) this.hooks.onChange?.();
    this.#render();
  }

  #onPlaybackIdle() {
    this.hooks.onChange?.();
    this.#render();
    // Voice is off and the reply has been spoken: release the output too.
    if (this.#micState === "off") this.#syncTts(false);
  }

  /** @param {ChatErrorEvent} event */
  #onError(event) {
    if (event.message_id || !VOICE_ERROR_CODES.includes(event.code)) return;
    if (event.code === "stt_failed") {
      this.#speechPending = false;
      this.#awaitingTranscript = false;
      this.#flashNotice("Sorry, your speech could not be transcribed. Please try again.");
    } else if (event.code === "voice_unavailable") {
      this.#stopMic(false);
      this.#showError("Voice is not available on this server right now. Typing works as usual.");
    } else {
      this.#stopMic(false);
      this.#showError("The server could not use the microphone's audio. Typing works as usual.");
    }
    this.#render();
  }

  /** @param {import("./colloquy-client.js").ConnectionState} state */
  #onConnection(state) {
    if (state === "reconnecting") {
      // The server dropped this socket's voice pipeline: what it was saying
      // and hearing is gone (the reply was cut to what was heard).
      this.#speechPending = false;
      if (this.#player.playing) this.#player.stopAll();
    } else if (state === "closed") {
      this.#stopMic(false);
      this.#player.close();
    }
    this.#render();
  }

  #detachClient() {
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    this.#client = null;
    this.#preroll = [];
    this.#speechPending = false;
    this.#awaitingTranscript = false;
    clearTimeout(this.#syncTimer);
    clearTimeout(this.#transcriptTimer);
    this.#syncTimer = 0;
  }

  /**
   * Bring the socket's `tts` in line with what is wanted. With `now`, reopen
   * at once; otherwise wait until nothing is being said or spoken, since
   * reopening ends the server's voice pipeline (and cuts a spoken reply).
   * Once voice is off and quiet, the output audio context is closed too.
   * @param {boolean} now
   */
  #syncTts(now) {
    clearTimeout(this.#syncTimer);
    this.#syncTimer = 0;
    const client = this.#client;
    const quiet = this.#quiet();
    if (client) {
      client.setTts(this.wantsTts);
      if (!client.ttsApplied && client.state !== "closed" && client.state !== "idle") {
        if (now || quiet) {
          client.reconnect();
        } else {
          this.#syncTimer = window.setTimeout(() => this.#syncTts(false), 500);
          return;
        }
      }
    }
    if (this.#micState === "off" && !this.#player.playing) {
      if (quiet) this.#player.close().then(() => this.#render());
      else this.#syncTimer = window.setTimeout(() => this.#syncTts(false), 500);
    }
  }

  /** Nothing being said, transcribed, generated or spoken. */
  #quiet() {
    return (
      !this.#speechPending &&
      !this.#awaitingTranscript &&
      !this.hooks.isBusy() &&
      !this.#player.playing &&
      performance.now() - this.#lastAudioAt > AUDIO_TAIL_MS
    );
  }

  /** @returns {Phase} */
  #currentPhase() {
    const now = performance.now();
    if (this.#micState === "starting") return "starting";
    const loud = this.#micState === "on" && now - this.#lastLoudAt < LOUD_HOLD_MS;
    if (this.#speechPending && loud) return "hearing";
    if (this.#speechPending || this.#awaitingTranscript) return "processing";
    if (this.#player.playing) return "speaking";
    if (this.#micState === "on") return this.hooks.isBusy() ? "thinking" : "listening";
    return "idle";
  }

  #render() {
    const phase = this.#currentPhase();
    const { mic, panel, status } = this.ui;
    const on = this.#micState !== "off";
    mic.setAttribute("aria-pressed", String(on));
    mic.dataset.state = this.#micState;
    mic.dataset.phase = phase;
    if (this.available) mic.title = on ? "Stop talking (turn the microphone off)" : "Talk instead of typing";
    if (!on) {
      panel.style.setProperty("--level", "0");
      mic.style.setProperty("--level", "0");
    }
    panel.dataset.phase = phase;
    panel.hidden = phase === "idle" && !this.#notice;
    const text = this.#notice || (phase === "speaking" && !on ? "Speaking…" : STATUS_TEXT[phase]);
    // Only real changes: the line is a live region, read out when it changes.
    if (status.textContent !== text) status.textContent = text;
  }

  /** A short message in the status line (e.g. nothing intelligible was heard). @param {string} text */
  #flashNotice(text) {
    clearTimeout(this.#noticeTimer);
    this.#notice = text;
    this.#noticeTimer = window.setTimeout(() => {
      this.#notice = "";
      this.#render();
    }, 3500);
    this.#render();
  }

  /** @param {string} text */
  #showError(text) {
    this.ui.errorText.textContent = text;
    this.ui.error.hidden = false;
  }

  #hideError() {
    this.ui.error.hidden = true;
  }

  #renderSpeaker() {
    const { speaker } = this.ui;
    speaker.setAttribute("aria-pressed", String(this.#speak));
    speaker.title = this.#speak ? "Replies are spoken while voice is on (click to mute)" : "Spoken replies are muted (click to unmute)";
    speaker.replaceChildren(icon(this.#speak ? "volume" : "volume-off", 17));
  }

  /**
   * A read-only snapshot for tests and debugging:
   * `window.colloquyVoiceStats`.
   */
  #exposeStats() {
    const target = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (globalThis));
    Object.defineProperty(target, "colloquyVoiceStats", {
      configurable: true,
      enumerable: false,
      get: () =>
        Object.freeze({
          ...this.stats,
          level: this.#meter,
          mic: this.#micState,
          phase: this.#currentPhase(),
          speak: this.#speak,
          chunks: this.#player.stats.chunks,
          scheduledSeconds: this.#player.stats.scheduledSeconds,
          chunksMuted: this.#player.stats.dropped,
          sourcesStopped: this.#player.stats.stopped,
          playing: this.#player.playing,
          inputContext: this.#mic?.contextState ?? "none",
          outputContext: this.#player.contextState,
          tts: this.#client?.options.tts,
        }),
    });
  }
}
