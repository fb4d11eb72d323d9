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

/// The stored summary of the branch shown once it says `text`, waited for
/// while a background refresh makes it (none yet, or an older one).
async fn summary_saying(app: &TestApp, id: &str, token: &str, text: &str) -> Value {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let response = app
            .get(&format!("/api/conversations/{id}/summary"), token)
            .await;
        let status = response.status();
        if status == 200 {
            let summary: Value = response.json().await.unwrap();
            if summary["summary"] == text {
                return summary;
            }
        } else {
            assert_eq!(status, 404);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rolling summary saying {text:?} was stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server whose prompts trim all but the newest turns, with rolling
/// summaries on.
async fn rolling_app() -> TestApp {
    spawn_app_with(|config| {
        config.history_budget_tokens = 60;
        config.summaries.rolling = true;
    })
    .await
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
    let app = rolling_app().await;
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
    let summary = summary_saying(&app, id, &token, "The user plans a trip to Lisbon.").await;
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

    // This reply's prompt trims the first reply too, which the summary does
    // not cover yet: it is brought forward after the reply, continuing the
    // stored one (asserting "no refresh" here raced that refresh).
    app.upstream.push(Script::tokens(&["Sunscreen"]));
    app.upstream
        .push(Script::tokens(&["Lisbon, with sunscreen packed."]));
    say(&app, &token, Some(id), "Anything else?").await;
    summary_saying(&app, id, &token, "Lisbon, with sunscreen packed.").await;
    let requests = app.upstream.requests();
    assert_eq!(requests.len(), 5, "three replies and two summaries");
    let continued = requests[4]["messages"][1]["content"].as_str().unwrap();
    assert!(
        continued.starts_with("Summary so far:\nThe user plans a trip to Lisbon."),
        "{continued}"
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

/// Whether the upstream request `index` mentions `text` anywhere in its prompt.
fn prompt_mentions(app: &TestApp, index: usize, text: &str) -> bool {
    app.upstream.requests()[index]["messages"]
        .to_string()
        .contains(text)
}

#[tokio::test]
async fn a_summary_follows_the_branch_it_stands_in_for() {
    let app = rolling_app().await;
    let token = app.register("branchy@example.com").await;
    let details = "Details. ".repeat(40);
    app.upstream.push(Script::tokens(&["Noted"]));
    let lisbon = say(&app, &token, None, &format!("A trip to Lisbon. {details}")).await;
    let id = lisbon["conversation_id"].as_str().unwrap();
    app.upstream.push(Script::tokens(&["Sure"]));
    app.upstream
        .push(Script::tokens(&["The user plans Lisbon."]));
    say(&app, &token, Some(id), "What should I pack?").await;
    summary_saying(&app, id, &token, "The user plans Lisbon.").await;

    // The first question edited: a new first message, so a second branch
    // whose prompts must never carry the first branch's summary.
    let body = json!({ "content": format!("A trip to Oslo. {details}"), "conversation_id": id, "parent_id": null });
    app.upstream.push(Script::tokens(&["Noted"]));
    let edit = app.post_json("/api/messages", &token, body).await;
    assert_eq!(edit.status(), 200);
    let oslo: Value = edit.json().await.unwrap();
    assert!(!prompt_mentions(&app, 3, "Lisbon"), "the edit's own prompt");
    let stored = app
        .get(&format!("/api/conversations/{id}/summary"), &token)
        .await;
    assert_eq!(
        stored.status(),
        404,
        "the stored summary is of another branch"
    );

    app.upstream.push(Script::tokens(&["Boots"]));
    app.upstream.push(Script::tokens(&["The user plans Oslo."]));
    say(&app, &token, Some(id), "What should I wear?").await;
    assert!(!prompt_mentions(&app, 4, "Lisbon"), "trimmed without it");
    assert!(
        !prompt_mentions(&app, 4, "Details."),
        "the Oslo turn is trimmed"
    );
    let summary = summary_saying(&app, id, &token, "The user plans Oslo.").await;
    assert_eq!(summary["through_message_id"], oslo["user_message"]["id"]);
    let summary_prompt = app.upstream.requests()[5]["messages"][1]["content"].to_string();
    assert!(summary_prompt.contains("Oslo"), "{summary_prompt}");
    assert!(
        !summary_prompt.contains("Lisbon"),
        "started over: {summary_prompt}"
    );

    // The summary stands in for the trimmed Oslo turns; this reply trims
    // more of them, so the summary is brought forward after it.
    app.upstream.push(Script::tokens(&["Gloves"]));
    app.upstream
        .push(Script::tokens(&["Oslo, in warm clothes."]));
    say(&app, &token, Some(id), "Anything else?").await;
    let messages = app.upstream.requests()[6]["messages"].clone();
    assert_eq!(
        messages[1]["content"],
        "Summary of the earlier conversation: The user plans Oslo."
    );
    summary_saying(&app, id, &token, "Oslo, in warm clothes.").await;
    let continued = app.upstream.requests()[7]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        continued.contains("Summary so far:\nThe user plans Oslo."),
        "{continued}"
    );

    // Back on the first branch, a summary asked for covers that branch
    // alone, from the start.
    let back = app
        .http
        .put(app.url(&format!("/api/conversations/{id}/active")))
        .bearer_auth(&token)
        .json(&json!({ "message_id": lisbon["user_message"]["id"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    app.upstream.push(Script::tokens(&["Lisbon, packing."]));
    let response = post_summary(&app, id, &token).await;
    assert_eq!(response.status(), 200);
    let made: Value = response.json().await.unwrap();
    assert_eq!(made["summary"], "Lisbon, packing.");
    let quoted = app.upstream.requests()[8]["messages"][1]["content"].to_string();
    assert!(
        quoted.contains("Lisbon") && quoted.contains("What should I pack?"),
        "{quoted}"
    );
    assert!(
        !quoted.contains("Oslo") && !quoted.contains("Summary so far"),
        "{quoted}"
    );
}
