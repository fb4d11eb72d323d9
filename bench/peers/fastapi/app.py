"""A chat gateway the way a FastAPI team writes one (seed 001): uvicorn, the
`openai` SDK for the model, aiosqlite for the messages.

It speaks the part of Colloquy's socket protocol that `colloquy-bench`
uses, so the same load can be run against it: `POST /api/auth/anonymous`
for a token, then `/api/v1/chat/ws?token=...` with `ready`, `text` ->
`ack`, `delta`s and the final `message`, every event numbered by a
contiguous `seq`. A user message is committed (WAL, synchronous=FULL)
before its `ack`, as Colloquy does.
"""

import json
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager

import aiosqlite
import jwt
from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect
from openai import AsyncOpenAI

DB_PATH = os.environ.get("PEER_DB_PATH", "peer-fastapi.db")
MODEL = os.environ.get("PEER_MODEL", "bench")
JWT_SECRET = os.environ.get("PEER_JWT_SECRET") or secrets.token_hex(32)
# A message longer than this is refused: it would be stored and sent upstream.
MAX_MESSAGE_CHARS = int(os.environ.get("PEER_MAX_MESSAGE_CHARS", "16000"))
# Earlier messages sent upstream with each turn.
HISTORY_LIMIT = int(os.environ.get("PEER_HISTORY_LIMIT", "50"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    sender TEXT NOT NULL,
    content TEXT NOT NULL,
    client_id TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, created_at);
"""


@asynccontextmanager
async def lifespan(app: FastAPI):
    db = await aiosqlite.connect(DB_PATH)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.executescript(SCHEMA)
    await db.commit()
    app.state.db = db
    app.state.llm = AsyncOpenAI()
    yield
    await db.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.post("/api/auth/anonymous")
async def anonymous():
    user_id = str(uuid.uuid4())
    token = jwt.encode({"sub": user_id, "anon": True, "iat": int(time.time())}, JWT_SECRET, algorithm="HS256")
    return {"access_token": token, "token_type": "bearer", "user_id": user_id}


def user_from_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return jwt.decode(token, JWT_SECRET, algorithms=["HS256"])["sub"]
    except jwt.PyJWTError:
        return None


class Conversation:
    """One socket's conversation and the `seq` of its latest event."""

    def __init__(self, websocket: WebSocket, user_id: str):
        self.websocket = websocket
        self.user_id = user_id
        self.id = str(uuid.uuid4())
        self.stored = False
        self.seq = 0

    async def send(self, event: dict, numbered: bool = True):
        if numbered:
            self.seq += 1
            event["seq"] = self.seq
        await self.websocket.send_text(json.dumps(event))

    async def error(self, code: str, message: str, client_id: str | None = None):
        event = {"type": "error", "code": code, "message": message}
        if client_id is not None:
            event["client_id"] = client_id
        await self.send(event, numbered=False)


async def save_message(db, conversation: Conversation, sender: str, content: str, client_id=None) -> str:
    message_id = str(uuid.uuid4())
    if not conversation.stored:
        await db.execute(
            "INSERT INTO conversations (id, user_id, created_at) VALUES (?, ?, ?)",
            (conversation.id, conversation.user_id, time.time()),
        )
        conversation.stored = True
    await db.execute(
        "INSERT INTO messages (id, conversation_id, sender, content, client_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (message_id, conversation.id, sender, content, client_id, time.time()),
    )
    await db.commit()
    return message_id


async def load_history(db, conversation_id: str) -> list[dict]:
    async with db.execute(
        "SELECT sender, content FROM messages WHERE conversation_id = ? ORDER BY created_at DESC LIMIT ?",
        (conversation_id, HISTORY_LIMIT),
    ) as cursor:
        rows = await cursor.fetchall()
    return [{"role": sender, "content": content} for sender, content in reversed(rows)]


async def answer(conversation: Conversation, content: str, client_id: str | None):
    db = app.state.db
    message_id = await save_message(db, conversation, "user", content, client_id)
    reply_id = str(uuid.uuid4())
    ack = {"type": "ack", "message_id": message_id, "content": content, "reply_id": reply_id}
    if client_id is not None:
        ack["client_id"] = client_id
    await conversation.send(ack)

    history = await load_history(db, conversation.id)
    reply = []
    try:
        stream = await app.state.llm.chat.completions.create(model=MODEL, messages=history, stream=True)
        async for chunk in stream:
            if not chunk.choices:
                continue
            text = chunk.choices[0].delta.content
            if text:
                reply.append(text)
                await conversation.send({"type": "delta", "message_id": reply_id, "content": text})
    except WebSocketDisconnect:
        raise
    except Exception as exc:  # the provider failed: tell the client, keep the socket
        await conversation.send({"type": "error", "code": "provider_error", "message": str(exc), "message_id": reply_id})
        return
    full = "".join(reply)
    await db.execute(
        "INSERT INTO messages (id, conversation_id, sender, content, created_at) VALUES (?, ?, 'assistant', ?, ?)",
        (reply_id, conversation.id, full, time.time()),
    )
    await db.commit()
    await conversation.send(
        {
            "type": "message",
            "message_id": reply_id,
            "content": full,
            "sender": "assistant",
            "status": "complete",
            "is_final": True,
        }
    )


@app.websocket("/api/v1/chat/ws")
async def chat_ws(websocket: WebSocket, token: str | None = Query(default=None)):
    user_id = user_from_token(token)
    if user_id is None:
        await websocket.close(code=4401, reason="invalid or missing token")
        return
    await websocket.accept()
    conversation = Conversation(websocket, user_id)
    await conversation.send({"type": "ready", "conversation_id": conversation.id, "last_seq": 0}, numbered=False)
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                await conversation.error("bad_request", "not JSON")
                continue
            if not isinstance(event, dict) or event.get("type") != "text":
                await conversation.error("bad_request", "expected a text event")
                continue
            content = event.get("content")
            client_id = event.get("client_id")
            if not isinstance(content, str) or not content.strip():
                await conversation.error("bad_request", "content must be a non-empty string", client_id)
                continue
            if len(content) > MAX_MESSAGE_CHARS:
                await conversation.error("too_long", f"at most {MAX_MESSAGE_CHARS} characters", client_id)
                continue
            await answer(conversation, content, client_id)
    except WebSocketDisconnect:
        pass
