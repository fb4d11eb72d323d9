// @ts-check
/**
 * @file The seed 001 test page at `/v2/chat/test`: connect a raw socket to
 * `/v2/chat/{session_id}` and exchange JSON events by hand. Deliberately no
 * client library: what you see is exactly what crossed the wire. Every
 * frame is shown as text, never as markup.
 */

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const token = /** @type {HTMLInputElement} */ (byId("token"));
const session = /** @type {HTMLInputElement} */ (byId("session"));
const frame = /** @type {HTMLTextAreaElement} */ (byId("frame"));
const log = byId("log");
const status = byId("status");
const connectButton = /** @type {HTMLButtonElement} */ (byId("connect"));
const disconnectButton = /** @type {HTMLButtonElement} */ (byId("disconnect"));
const sendButton = /** @type {HTMLButtonElement} */ (byId("send"));

/** @type {WebSocket | null} */
let socket = null;

token.value = localStorage.getItem("colloquy.token") ?? "";
session.value = crypto.randomUUID();

/** @param {"in" | "out" | "sys"} direction @param {string} text */
function append(direction, text) {
  const item = document.createElement("li");
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date().toLocaleTimeString();
  const arrow = document.createElement("span");
  arrow.className = `dir-${direction}`;
  arrow.textContent = direction === "in" ? "←" : direction === "out" ? "→" : "•";
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = text;
  item.append(time, arrow, body);
  log.appendChild(item);
  log.scrollTop = log.scrollHeight;
}

/** @param {string} state @param {string} label */
function setStatus(state, label) {
  status.dataset.state = state;
  status.textContent = label;
  const open = state === "open";
  sendButton.disabled = !open;
  disconnectButton.disabled = state === "closed";
  connectButton.disabled = state !== "closed";
}

byId("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = session.value.trim();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/v2/chat/${encodeURIComponent(id)}?token=${encodeURIComponent(token.value.trim())}`;
  append("sys", `connecting to /v2/chat/${id}`);
  setStatus("connecting", "Connecting…");
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => setStatus("open", "Connected");
  ws.onmessage = (message) => {
    let text = String(message.data);
    try {
      text = JSON.stringify(JSON.parse(text));
    } catch {
      // Show it as it came.
    }
    append("in", text);
  };
  ws.onclose = (close) => {
    if (socket !== ws) return;
    socket = null;
    append("sys", `closed: ${close.code}${close.reason ? ` ${close.reason}` : ""}`);
    setStatus("closed", "Disconnected");
  };
});

disconnectButton.addEventListener("click", () => socket?.close(1000, "bye"));

byId("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = frame.value.trim();
  try {
    JSON.parse(text);
  } catch (error) {
    append("sys", `not valid JSON: ${error instanceof Error ? error.message : error}`);
    return;
  }
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(text);
  append("out", text);
});

for (const preset of document.querySelectorAll(".preset")) {
  preset.addEventListener("click", () => {
    frame.value = /** @type {HTMLElement} */ (preset).dataset.frame ?? "";
    frame.focus();
  });
}

byId("new-session").addEventListener("click", () => {
  session.value = crypto.randomUUID();
});

byId("anon").addEventListener("click", async () => {
  const response = await fetch("/api/auth/anonymous", { method: "POST" });
  const data = await response.json().catch(() => null);
  if (response.ok && data?.access_token) {
    token.value = data.access_token;
    append("sys", "got a guest token");
  } else {
    append("sys", `guest sign-in failed (${response.status})`);
  }
});

byId("clear").addEventListener("click", () => log.replaceChildren());

// A module (loaded with type="module"), not a global script.
export {};
