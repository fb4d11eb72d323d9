// @ts-check
/**
 * @file The chat UI at `/`: wires the sign-in screen, the conversation list,
 * the message view and the composer to the HTTP API and one
 * {@link ColloquyClient} socket per open conversation.
 *
 * The open conversation lives in the URL (`#/c/<id>`), so a reload comes
 * back to it: its stored messages load over HTTP, then the socket resumes
 * after the last stored `seq`, which replays a reply still in progress.
 *
 * Voice (when the server offers it) lives in `voice-ui.js`; this file only
 * hands it the open conversation's socket.
 */

import { Api, ApiError, isRetryable } from "./api.js";
import { Account } from "./account.js";
import { AuthView } from "./auth.js";
import { Branches } from "./branches.js";
import { ChatView } from "./chat-view.js";
import { ConnectionBadge } from "./connection-badge.js";
import { backoffDelay, ColloquyClient } from "./colloquy-client.js";
import { Composer } from "./composer.js";
import { ConversationState, isBusy } from "./conversation-state.js";
import { ask } from "./dialog.js";
import { Drawer } from "./drawer.js";
import { wireExport } from "./export.js";
import { Notice } from "./notice.js";
import { showRefusal } from "./refusal.js";
import { Sidebar, displayTitle } from "./sidebar.js";
import { fillIcons } from "./icons.js";
import { wireMessageActions } from "./message-actions.js";
import { ConversationSearch } from "./search.js";
import { wirePreferences } from "./preferences.js";
import { Settings } from "./settings.js";
import { wireShare } from "./share.js";
import { StreakBadge } from "./streak.js";
import { wireSummary } from "./summary-view.js";
import { UpgradeNudge } from "./upgrade-nudge.js";
import { VOICE_ERROR_CODES, VoiceController } from "./voice-ui.js";

/** @typedef {import("./api.js").User} User */

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const api = new Api();
const settings = new Settings();
const ui = {
  chat: byId("chat-view"),
  title: byId("chat-title"),
  messages: byId("messages"),
  confirm: /** @type {HTMLDialogElement} */ (byId("confirm-dialog")),
};

const notice = new Notice(byId("notice"), byId("notice-text"), byId("notice-close"), () => composer.focus());
const nudge = new UpgradeNudge(byId("upgrade-nudge"), api);
const drawer = new Drawer({
  chat: ui.chat,
  sidebar: byId("sidebar"),
  rest: [/** @type {HTMLElement} */ (document.querySelector("main.main")), /** @type {HTMLElement} */ (document.querySelector(".skip-link"))],
  scrim: byId("scrim"),
  menu: byId("menu-button"),
  close: byId("close-sidebar"),
});
const composer = new Composer(
  {
    form: /** @type {HTMLFormElement} */ (byId("composer")),
    input: /** @type {HTMLTextAreaElement} */ (byId("input")),
    send: /** @type {HTMLButtonElement} */ (byId("send-button")),
    stop: byId("stop-button"),
    count: byId("char-count"),
    error: byId("composer-error"),
    hint: byId("composer-hint"),
  },
  {
    send: (text) => send(text),
    stop: () => stopReply(),
    stoppable: () => state.busy || voice.speaking,
  },
);
const badge = new ConnectionBadge(byId("conn-badge"), byId("reconnect-button"), () => client?.reconnect());
const view = new ChatView(ui.messages, byId("message-list"), byId("empty-state"), byId("announcer"));
const sidebar = new Sidebar(byId("conversation-list"), {
  open: (id) => {
    drawer.close();
    navigate(id);
  },
  rename: renameConversation,
  remove: confirmDelete,
});
const search = new ConversationSearch(/** @type {HTMLInputElement} */ (byId("conversation-search")), byId("search-status"), () => refreshList());
const headerMenu = { button: /** @type {HTMLButtonElement} */ (byId("export-button")), menu: byId("export-menu") };
// A new chat is stored with its first message: nothing to export or share before.
const storedId = () => (state.lastSeq > 0 ? currentId : null);
wireExport(headerMenu, { api, currentId: storedId, failed: handleApiError });
wireShare(headerMenu, { api, currentId: storedId, notify: showNotice, failed: handleApiError });
wireSummary({ ...headerMenu, dialog: /** @type {HTMLDialogElement} */ (byId("summary-dialog")) }, { api, currentId: storedId, failed: handleApiError });
const streak = new StreakBadge(byId("streak"), api);
const branches = new Branches({
  api,
  conversationId: storedId,
  state: () => state,
  client: () => client,
  canSend: (text) => Boolean(text.trim()) && !composer.refusal(text),
  send,
  show: showPath,
  removed: (ids) => ids.forEach((id) => view.remove(id)),
  failed: handleApiError,
  notify: (text) => showNotice(text),
  model: () => picker.model,
});
const voice = new VoiceController(
  {
    mic: /** @type {HTMLButtonElement} */ (byId("mic-button")),
    speaker: /** @type {HTMLButtonElement} */ (byId("speaker-button")),
    panel: byId("voice-panel"),
    status: byId("voice-status"),
    error: byId("voice-error"),
    errorText: byId("voice-error-text"),
    errorClose: /** @type {HTMLButtonElement} */ (byId("voice-error-close")),
  },
  {
    ensureClient: () => client ?? connect(currentId, currentId ? state.lastSeq : undefined),
    isBusy: () => state.busy,
    busyReplyIds: () => state.messages.filter(isBusy).map((m) => m.id),
    onChange: () => composer.update(),
    onSpeakChange: (speakReplies) => settings.set({ speakReplies }),
  },
);
const account = new Account(
  {
    name: byId("account-name"),
    avatar: byId("account-avatar"),
    claim: byId("claim-button"),
    signOut: byId("signout-button"),
    dialog: ui.confirm,
  },
  {
    signOut: () => signOut(),
    claim: () => {
      drawer.close({ focus: false });
      ui.chat.hidden = true;
      auth.show({ mode: "register", claiming: true });
    },
    conversations: () => sidebar.conversations.length,
  },
);
const auth = new AuthView(api, onSignedIn, () => {
  auth.hide();
  ui.chat.hidden = false;
  composer.focus();
});

/** @type {User | null} */
let user = null;
/** @type {ColloquyClient | null} */
let client = null;
let state = new ConversationState();
/** The open conversation; null for a new chat not yet created. */
let currentId = /** @type {string | null} */ (null);
/** A new chat's id (from `ready`) until its first ack stores it; the URL stays bare meanwhile. */
let unlistedId = /** @type {string | null} */ (null);
/**
 * Bumped whenever the signed-in person changes: an answer to a request
 * made for an earlier session (a list, a retry) is dropped, never shown.
 */
let epoch = 0;

// ---- boot --------------------------------------------------------------

fillIcons();
const { panel: settingsPanel, picker } = wirePreferences(settings, { composer, voice });
view.reset(state);
boot();

/** Backoff of the HTTP retries, the same as the socket's. @param {number} attempt */
const retryDelay = (attempt) => backoffDelay(attempt, 500, 10_000);

async function boot(attempt = 0) {
  const session = epoch;
  if (!api.token) {
    auth.show();
    return;
  }
  let me;
  try {
    me = await api.me();
  } catch (error) {
    if (session !== epoch) return;
    if (isRetryable(error)) {
      // Only a 401 ends the session; the server being down does not.
      const delayMs = retryDelay(attempt);
      ui.chat.hidden = false;
      badge.show({ state: "reconnecting", attempt: attempt + 1, delayMs });
      showNotice("The server is unavailable right now; retrying…", "connection");
      setTimeout(() => session === epoch && boot(attempt + 1), delayMs);
      return;
    }
    // A session the server no longer knows is over: as signing out.
    if (error instanceof ApiError && error.status === 401) return signOut();
    ui.chat.hidden = true;
    auth.show({ message: error instanceof ApiError ? error.message : undefined });
    return;
  }
  if (session !== epoch) return;
  user = me;
  settings.use(me.id);
  if (attempt > 0) {
    hideNotice();
    badge.show({ state: "idle" });
  }
  await showChat();
}

/** @param {User} signedIn @param {string} [note] */
async function onSignedIn(signedIn, note) {
  // Someone new (or a guest who just made an account): start clean. The
  // URL is kept, so a claimed conversation stays open.
  forgetSession();
  user = signedIn;
  settings.use(signedIn.id);
  auth.hide();
  await showChat();
  if (note) showNotice(note, "success");
}

async function showChat() {
  ui.chat.hidden = false;
  account.show(user);
  loadConfig();
  await refreshList();
  await route();
  composer.focus();
}

// ---- conversations -------------------------------------------------------

/** The conversation id in the URL, if any. */
function idFromHash() {
  const match = /^#\/c\/([0-9a-fA-F-]{36})$/.exec(location.hash);
  return match ? match[1] : null;
}

/** @param {string | null} id */
function navigate(id) {
  const hash = id ? `#/c/${id}` : "";
  // Asked for a new chat: the one not stored yet is left too.
  if (!id) unlistedId = null;
  if (location.hash === hash || (!id && !location.hash)) {
    route();
  } else if (id) {
    location.hash = hash;
  } else {
    history.pushState(null, "", location.pathname);
    route();
  }
}

window.addEventListener("hashchange", () => route());
window.addEventListener("popstate", () => route());

async function route() {
  if (ui.chat.hidden) return;
  const id = idFromHash() ?? unlistedId;
  if (id === currentId && (client || !id)) return;
  if (id) await openConversation(id);
  else newChat();
}

/** What the server offers (voice, models, limits); the chat works without it. */
async function loadConfig() {
  /** @type {import("./api.js").ClientConfig} */
  const config = await api.config().catch(() => ({}));
  voice.configure(config.voice);
  settingsPanel.configure(config.voice);
  picker.configure(config.models);
  composer.setLimit(config.limits?.max_message_chars);
  nudge.configure(config.billing);
}

async function refreshList() {
  const session = epoch;
  streak.refresh();
  try {
    // While the search field holds text the list shows its matches.
    const query = search.query;
    const { conversations } = query ? await api.searchConversations(query) : await api.listConversations();
    if (session !== epoch || query !== search.query) return;
    sidebar.set(conversations, query ? "No conversations match" : undefined);
    search.showing(sidebar.conversations.length);
    const current = conversations.find((c) => c.id === currentId);
    if (current) setTitle(displayTitle(current));
  } catch (error) {
    if (session === epoch) handleApiError(error);
  }
}

/** Refresh the list soon (titles change when a first message is stored). */
let refreshTimer = 0;
function refreshListSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = window.setTimeout(refreshList, 250);
}

/** @param {string} title */
function setTitle(title) {
  ui.title.textContent = title;
  document.title = title === "New chat" ? "Colloquy" : `${title} · Colloquy`;
}

function newChat() {
  closeClient();
  currentId = null;
  unlistedId = null;
  state = new ConversationState();
  view.reset(state);
  sidebar.setActive(null);
  setTitle("New chat");
  hideNotice();
  composer.update();
}

/** @param {string} id @param {number} [attempt] retries so far after server trouble */
async function openConversation(id, attempt = 0) {
  const session = epoch;
  closeClient();
  currentId = id;
  unlistedId = null;
  sidebar.setActive(id);
  hideNotice();
  state = new ConversationState();
  view.reset(state);
  try {
    const conversation = await api.getConversation(id);
    if (currentId !== id || session !== epoch) return;
    setTitle(displayTitle(conversation));
    showPath(conversation);
    connect(id, state.lastSeq);
  } catch (error) {
    if (currentId !== id || session !== epoch) return;
    if (error instanceof ApiError && error.status === 404) {
      showNotice("That conversation does not exist (or was deleted).");
      navigate(null);
    } else if (isRetryable(error)) {
      const delayMs = retryDelay(attempt);
      badge.show({ state: "reconnecting", attempt: attempt + 1, delayMs });
      showNotice("The server is unavailable right now; retrying…", "connection");
      setTimeout(() => {
        if (currentId === id && !client && session === epoch) openConversation(id, attempt + 1);
      }, delayMs);
    } else {
      handleApiError(error);
    }
  }
  composer.update();
}

/** @param {string} id @param {string} title */
async function renameConversation(id, title) {
  try {
    await api.renameConversation(id, title);
  } catch (error) {
    handleApiError(error);
  }
  await refreshList();
}

/** @param {string} id @param {string} title */
async function confirmDelete(id, title) {
  const answer = await ask(ui.confirm, {
    title: "Delete conversation?",
    text: `“${title}” and all its messages will be deleted.`,
    answers: [
      { value: "cancel", label: "Cancel" },
      { value: "ok", label: "Delete", kind: "danger" },
    ],
  });
  if (answer !== "ok") return;
  const session = epoch;
  try {
    await api.deleteConversation(id);
  } catch (error) {
    handleApiError(error);
  }
  if (session !== epoch) return;
  if (id === currentId) navigate(null);
  await refreshList();
  composer.focus();
}

// ---- the socket ----------------------------------------------------------

/**
 * Open the socket for `id` (or for a conversation the server creates).
 * @param {string | null} id
 * @param {number} [lastSeq]
 * @returns {ColloquyClient}
 */
function connect(id, lastSeq) {
  const socket = new ColloquyClient({
    token: () => api.token ?? "",
    conversationId: id ?? undefined,
    lastSeq,
    tts: voice.wantsTts,
  });
  client = socket;
  voice.attach(socket);
  const live = () => client === socket;
  socket.on("state", (change) => {
    if (!live()) return;
    badge.show(change);
    if (change.state === "open" && notice.kind === "connection") {
      // Back online: what failed meanwhile is moot; catch the list up.
      notice.hide("connection");
      refreshListSoon();
    }
  });
  socket.on("ready", (event) => {
    if (!live() || currentId) return;
    // Stored only with its first message: until that ack a reload opens a new chat.
    currentId = unlistedId = event.conversation_id;
  });
  socket.on("event", (event) => {
    if (!live()) return;
    if (event.type === "ack" && currentId && currentId === unlistedId) {
      unlistedId = null;
      history.replaceState(null, "", `#/c/${currentId}`);
      sidebar.setActive(currentId);
    }
    const { changed, structural } = state.apply(event);
    if (changed.length) view.update(changed, structural || event.type === "message");
    branches.observe(event);
    if (event.type === "ack" || event.type === "message") refreshListSoon();
    composer.update();
  });
  // Another tab or device changed the list: keep ours current.
  socket.on("conversation", (event) => {
    if (!live()) return;
    if (event.action === "deleted" && event.conversation_id === currentId) {
      showNotice("This conversation was deleted elsewhere.");
      navigate(null);
    }
    refreshListSoon();
  });
  socket.on("error", (event) => {
    if (live() && event.code === "quota_exceeded") nudge.showFor(event);
    // Voice errors are shown by the voice controls, next to the mic; a
    // refused text (client_id) with the text ("rejected" below).
    if (!live() || event.message_id || event.client_id || VOICE_ERROR_CODES.includes(event.code)) return;
    showNotice(event.message);
  });
  socket.on("rejected", ({ client_id, content, error }) => refused(client_id, content, error));
  socket.on("resync", (conversation) => live() && showPath(conversation));
  socket.on("fatal", ({ reason }) => {
    if (!live()) return;
    if (/auth/i.test(reason)) signOut("Your session has expired. Please sign in again.");
    else showNotice(reason || "The server refused this conversation.");
  });
  socket.connect();
  return socket;
}

function closeClient() {
  branches.reset();
  voice.detach();
  client?.disconnect();
  client = null;
  badge.show({ state: "idle" });
}


// ---- sending ---------------------------------------------------------------

/**
 * @param {string} text @param {{ parentId?: string | null }} [options] `parentId`: an edit's (see branches.js)
 * @returns {boolean} whether it was sent
 */
function send(text, options = {}) {
  if (!text.trim()) return false;
  // Too long for the server: say so here instead of sending it to be refused.
  const refusal = composer.refusal(text);
  if (refusal) {
    composer.showError(refusal);
    return false;
  }
  notice.hide();
  const socket = client ?? connect(currentId, currentId ? state.lastSeq : undefined);
  const clientId = socket.send(text, { model: picker.model, parentId: options.parentId });
  view.update([state.addLocal(clientId, text)], true);
  composer.update();
  return true;
}

/** The server refused a text (see refusal.js). @param {string} clientId @param {string} content @param {{ code: string, message: string }} error */
function refused(clientId, content, error) {
  showRefusal({ composer, state, view }, clientId, content, error);
}

/** Send a failed text again, in its place. @param {import("./conversation-state.js").UiMessage} message */
function retry(message) {
  if (state.remove(message.id)) view.remove(message.id);
  send(message.content);
}

/** Stop the reply: its generation and its speech. */
function stopReply() {
  voice.stopSpeaking();
  if (state.busy) client?.stop();
}

byId("new-chat").addEventListener("click", () => {
  drawer.close();
  navigate(null);
  composer.focus();
});
for (const button of document.querySelectorAll(".suggestion")) {
  button.addEventListener("click", () => {
    composer.value = button.textContent ?? "";
    composer.focus();
  });
}

/**
 * Show a conversation's path as loaded (a branch switch, a reload after an
 * edit); `focus` names a message's control to give focus back to.
 * @param {import("./protocol.js").StoredConversation} conversation
 * @param {{ id: string, action: string }} [focus]
 */
function showPath(conversation, focus) {
  state.load(conversation.messages, conversation.tool_calls, conversation.last_seq);
  view.reset(state);
  composer.update();
  if (focus) requestAnimationFrame(() => view.focusBranchStep(focus.id, focus.action));
}


wireMessageActions(ui.messages, {
  state: () => state,
  view,
  send,
  edit: (message, text) => branches.edit(message, text),
  regenerate: (id) => branches.regenerate(id),
  switchBranch: (target, action) => branches.switchTo(target, action),
  retry,
  done: () => composer.focus(),
  sendOnEnter: () => settings.values.sendOnEnter,
});

// ---- account, drawer, notices ----------------------------------------------


/**
 * Sign out: nothing of this session may outlive it on this browser, for
 * the next person to sign in here.
 * @param {string} [message] why (e.g. the session expired)
 */
function signOut(message) {
  forgetSession();
  api.clearSession();
  ui.chat.hidden = true;
  history.replaceState(null, "", location.pathname);
  auth.reset();
  auth.show({ message });
}

/**
 * Drop every piece of client state of the session: its socket (and the
 * texts queued on it), voice, the open conversation and its view, the
 * list, the draft, notices, the drawer, and answers still on their way.
 */
function forgetSession() {
  epoch += 1;
  clearTimeout(refreshTimer);
  closeClient();
  voice.reset();
  user = null;
  currentId = null;
  unlistedId = null;
  state = new ConversationState();
  view.reset(state);
  sidebar.clear();
  streak.clear();
  search.clear();
  setTitle("New chat");
  notice.hide();
  composer.value = "";
  drawer.close({ focus: false });
  if (ui.confirm.open) ui.confirm.close();
  settingsPanel.close();
  settings.forget();
  account.clear();
}

/** @param {unknown} error */
function handleApiError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your session has expired. Please sign in again.");
  } else if (error instanceof ApiError && error.status === 0) {
    // Gone with the network: cleared once the socket is back.
    showNotice(error.message, "connection");
  } else {
    showNotice(error instanceof Error ? error.message : String(error));
  }
}

// Declarations, not constants: the wiring at the top of the module uses them.
/** @param {string} text @param {import("./notice.js").NoticeKind} [kind] */
function showNotice(text, kind) { notice.show(text, kind); }
function hideNotice() { notice.hide(); }

// The skip link must not touch the URL: the hash names the conversation.
document.querySelector(".skip-link")?.addEventListener("click", (event) => {
  event.preventDefault();
  composer.focus();
});
