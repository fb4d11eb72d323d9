//! Conversation summaries: made on request and read back, only by the
//! owner, rate-limited, and rolling: once a long conversation's prompt is
//! trimmed, the upstream sees the summary in place of the trimmed turns.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{spawn_app_with, TestApp, EVENT_WAIT},
};

/// Send `content` over plain HTTP (in `conversation`, or a new one) and
/// return the answer once the reply is stored.
async fn say(app: &TestApp, token: &str, conversation: Option<&str>, content: &str) -> Value {
    let mut body = json!({ "content": content });
    if let Some(id) = conversation {
        body["conversation_id"] = json!(id);
    }
    let response = app.post_json("/api/messages", token, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn post_summary(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/conversations/{id}/summary")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The stored summary, waited for while a background refresh makes it.
async fn eventual_summary(app: &TestApp, id: &str, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let response = app
            .get(&format!("/api/conversations/{id}/summary"), token)
            .await;
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        assert_eq!(response.status(), 404);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rolling summary was stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_summary_is_made_with_a_capped_prompt_stored_and_read_back() {
    let app = spawn_app_with(|config| config.summaries.max_chars = 300).await;
    let token = app.register("summary@example.com").await;
    app.upstream
        .push(Script::tokens(&["Lisbon", " in", " May"]));
    let sent = say(&app, &token, None, "Where should I travel in spring?").await;
    let id = sent["conversation_id"].as_str().unwrap();
    let none = app
        .get(&format!("/api/conversations/{id}/summary"), &token)
        .await;
    assert_eq!(none.status(), 404);
    assert_eq!(
        none.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    app.upstream.push(Script::tokens(&[
        "  The user asked where to travel;",
        " Lisbon in May was suggested.  ",
    ]));
    let response = post_summary(&app, id, &token).await;
    assert_eq!(response.status(), 200);
    let made: Value = response.json().await.unwrap();
    assert_eq!(
        made["summary"],
        "The user asked where to travel; Lisbon in May was suggested."
    );
    assert_eq!(made["through_message_id"], sent["assistant_message"]["id"]);
    assert!(made["updated_at"].is_string(), "{made}");

    let prompt = app.upstream.requests().pop().unwrap();
    assert!(prompt["max_tokens"].as_u64().unwrap() <= 100, "{prompt}");
    let quoted = prompt["messages"][1]["content"].as_str().unwrap();
    assert!(
        quoted.contains("User: Where should I travel in spring?"),
        "{quoted}"
    );
    assert!(quoted.contains("Assistant: Lisbon in May"), "{quoted}");

    let stored: Value = app
        .get(&format!("/api/conversations/{id}/summary"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored, made);

    // Nothing new since: the stored summary is the answer, without the model.
    let requests = app.upstream.requests().len();
    let again: Value = post_summary(&app, id, &token).await.json().await.unwrap();
    assert_eq!(again, made);
    assert_eq!(app.upstream.requests().len(), requests);
}

#[tokio::test]
async fn only_the_owner_reads_or_makes_a_summary_and_an_empty_conversation_has_none() {
    let app = spawn_app_with(|_| {}).await;
    let owner = app.register("owner@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let sent = say(&app, &owner, None, "private thoughts").await;
    let id = sent["conversation_id"].as_str().unwrap();
    let requests = app.upstream.requests().len();

    for response in [
        post_summary(&app, id, &stranger).await,
        app.get(&format!("/api/conversations/{id}/summary"), &stranger)
            .await,
        post_summary(&app, &uuid::Uuid::now_v7().to_string(), &owner).await,
    ] {
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    assert_eq!(app.upstream.requests().len(), requests, "no model call");

    let bad = post_summary(&app, "not-a-uuid", &owner).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"]["code"].is_string());

    let empty: Value = app
        .post_json("/api/conversations", &owner, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let response = post_summary(&app, empty["id"].as_str().unwrap(), &owner).await;
    assert_eq!(response.status(), 409);
    assert_eq!(app.upstream.requests().len(), requests, "no model call");
}

#[tokio::test]
async fn summaries_are_rate_limited_per_user() {
    let app = spawn_app_with(|config| config.summaries.per_hour_per_user = 1).await;
    let token = app.register("eager@example.com").await;
    let sent = say(&app, &token, None, "one message").await;
    let id = sent["conversation_id"].as_str().unwrap();
    app.upstream.push(Script::tokens(&["A short chat."]));
    assert_eq!(post_summary(&app, id, &token).await.status(), 200);
    let refused = post_summary(&app, id, &token).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
}

#[tokio::test]
async fn trimmed_turns_reach_the_model_as_the_rolling_summary() {
    let app = spawn_app_with(|config| {
        config.history_budget_tokens = 60;
        config.summaries.rolling = true;
    })
    .await;
    let token = app.register("long@example.com").await;
    let long = format!("I am planning a trip to Lisbon. {}", "Details. ".repeat(40));
    app.upstream.push(Script::tokens(&["Noted"]));
    let first = say(&app, &token, None, &long).await;
    let id = first["conversation_id"].as_str().unwrap();

    // The second prompt cannot hold the first message: it is trimmed, and a
    // summary of it is made after the reply, in the background.
    app.upstream.push(Script::tokens(&["Sure"]));
    app.upstream
        .push(Script::tokens(&["The user plans a trip to Lisbon."]));
    say(&app, &token, Some(id), "What should I pack?").await;
    let summary = eventual_summary(&app, id, &token).await;
    assert_eq!(summary["summary"], "The user plans a trip to Lisbon.");
    assert_eq!(summary["through_message_id"], first["user_message"]["id"]);
    let requests = app.upstream.requests();
    assert_eq!(requests.len(), 3, "two replies and one summary");
    let second_prompt = requests[1]["messages"].to_string();
    assert!(
        !second_prompt.contains("Details."),
        "trimmed: {second_prompt}"
    );
    let summary_prompt = requests[2]["messages"][1]["content"].as_str().unwrap();
    assert!(
        summary_prompt.contains("trip to Lisbon"),
        "{summary_prompt}"
    );

    app.upstream.push(Script::tokens(&["Sunscreen"]));
    say(&app, &token, Some(id), "Anything else?").await;
    let requests = app.upstream.requests();
    assert_eq!(
        requests.len(),
        4,
        "the summary still covers the trimmed turns"
    );
    let messages = requests[3]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1]["role"], "system");
    assert_eq!(
        messages[1]["content"],
        "Summary of the earlier conversation: The user plans a trip to Lisbon."
    );
    assert_eq!(messages.last().unwrap()["content"], "Anything else?");
    assert!(!requests[3]["messages"].to_string().contains("Details."));
}
