//! Creating identities and checking passwords are throttled: per client
//! address (the socket peer, or `X-Forwarded-For` behind a trusted proxy)
//! and per email, answered 429 with `Retry-After`; password hashing runs in
//! a bounded number of slots and is shed with 503 `overloaded`.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

const PASSWORD: &str = "correct horse battery";

fn login(app: &TestApp, email: &str, password: &str) -> RequestBuilder {
    app.http
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": password }))
}

async fn status_and_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// Seconds in a response's `Retry-After`, which every 429 and 503 carries.
fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After missing: {response:?}"))
}

#[tokio::test]
async fn a_flood_of_anonymous_sign_ups_from_one_address_is_refused_after_the_burst() {
    let app = spawn_app().await;
    let burst = app.state.config.auth.anonymous_per_hour_per_ip as usize;
    let mut created = 0;
    let mut refused = 0;
    for attempt in 0..500 {
        let response = app
            .http
            .post(app.url("/api/auth/anonymous"))
            .send()
            .await
            .unwrap();
        if attempt < burst {
            assert_eq!(
                response.status(),
                201,
                "sign-up {attempt} is within the burst"
            );
            created += 1;
            continue;
        }
        assert!(retry_after(&response) >= 1);
        assert_eq!(
            status_and_code(response).await,
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned()),
            "sign-up {attempt} is beyond the burst"
        );
        refused += 1;
    }
    assert_eq!((created, refused), (burst, 500 - burst));
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(users as usize, burst, "refused sign-ups stored nothing");
}

#[tokio::test]
async fn a_hundred_concurrent_wrong_logins_are_mostly_refused_before_any_hashing() {
    let app = spawn_app().await;
    app.register("victim@example.com").await;
    let attempts = (0..100).map(|_| login(&app, "victim@example.com", "wrong guess").send());
    let responses = futures::future::join_all(attempts).await;
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(status_and_code(response.unwrap()).await);
    }
    let count = |status: u16| statuses.iter().filter(|(s, _)| *s == status).count();
    let (wrong, throttled, shed) = (count(401), count(429), count(503));
    assert_eq!(
        wrong + throttled + shed,
        100,
        "only 401, 429 or 503: {statuses:?}"
    );
    // Only as many as the address's and the account's sign-in budgets allow
    // ever reach a password check.
    let auth = &app.state.config.auth;
    let budget = auth
        .logins_per_minute_per_ip
        .min(auth.logins_per_minute_per_email) as usize;
    assert_eq!(throttled, 100 - budget, "{statuses:?}");
    assert!(statuses.iter().all(
        |(_, code)| ["invalid_credentials", "rate_limited", "overloaded"].contains(&code.as_str())
    ));
}

#[tokio::test]
async fn sign_ins_wait_briefly_for_a_hashing_slot_then_are_shed_with_503() {
    let app = spawn_app_with(|config| {
        config.auth.password_hash_concurrency = 1;
        config.auth.password_hash_wait_ms = 50;
        config.auth.logins_per_minute_per_ip = 1000;
        config.auth.logins_per_minute_per_email = 1000;
    })
    .await;
    app.register("busy@example.com").await;
    // Someone else's hash holds the only slot for the whole flood.
    let held = app.state.limits.password_slot().await.unwrap();
    let attempts = (0..100).map(|_| login(&app, "busy@example.com", PASSWORD).send());
    for response in futures::future::join_all(attempts).await {
        let response = response.unwrap();
        assert!(retry_after(&response) >= 1);
        assert_eq!(
            status_and_code(response).await,
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded".to_owned())
        );
    }
    let registration = app
        .http
        .post(app.url("/auth/register"))
        .json(&json!({ "email": "late@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(registration.status(), 503, "registering hashes too");
    drop(held);
    let response = login(&app, "busy@example.com", PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a free slot serves sign-ins again");
}

#[tokio::test]
async fn registrations_from_one_address_are_throttled() {
    let app = spawn_app_with(|config| config.auth.registrations_per_hour_per_ip = 2).await;
    app.register("one@example.com").await;
    app.register("two@example.com").await;
    let third = app
        .http
        .post(app.url("/auth/register"))
        .json(&json!({ "email": "three@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    // One of two an hour: the next is half an hour away.
    assert!(retry_after(&third) > 60, "{third:?}");
    let login = login(&app, "one@example.com", PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "signing in has its own budget");
}

#[tokio::test]
async fn a_forged_forwarded_for_does_not_escape_the_per_address_budget() {
    let app = spawn_app_with(|config| config.auth.logins_per_minute_per_ip = 2).await;
    for (attempt, forged) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .into_iter()
        .enumerate()
    {
        let response = login(&app, &format!("nobody{attempt}@example.com"), "guess")
            .header("X-Forwarded-For", forged)
            .send()
            .await
            .unwrap();
        let expected = if attempt < 2 { 401 } else { 429 };
        assert_eq!(response.status(), expected, "attempt {attempt}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_addresses_and_emails_have_their_own_budgets() {
    let app = spawn_app_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.auth.logins_per_minute_per_ip = 2;
        config.auth.logins_per_minute_per_email = 3;
    })
    .await;
    app.register("ada@example.com").await;
    let from = |client: &str| {
        login(&app, "ada@example.com", "wrong guess").header("X-Forwarded-For", client.to_owned())
    };
    let mut statuses = Vec::new();
    for client in [
        "203.0.113.1",
        "203.0.113.1",
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.2",
    ] {
        statuses.push(from(client).send().await.unwrap().status().as_u16());
    }
    // Two from the first address, then its budget is spent; the second
    // address is let in once, then the account's budget of three is spent.
    assert_eq!(statuses, [401, 401, 429, 401, 429]);
    let other = login(&app, "someone@example.com", "guess")
        .header("X-Forwarded-For", "203.0.113.3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        401,
        "other accounts and addresses are unaffected"
    );
}

#[tokio::test]
async fn a_signed_in_user_keeps_chatting_through_a_sign_up_and_login_flood() {
    let app = spawn_app().await;
    let token = app.register("steady@example.com").await;
    let (mut socket, _) = app.chat(&token, None).await;
    let flood = {
        let http = app.http.clone();
        let anonymous = app.url("/api/auth/anonymous");
        let login = app.url("/auth/login");
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for attempt in 0..300 {
                let response = if attempt % 2 == 0 {
                    http.post(&anonymous).send().await
                } else {
                    http.post(&login)
                        .json(&json!({ "email": "steady@example.com", "password": "wrong guess" }))
                        .send()
                        .await
                };
                statuses.push(response.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        })
    };
    for turn in 0..3 {
        app.upstream
            .push(crate::fake_openai::Script::tokens(&["still", " here"]));
        let ack = crate::helpers::send_text(&mut socket, &format!("turn {turn}"), None).await;
        let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
        assert_eq!(events.last().unwrap()["status"], "complete");
        assert_eq!(crate::helpers::concat_deltas(&events), "still here");
    }
    let statuses = flood.await.unwrap();
    assert!(
        statuses.contains(&429),
        "the flood was throttled: {statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|status| [201, 401, 429, 503].contains(status)));
}
