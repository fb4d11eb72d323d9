// @ts-check
/**
 * @file Compile-time proof that ColloquyChatTransport is an AI SDK
 * `ChatTransport`: tsc fails here if the `ai` package's interface and the
 * transport drift apart. Never executed.
 */

import { ColloquyChatTransport } from "../../../web/ai-sdk-transport.js";

/** @type {import("ai").ChatTransport<import("ai").UIMessage>} */
export const transport = new ColloquyChatTransport({ token: "token" });
