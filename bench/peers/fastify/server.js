// A chat gateway the way a Fastify team writes one (seed 003): Fastify 5 with
// @fastify/websocket, the `openai` SDK for the model, better-sqlite3 for the
// messages.
//
// It speaks the part of Colloquy's socket protocol that `colloquy-bench`
// uses, so the same load can be run against it: `POST /api/auth/anonymous`
// for a token, then `/api/v1/chat/ws?token=...` with `ready`, `text` ->
// `ack`, `delta`s and the final `message`, every event numbered by a
// contiguous `seq`. A user message is committed (WAL, synchronous=FULL)
// before its `ack`, as Colloquy does.

import { randomBytes, randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import Database from 'better-sqlite3'
import OpenAI from 'openai'

const PORT = Number(process.env.PORT ?? 9302)
const HOST = process.env.HOST ?? '127.0.0.1'
const DB_PATH = process.env.PEER_DB_PATH ?? 'peer-fastify.db'
const MODEL = process.env.PEER_MODEL ?? 'bench'
const JWT_SECRET = process.env.PEER_JWT_SECRET || randomBytes(32).toString('hex')
// A message longer than this is refused: it would be stored and sent upstream.
const MAX_MESSAGE_CHARS = Number(process.env.PEER_MAX_MESSAGE_CHARS ?? 16000)
// Earlier messages sent upstream with each turn.
const HISTORY_LIMIT = Number(process.env.PEER_HISTORY_LIMIT ?? 50)
// Largest frame a client may send.
const MAX_FRAME_BYTES = 64 * 1024

const db = new Database(DB_PATH)
db.pragma('journal_mode = WAL')
db.pragma('synchronous = FULL')
db.exec(`
  CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    sender TEXT NOT NULL,
    content TEXT NOT NULL,
    client_id TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, created_at);
`)

const insertConversation = db.prepare(
  'INSERT INTO conversations (id, user_id, created_at) VALUES (?, ?, ?)'
)
const insertMessage = db.prepare(
  'INSERT INTO messages (id, conversation_id, sender, content, client_id, created_at) VALUES (?, ?, ?, ?, ?, ?)'
)
const selectHistory = db.prepare(
  'SELECT sender, content FROM messages WHERE conversation_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?'
)

const openai = new OpenAI()

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
await app.register(fastifyJwt, { secret: JWT_SECRET })
await app.register(websocket, { options: { maxPayload: MAX_FRAME_BYTES } })

app.get('/healthz', async () => ({ status: 'ok' }))

app.post('/api/auth/anonymous', async () => {
  const userId = randomUUID()
  const token = app.jwt.sign({ sub: userId, anon: true })
  return { access_token: token, token_type: 'bearer', user_id: userId }
})

// One socket's conversation and the `seq` of its latest event.
class Conversation {
  constructor (socket, userId) {
    this.socket = socket
    this.userId = userId
    this.id = randomUUID()
    this.stored = false
    this.seq = 0
  }

  send (event) {
    this.socket.send(JSON.stringify(event))
  }

  sendNumbered (event) {
    this.seq += 1
    this.send({ ...event, seq: this.seq })
  }

  error (code, message, clientId) {
    this.send({ type: 'error', code, message, ...(clientId != null && { client_id: clientId }) })
  }

  save (sender, content, clientId = null, id = randomUUID()) {
    if (!this.stored) {
      insertConversation.run(this.id, this.userId, Date.now())
      this.stored = true
    }
    insertMessage.run(id, this.id, sender, content, clientId, Date.now())
    return id
  }

  history () {
    return selectHistory
      .all(this.id, HISTORY_LIMIT)
      .reverse()
      .map(({ sender, content }) => ({ role: sender, content }))
  }
}

async function answer (conversation, content, clientId) {
  const messageId = conversation.save('user', content, clientId)
  const replyId = randomUUID()
  conversation.sendNumbered({
    type: 'ack',
    ...(clientId != null && { client_id: clientId }),
    message_id: messageId,
    content,
    reply_id: replyId
  })

  let reply = ''
  try {
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: conversation.history(),
      stream: true
    })
    for await (const chunk of stream) {
      const text = chunk.choices[0]?.delta?.content
      if (text) {
        reply += text
        conversation.sendNumbered({ type: 'delta', message_id: replyId, content: text })
      }
    }
  } catch (err) {
    app.log.error(err, 'provider failed')
    conversation.sendNumbered({ type: 'error', code: 'provider_error', message: String(err.message ?? err), message_id: replyId })
    return
  }
  conversation.save('assistant', reply, null, replyId)
  conversation.sendNumbered({
    type: 'message',
    message_id: replyId,
    content: reply,
    sender: 'assistant',
    status: 'complete',
    is_final: true
  })
}

app.register(async (scope) => {
  scope.get('/api/v1/chat/ws', { websocket: true }, (socket, req) => {
    let userId
    try {
      userId = app.jwt.verify(req.query.token ?? '').sub
    } catch {
      socket.close(4401, 'invalid or missing token')
      return
    }
    const conversation = new Conversation(socket, userId)
    conversation.send({ type: 'ready', conversation_id: conversation.id, last_seq: 0 })

    socket.on('message', async (raw) => {
      let event
      try {
        event = JSON.parse(raw.toString())
      } catch {
        conversation.error('bad_request', 'not JSON')
        return
      }
      if (event?.type !== 'text') {
        conversation.error('bad_request', 'expected a text event')
        return
      }
      const { content, client_id: clientId } = event
      if (typeof content !== 'string' || !content.trim()) {
        conversation.error('bad_request', 'content must be a non-empty string', clientId)
        return
      }
      if (content.length > MAX_MESSAGE_CHARS) {
        conversation.error('too_long', `at most ${MAX_MESSAGE_CHARS} characters`, clientId)
        return
      }
      try {
        await answer(conversation, content, clientId)
      } catch (err) {
        req.log.error(err, 'turn failed')
        conversation.error('internal', 'the message could not be handled', clientId)
      }
    })
  })
})

await app.listen({ port: PORT, host: HOST })
