// @ts-check
/**
 * @file The HTTP half of the API (sign-in, conversations), with the token
 * kept in localStorage. Errors become {@link ApiError}s carrying the
 * server's stable `code`, so the UI can react to `unauthorized` and show
 * the server's message in place.
 */

/** @typedef {import("./colloquy-client.js").StoredConversation} StoredConversation */

/**
 * @typedef {object} User
 * @property {string} id
 * @property {string | null} [email]
 * @property {string | null} [full_name]
 * @property {boolean} is_anonymous
 */
/**
 * @typedef {object} TokenResponse
 * @property {string} access_token
 * @property {number} expires_in
 * @property {User} user
 */
/**
 * What `GET /api/config` says about this server (the parts the UI uses).
 * @typedef {object} ClientConfig
 * @property {import("./protocol.js").VoiceConfig} [voice]
 * @property {import("./protocol.js").ModelsConfig} [models]
 * @property {{ max_message_chars?: number }} [limits]
 * @property {{ checkout?: boolean, plans?: string[] }} [billing] the plans for sale
 */
/**
 * A message of a shared snapshot; a reply lists the tool calls it made.
 * @typedef {object} SharedMessage
 * @property {string} sender
 * @property {string} content
 * @property {string} created_at
 * @property {{ name: string, arguments?: unknown, result?: unknown, error?: { code: string, message: string } }[]} [tool_calls]
 */
/**
 * A conversation's stored summary (`/api/conversations/{id}/summary`).
 * @typedef {object} Summary
 * @property {string} summary
 * @property {string} through_message_id the newest message it covers
 * @property {string} updated_at
 */
/**
 * @typedef {object} ConversationSummary
 * @property {string} id
 * @property {string} title
 * @property {number} last_seq
 * @property {string} started_at
 * @property {string} updated_at
 */

const TOKEN_KEY = "colloquy.token";
/** The token of the anonymous session to claim after signing in. */
const ANONYMOUS_TOKEN_KEY = "colloquy.anonymousToken";

/** An error answered by the server (or the network). */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Whether a failed request is the server's (or the network's) trouble, to
 * be retried with the session kept: no answer, 429, or a 5xx.
 * @param {unknown} error
 */
export function isRetryable(error) {
  return error instanceof ApiError && (error.status === 0 || error.status === 429 || error.status >= 500);
}

/** Storage that survives a browser refusing localStorage (private modes). */
const storage = {
  /** @param {string} key */
  get(key) {
    try {
      return globalThis.localStorage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  },
  /** @param {string} key @param {string | null} value */
  set(key, value) {
    try {
      if (value === null) globalThis.localStorage?.removeItem(key);
      else globalThis.localStorage?.setItem(key, value);
    } catch {
      // Signed in for this page only.
    }
  },
  /**
   * Remove every key of the signed-in person, in local and session storage:
   * every `colloquy.` key is theirs, settings included (the next person
   * starts from the defaults).
   */
  clearSession() {
    for (const area of ["localStorage", "sessionStorage"]) {
      try {
        const store = /** @type {Storage | undefined} */ (/** @type {any} */ (globalThis)[area]);
        if (!store) continue;
        const keys = Array.from({ length: store.length }, (_, i) => store.key(i) ?? "");
        for (const key of keys) {
          if (key.startsWith("colloquy.")) store.removeItem(key);
        }
      } catch {
        // Storage refused: nothing was kept there either.
      }
    }
  },
};

export class Api {
  /** @param {string} [baseUrl] */
  constructor(baseUrl = "") {
    this.baseUrl = baseUrl;
  }

  get token() {
    return storage.get(TOKEN_KEY);
  }

  set token(value) {
    storage.set(TOKEN_KEY, value);
  }

  get anonymousToken() {
    return storage.get(ANONYMOUS_TOKEN_KEY);
  }

  set anonymousToken(value) {
    storage.set(ANONYMOUS_TOKEN_KEY, value);
  }

  /** Forget the session on this browser: tokens and anything else stored for it. */
  clearSession() {
    storage.clearSession();
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {string | null} [token]
   */
  async request(method, path, body, token = this.token) {
    /** @type {Record<string, string>} */
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      throw new ApiError(response.status, error.code ?? "http_error", error.message ?? `Request failed (${response.status})`);
    }
    return data;
  }

  /**
   * @param {"register" | "login"} kind
   * @param {{ email: string, password: string, full_name?: string }} credentials
   * @returns {Promise<TokenResponse>}
   */
  signIn(kind, credentials) {
    return this.request("POST", `/auth/${kind}`, credentials, null);
  }

  /** @returns {Promise<TokenResponse>} */
  anonymous() {
    return this.request("POST", "/api/auth/anonymous", undefined, null);
  }

  /** @param {string} anonymousToken */
  claim(anonymousToken) {
    return this.request("POST", "/api/auth/claim", { anonymous_token: anonymousToken });
  }

  /** The server's client configuration (voice availability...). @returns {Promise<ClientConfig>} */
  config() {
    return this.request("GET", "/api/config", undefined, null);
  }

  /** @returns {Promise<User>} */
  me() {
    return this.request("GET", "/api/auth/me");
  }

  /** @returns {Promise<{ conversations: ConversationSummary[] }>} */
  listConversations(limit = 100) {
    return this.request("GET", `/api/conversations?limit=${limit}`);
  }

  /**
   * Conversations whose title or any message contains `query` (ASCII case-insensitive).
   * @param {string} query @returns {Promise<{ conversations: ConversationSummary[] }>}
   */
  searchConversations(query, limit = 100) {
    return this.request("GET", `/api/conversations?q=${encodeURIComponent(query)}&limit=${limit}`);
  }

  /**
   * One page of a conversation: its newest messages, or those before `before`.
   * @param {string} id @param {number} [before] @returns {Promise<StoredConversation>}
   */
  getConversation(id, before) {
    const page = before === undefined ? "" : `?before=${before}`;
    return this.request("GET", `/api/conversations/${encodeURIComponent(id)}${page}`);
  }

  /** @param {string} [title] @returns {Promise<ConversationSummary>} */
  createConversation(title = "") {
    return this.request("POST", "/api/conversations", { title });
  }

  /** @param {string} id @param {string} title @returns {Promise<ConversationSummary>} */
  renameConversation(id, title) {
    return this.request("PATCH", `/api/conversations/${encodeURIComponent(id)}`, { title });
  }

  /** @param {string} id */
  deleteConversation(id) {
    return this.request("DELETE", `/api/conversations/${encodeURIComponent(id)}`);
  }

  /**
   * Show another branch: the active path becomes the one through
   * `messageId` to its newest message. Answers with the new path.
   * @param {string} id @param {string} messageId @returns {Promise<StoredConversation>}
   */
  switchBranch(id, messageId) {
    return this.request("PUT", `/api/conversations/${encodeURIComponent(id)}/active`, { message_id: messageId });
  }

  /** The stored summary of a conversation (404 when there is none). @param {string} id @returns {Promise<Summary>} */
  getSummary(id) {
    return this.request("GET", `/api/conversations/${encodeURIComponent(id)}/summary`);
  }

  /** Have the model summarize the conversation now. @param {string} id @returns {Promise<Summary>} */
  summarize(id) {
    return this.request("POST", `/api/conversations/${encodeURIComponent(id)}/summary`);
  }

  /** The caller's daily activity streak. @returns {Promise<{ current: number, longest: number, last_active_date: string | null }>} */
  streak() {
    return this.request("GET", "/api/streak");
  }

  /**
   * A read-only link to a snapshot of the conversation as it is now
   * (replacing its previous link).
   * @param {string} id @returns {Promise<{ share_id: string, url: string, created_at: string }>}
   */
  shareConversation(id) {
    return this.request("POST", `/api/conversations/${encodeURIComponent(id)}/share`);
  }

  /** Stop the conversation's link from working. @param {string} id */
  revokeShare(id) {
    return this.request("DELETE", `/api/conversations/${encodeURIComponent(id)}/share`);
  }

  /**
   * A shared snapshot (no sign-in needed).
   * @param {string} shareId
   * @returns {Promise<{ title: string, created_at: string, messages: SharedMessage[] }>}
   */
  getShared(shareId) {
    return this.request("GET", `/api/shared/${encodeURIComponent(shareId)}`, undefined, null);
  }

  /** Copy a shared snapshot into the caller's conversations. @param {string} shareId @returns {Promise<{ conversation_id: string }>} */
  forkShared(shareId) {
    return this.request("POST", `/api/shared/${encodeURIComponent(shareId)}/fork`);
  }
}
