//! `[[tools.http]]` end to end: a local backend (axum) that checks the
//! HMAC signature the way the README tells teams to, and answers well, too
//! much, too late or with an error status.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Json, Router,
};
use colloquy::config::tools::HttpToolConfig;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app_with},
};

const SECRET_ENV: &str = "COLLOQUY_TEST_WEBHOOK_SECRET";
const SECRET: &str = "webhook-test-secret";

/// The bodies the backend accepted.
type Received = Arc<Mutex<Vec<Value>>>;

/// What a backend does: recompute `sha256=HMAC(secret, "<timestamp>.<body>")`
/// and compare it with the header.
fn signed(headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (
        header("x-colloquy-timestamp"),
        header("x-colloquy-signature"),
    ) else {
        return false;
    };
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == hex
}

async fn lookup(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, StatusCode> {
    if !signed(&headers, &body) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let body: Value = serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
    let order = body["arguments"]["order"].clone();
    received.lock().unwrap().push(body);
    Ok(Json(json!({ "order": order, "status": "shipped" })))
}

async fn start_backend(received: Received) -> String {
    let app = Router::new()
        .route("/lookup", post(lookup))
        .route("/big", post(|| async { "x".repeat(64 * 1024) }))
        // No length announced and no end: only reading stops it.
        .route(
            "/endless",
            post(|| async {
                let chunks = futures::stream::repeat_with(|| {
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(&[b'x'; 512]))
                });
                axum::body::Body::from_stream(chunks)
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/down", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

fn webhook(name: &str, url: String) -> HttpToolConfig {
    HttpToolConfig {
        name: name.into(),
        description: format!("Test webhook {name}."),
        parameters: json!({
            "type": "object",
            "properties": { "order": { "type": "string" } },
        }),
        url,
        secret_env: SECRET_ENV.into(),
    }
}

#[tokio::test]
async fn webhook_calls_are_signed_and_capped_in_size_and_time_and_errors_end_the_call() {
    // Every test sets the same value: no test sees another's secret.
    std::env::set_var(SECRET_ENV, SECRET);
    let received = Received::default();
    let backend = start_backend(received.clone()).await;
    let app = spawn_app_with(|config| {
        config.tools.http = ["lookup", "big", "endless", "slow", "down"]
            .into_iter()
            .map(|name| webhook(&format!("{name}_order"), format!("{backend}/{name}")))
            .collect();
        config.tools.tool_timeout_secs = 1;
        config.tools.max_result_bytes = 1024;
    })
    .await;
    app.upstream.push(Script::tool_calls(&[
        ("c_lookup", "lookup_order", r#"{"order": "A-17"}"#),
        ("c_big", "big_order", "{}"),
        ("c_endless", "endless_order", "{}"),
        ("c_slow", "slow_order", "{}"),
        ("c_down", "down_order", "{}"),
    ]));
    app.upstream
        .push(Script::tokens(&["Order A-17 has shipped."]));
    let token = app.register("webhooks@example.com").await;
    let (mut socket, ready) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Where is my order?", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let end_of = |id: &str| {
        events
            .iter()
            .find(|e| e["type"] == "tool" && e["status"] == "end" && e["call_id"] == id)
            .unwrap_or_else(|| panic!("{id} ends: {events:?}"))
    };
    assert_eq!(
        end_of("c_lookup")["result"],
        json!({ "order": "A-17", "status": "shipped" })
    );
    assert_eq!(end_of("c_big")["error"]["code"], "result_too_large");
    assert_eq!(end_of("c_endless")["error"]["code"], "result_too_large");
    assert_eq!(end_of("c_slow")["error"]["code"], "timeout");
    let down = &end_of("c_down")["error"];
    assert_eq!(down["code"], "tool_failed");
    assert!(down["message"].as_str().unwrap().contains("503"), "{down}");
    assert_eq!(events.last().unwrap()["status"], "complete");

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let call = &received[0];
    assert_eq!(call["name"], "lookup_order");
    assert_eq!(call["arguments"], json!({ "order": "A-17" }));
    assert_eq!(call["call_id"], "c_lookup");
    assert_eq!(call["conversation_id"], ready["conversation_id"]);
    assert!(
        uuid::Uuid::parse_str(call["user_id"].as_str().unwrap()).is_ok(),
        "{call}"
    );

    // The model reads the failures too.
    let second = &app.upstream.requests()[1];
    let results: Vec<&Value> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(results.len(), 5);
    assert!(results[4]["content"]
        .as_str()
        .unwrap()
        .contains("tool_failed"));
}

#[tokio::test]
async fn a_webhook_off_the_allow_list_is_neither_offered_nor_called() {
    std::env::set_var(SECRET_ENV, SECRET);
    let received = Received::default();
    let backend = start_backend(received.clone()).await;
    let app = spawn_app_with(|config| {
        config.tools.http = vec![
            webhook("lookup_order", format!("{backend}/lookup")),
            webhook("refund_order", format!("{backend}/lookup")),
        ];
        config.tools.allow = Some(vec!["lookup_*".into()]);
    })
    .await;
    app.upstream.push(Script::tool_calls(&[
        ("c_lookup", "lookup_order", r#"{"order": "A-17"}"#),
        ("c_refund", "refund_order", r#"{"order": "A-17"}"#),
    ]));
    app.upstream.push(Script::tokens(&["Looked it up."]));
    let token = app.register("allow-webhooks@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Refund A-17", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    let end = |id: &str| {
        events
            .iter()
            .find(|e| e["type"] == "tool" && e["status"] == "end" && e["call_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(end("c_lookup")["result"]["status"], "shipped");
    assert_eq!(end("c_refund")["error"]["code"], "unknown_tool");
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "only the allowed call reached the backend"
    );
    let offered: Vec<String> = app.upstream.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(offered.contains(&"lookup_order".to_owned()), "{offered:?}");
    assert!(!offered.contains(&"refund_order".to_owned()), "{offered:?}");
}
