// @ts-check
/**
 * @file The read-only page of a share link, `/s/{share_id}`: the snapshot's
 * title and messages, rendered with the chat's safe Markdown (a reply's
 * tool calls above its text, collapsible as in the chat), and
 * "Continue this conversation", which copies it into the reader's own
 * conversations (as a guest when nobody is signed in on this browser) and
 * opens it in the chat.
 */

import { Api, ApiError } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { renderToolCalls } from "./tool-calls.js";

const api = new Api();
const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const shareId = decodeURIComponent(location.pathname.replace(/^\/s\//, "").replace(/\/$/, ""));

/** @param {string} sender */
const who = (sender) => (sender === "user" ? "User" : "Assistant");

async function show() {
  const title = byId("shared-title");
  const status = byId("shared-status");
  let shared;
  try {
    shared = await api.getShared(shareId);
  } catch (error) {
    title.textContent = "Conversation not found";
    status.textContent =
      error instanceof ApiError && error.status === 404
        ? "This link does not work any more: its owner may have stopped sharing the conversation."
        : error instanceof Error
          ? error.message
          : String(error);
    return;
  }
  title.textContent = shared.title.trim() || "Untitled conversation";
  document.title = `${title.textContent} · Colloquy`;
  byId("shared-date").textContent = `Shared ${new Date(shared.created_at).toLocaleString()}`;
  const list = byId("shared-messages");
  for (const message of shared.messages) {
    const item = document.createElement("li");
    item.className = `shared-message ${message.sender === "user" ? "from-user" : "from-assistant"}`;
    const label = document.createElement("p");
    label.className = "shared-sender";
    label.textContent = who(message.sender);
    const body = document.createElement("div");
    body.className = "shared-body markdown";
    body.appendChild(renderMarkdown(message.content));
    item.append(label);
    /** @type {{ name: string, arguments?: unknown, result?: unknown, error?: { code: string, message: string } }[]} */
    const calls = message.tool_calls ?? [];
    if (calls.length) {
      const runs = calls.map((call, index) => ({
        id: `${list.children.length}:${index}`,
        name: call.name,
        status: /** @type {"done" | "failed"} */ (call.error ? "failed" : "done"),
        arguments: call.arguments,
        result: call.result,
        error: call.error,
      }));
      item.appendChild(renderToolCalls(runs, new Set()));
    }
    item.append(body);
    list.appendChild(item);
  }
  status.textContent = shared.messages.length ? "" : "Nothing was said in this conversation yet.";
  const button = /** @type {HTMLButtonElement} */ (byId("shared-continue"));
  button.hidden = false;
  button.addEventListener("click", () => continueConversation(button));
}

/** @param {HTMLButtonElement} button */
async function continueConversation(button) {
  const error = byId("shared-error");
  button.disabled = true;
  error.hidden = true;
  try {
    if (!api.token) {
      const guest = await api.anonymous();
      api.token = guest.access_token;
      api.anonymousToken = guest.access_token;
    }
    const forked = await api.forkShared(shareId);
    location.assign(`/#/c/${encodeURIComponent(forked.conversation_id)}`);
  } catch (failure) {
    error.textContent = failure instanceof Error ? failure.message : String(failure);
    error.hidden = false;
    button.disabled = false;
  }
}

show();
