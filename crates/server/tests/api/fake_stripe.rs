//! A fake Stripe API speaking its real wire format: form-encoded
//! `POST /v1/checkout/sessions` with a bearer secret key, answered with a
//! Checkout Session object (or Stripe's error shape for a wrong key), and
//! every request kept for the test to inspect.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};

/// The secret key the fake accepts.
pub const API_KEY: &str = "sk_test_fake_key";

/// One request Stripe received.
#[derive(Debug, Clone)]
pub struct Received {
    pub authorization: String,
    pub content_type: String,
    pub form: Vec<(String, String)>,
}

impl Received {
    /// The value of form field `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct FakeStripe {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeStripe {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stripe = Self {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .with_state(stripe.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        stripe
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn create_session(
    State(stripe): State<FakeStripe>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        authorization: header("authorization"),
        content_type: header("content-type"),
        form: serde_urlencoded::from_str(&body).unwrap_or_default(),
    };
    stripe.received.lock().unwrap().push(received.clone());
    if received.authorization != format!("Bearer {API_KEY}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": { "type": "invalid_request_error",
                "message": "Invalid API Key provided: sk_test_****" } })),
        );
    }
    let count = stripe.received.lock().unwrap().len();
    let id = format!("cs_test_{count}");
    (
        StatusCode::OK,
        Json(json!({
            "id": id, "object": "checkout.session", "mode": received.field("mode"),
            "client_reference_id": received.field("client_reference_id"),
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        })),
    )
}
