//! A fake OpenAI-compatible upstream: every request streams `tokens` chunks,
//! `interval` apart (the first one too), as real Server-Sent Events. Its
//! reply text is known in advance, so the bench can check every reply whole.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{body::Body, http::header, response::Response, routing::post, Router};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

/// Shape of every streamed reply.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamShape {
    pub tokens: usize,
    pub interval: Duration,
}

impl UpstreamShape {
    /// The token texts, in order.
    pub fn token(index: usize) -> String {
        format!(" t{index}")
    }

    /// The whole reply every request gets.
    pub fn expected_reply(&self) -> String {
        (0..self.tokens).map(Self::token).collect()
    }
}

fn sse(value: serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

async fn completions(shape: UpstreamShape) -> Response {
    let deltas = futures::stream::iter(0..shape.tokens).then(move |index| async move {
        tokio::time::sleep(shape.interval).await;
        sse(json!({ "choices": [{ "index": 0, "delta": { "content": UpstreamShape::token(index) }, "finish_reason": null }] }))
    });
    let end = futures::stream::iter([
        sse(json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] })),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]);
    let body = Body::from_stream(deltas.chain(end).map(Ok::<_, Infallible>));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(body)
        .unwrap_or_default()
}

/// Serve the upstream on `addr` (port 0 picks one); returns the bound address.
pub async fn serve(addr: SocketAddr, shape: UpstreamShape) -> anyhow::Result<SocketAddr> {
    let app = Router::new().route("/v1/chat/completions", post(move || completions(shape)));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    // Each token is its own small write; Nagle would batch them.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("upstream stopped: {error}");
        }
    });
    Ok(bound)
}
