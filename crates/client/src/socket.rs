//! [`ChatSocket`]: one chat socket with duplicate removal and exact resume.

use colloquy_protocol::{ClientEvent, Seq, ServerEvent};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::{Backoff, ClientError};

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// `http://host:port` (or `https://`); the socket URL is derived from it.
    pub base_url: String,
    pub token: String,
    /// The conversation to open; a new one when `None`.
    pub conversation_id: Option<Uuid>,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
}

impl SocketSettings {
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            conversation_id: None,
            backoff: Backoff::default(),
        }
    }

    fn url(&self, conversation: Option<Uuid>, last_seq: Option<Seq>) -> String {
        let ws_base = self
            .base_url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let mut url = format!("{ws_base}/api/v1/chat/ws?token={}", self.token);
        if let Some(id) = conversation {
            url.push_str(&format!("&conversationId={id}"));
        }
        if let Some(seq) = last_seq {
            url.push_str(&format!("&last_seq={seq}"));
        }
        url
    }
}

/// A chat socket that delivers each conversation event once, in order,
/// across reconnects.
pub struct ChatSocket {
    stream: Option<Stream>,
    settings: SocketSettings,
    conversation_id: Uuid,
    last_seq: Seq,
    reconnects: u32,
    audit: SeqAudit,
    /// The `client_id` of a message sent again after a resume: the server
    /// answers a repeat with the original `ack`, which this socket may
    /// already have delivered (replayed); that one answer is not a duplicate.
    resent: Option<String>,
}

/// What the server's numbering looked like from here: anything but zeros
/// means events were lost, repeated or reordered on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqAudit {
    /// Events skipped because their seq was already delivered.
    pub duplicates: u64,
    /// Events that arrived after a later one (also skipped, to keep order).
    pub out_of_order: u64,
    /// Seqs jumped over and never seen since.
    missing: std::collections::BTreeSet<Seq>,
    /// The first duplicated seqs (up to [`SAMPLES`]), to tell where they came from.
    duplicate_samples: Vec<Seq>,
}

/// Duplicated seqs remembered per socket for a report.
const SAMPLES: usize = 16;

/// Most missing seqs remembered per socket; past that they are only counted.
const MISSING_MEMORY: usize = 4096;

impl SeqAudit {
    /// Events never received (gaps not filled later).
    pub fn lost(&self) -> u64 {
        self.missing.len() as u64
    }

    /// Seqs jumped over and never seen since, lowest first.
    pub fn missing_seqs(&self) -> impl Iterator<Item = Seq> + '_ {
        self.missing.iter().copied()
    }

    /// The first seqs that arrived a second time.
    pub fn duplicate_samples(&self) -> &[Seq] {
        &self.duplicate_samples
    }

    /// Account for `seq` arriving after `last`; `true` when it is new and in order.
    fn observe(&mut self, last: Seq, seq: Seq) -> bool {
        if seq > last {
            for gap in (last + 1)..seq {
                if self.missing.len() < MISSING_MEMORY {
                    self.missing.insert(gap);
                }
            }
            return true;
        }
        if self.missing.remove(&seq) {
            self.out_of_order += 1;
        } else {
            self.duplicates += 1;
            if self.duplicate_samples.len() < SAMPLES {
                self.duplicate_samples.push(seq);
            }
        }
        false
    }
}

async fn open(url: &str) -> Result<(Stream, Uuid, Seq), ClientError> {
    // disable_nagle: events and pings are small writes that must not wait.
    let (mut stream, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    match read_event(&mut stream).await? {
        ServerEvent::Ready {
            conversation_id,
            last_seq,
        } => Ok((stream, conversation_id, last_seq)),
        other => Err(ClientError::Protocol(format!(
            "expected ready, got {}",
            other.kind()
        ))),
    }
}

async fn read_event(stream: &mut Stream) -> Result<ServerEvent, ClientError> {
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| ClientError::Protocol(e.to_string()));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(frame) => ClientError::Closed {
                        code: frame.code.into(),
                        reason: frame.reason.to_string(),
                    },
                    None => ClientError::Disconnected,
                })
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(ClientError::Disconnected),
        }
    }
}

impl ChatSocket {
    /// Connect and wait for `ready`.
    pub async fn connect(settings: SocketSettings) -> Result<Self, ClientError> {
        let url = settings.url(settings.conversation_id, None);
        let (stream, conversation_id, last_seq) = open(&url).await?;
        Ok(Self {
            stream: Some(stream),
            settings,
            conversation_id,
            last_seq,
            reconnects: 0,
            audit: SeqAudit::default(),
            resent: None,
        })
    }

    /// The server this socket connects to (`http://host:port`).
    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    pub fn conversation_id(&self) -> Uuid {
        self.conversation_id
    }

    /// The highest `seq` delivered so far.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// Duplicates, reorderings and losses seen so far.
    pub fn audit(&self) -> &SeqAudit {
        &self.audit
    }

    /// Successful reconnections so far.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    pub async fn send(&mut self, event: &ClientEvent) -> Result<(), ClientError> {
        let stream = self.stream.as_mut().ok_or(ClientError::Disconnected)?;
        let json =
            serde_json::to_string(event).map_err(|e| ClientError::Protocol(e.to_string()))?;
        stream
            .send(Message::Text(json.into()))
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// Send a user message; `client_id` makes a resend after a reconnect safe.
    pub async fn send_text(
        &mut self,
        content: &str,
        client_id: Option<&str>,
    ) -> Result<(), ClientError> {
        self.send(&ClientEvent::Text {
            content: content.to_owned(),
            client_id: client_id.map(str::to_owned),
            model: None,
            parent_id: None,
        })
        .await
    }

    /// Send again, after a resume, a message whose fate is unknown (it may
    /// have been stored, and its `ack` replayed, or lost with the old
    /// connection). Send it with the same `client_id`: the server stores it
    /// once and answers a repeat with the original `ack`, which this socket
    /// then skips without counting it a duplicate.
    pub async fn resend_text(&mut self, content: &str, client_id: &str) -> Result<(), ClientError> {
        self.resent = Some(client_id.to_owned());
        self.send_text(content, Some(client_id)).await
    }

    /// The answer to [`Self::resend_text`] repeating an `ack` already delivered.
    fn is_repeated_ack(&mut self, event: &ServerEvent) -> bool {
        let ServerEvent::Ack {
            client_id: Some(id),
            seq,
            ..
        } = event
        else {
            return false;
        };
        let repeat = *seq <= self.last_seq && self.resent.as_deref() == Some(id.as_str());
        if repeat {
            // Only one answer per resend: a second copy is a real duplicate.
            self.resent = None;
        }
        repeat
    }

    /// The next new event. Events already delivered (by `seq`) are skipped.
    /// A lost connection is reported as [`ClientError::Disconnected`]; call
    /// [`Self::resume`] to continue where it stopped.
    pub async fn next_event(&mut self) -> Result<ServerEvent, ClientError> {
        loop {
            let stream = self.stream.as_mut().ok_or(ClientError::Disconnected)?;
            let event = match read_event(stream).await {
                Ok(event) => event,
                Err(error) => {
                    self.stream = None;
                    return Err(error);
                }
            };
            if self.is_repeated_ack(&event) {
                continue;
            }
            if let Some(seq) = event.seq() {
                if !self.audit.observe(self.last_seq, seq) {
                    continue;
                }
                self.last_seq = seq;
            }
            return Ok(event);
        }
    }

    /// Drop the connection at once, as a network failure would (for chaos testing).
    pub fn abort(&mut self) {
        self.stream = None;
    }

    /// [`Self::resume`] through another server of the same cluster (its
    /// node went away, or a load balancer would pick another): any node
    /// replays the conversation's events after [`Self::last_seq`].
    pub async fn resume_at(&mut self, base_url: &str) -> Result<(), ClientError> {
        self.settings.base_url = base_url.trim_end_matches('/').to_owned();
        self.resume().await
    }

    /// Reconnect with backoff and jitter, replaying every event after
    /// [`Self::last_seq`]. Refusals (auth, policy) end the attempts at once.
    pub async fn resume(&mut self) -> Result<(), ClientError> {
        self.stream = None;
        let mut backoff = self.settings.backoff.clone();
        backoff.reset();
        let url = self
            .settings
            .url(Some(self.conversation_id), Some(self.last_seq));
        loop {
            match open(&url).await {
                Ok((stream, _, _)) => {
                    self.stream = Some(stream);
                    self.reconnects += 1;
                    return Ok(());
                }
                Err(error) if !error.is_retryable() => return Err(error),
                Err(_) => match backoff.next_delay() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(ClientError::GaveUp(backoff.attempts())),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_ack_answering_a_resend_is_skipped_once_without_counting() {
        let ack = |seq| ServerEvent::Ack {
            client_id: Some("c-1".into()),
            message_id: Uuid::nil(),
            seq,
            content: String::new(),
            reply_id: Uuid::nil(),
        };
        let mut socket = ChatSocket {
            stream: None,
            settings: SocketSettings::new("http://127.0.0.1:1", "token"),
            conversation_id: Uuid::nil(),
            last_seq: 5,
            reconnects: 0,
            audit: SeqAudit::default(),
            resent: None,
        };
        assert!(!socket.is_repeated_ack(&ack(3)), "no resend: a duplicate");
        socket.resent = Some("c-1".into());
        assert!(!socket.is_repeated_ack(&ack(6)), "a new ack is delivered");
        assert!(socket.is_repeated_ack(&ack(3)));
        assert!(
            !socket.is_repeated_ack(&ack(3)),
            "a second copy is a duplicate"
        );
    }

    #[test]
    fn audit_tells_duplicates_reorderings_and_losses_apart() {
        let mut audit = SeqAudit::default();
        assert!(audit.observe(0, 1));
        assert!(!audit.observe(1, 1), "duplicate");
        assert!(audit.observe(1, 4), "jump leaves 2 and 3 missing");
        assert!(!audit.observe(4, 2), "late arrival");
        assert_eq!(
            (audit.duplicates, audit.out_of_order, audit.lost()),
            (1, 1, 1)
        );
    }
}
