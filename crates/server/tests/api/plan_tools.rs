//! The voice coach's plan tools end to end (seed 004): the fake upstream
//! calls `get_plan_progress` and `complete_step`, the server answers from
//! the caller's own plans only, and completing a step shows in the plan API.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app, Socket, TestApp},
};

/// Have the model make one call, then answer "Done."; returns the call's
/// `end` event.
async fn call_tool(app: &TestApp, socket: &mut Socket, name: &str, arguments: Value) -> Value {
    app.upstream
        .push(Script::tool_calls(&[("c1", name, &arguments.to_string())]));
    app.upstream.push(Script::tokens(&["Done."]));
    let ack = send_text(socket, "Coach me", None).await;
    let events = socket.reply_events(ack["reply_id"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["status"], "complete", "{events:?}");
    events
        .into_iter()
        .find(|e| e["type"] == "tool" && e["status"] == "end")
        .expect("the call ended")
}

fn step_id(plan: &Value, index: usize) -> &str {
    plan["steps"][index]["id"].as_str().unwrap()
}

#[tokio::test]
async fn completing_steps_moves_the_plan_forward_for_its_owner_only() {
    let app = spawn_app().await;
    let other = app.register("other@example.com").await;
    let theirs = app.plan(&other, "Theirs", &["x"]).await;
    let token = app.register("coached@example.com").await;
    let plan = app
        .plan(&token, "Run a 5k", &["Buy shoes", "Run 1k", "Run 5k"])
        .await;
    let plan_id = plan["id"].as_str().unwrap();
    let (mut socket, _) = app.chat(&token, None).await;

    let progress = call_tool(
        &app,
        &mut socket,
        "get_plan_progress",
        json!({ "plan_id": plan_id }),
    )
    .await;
    let result = &progress["result"];
    assert_eq!(result["title"], "Run a 5k");
    assert_eq!(result["current_order"], 1);
    assert_eq!(result["total_steps"], 3);
    assert_eq!(result["completed_steps"], 0);
    assert_eq!(result["steps"][0]["step_id"], step_id(&plan, 0));
    assert_eq!(result["steps"][0]["completed"], false);

    let done = call_tool(
        &app,
        &mut socket,
        "complete_step",
        json!({ "step_id": step_id(&plan, 0) }),
    )
    .await;
    let result = &done["result"];
    assert_eq!(result["completed"]["title"], "Buy shoes");
    assert_eq!(result["already_completed"], false);
    assert_eq!(result["plan"]["current_order"], 2);
    assert_eq!(result["next_step"]["title"], "Run 1k");
    let shown: Value = app
        .get(&format!("/api/plans/{plan_id}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(shown["steps"][0]["completed_at"].is_string(), "{shown}");
    assert!(shown["steps"][1]["completed_at"].is_null());

    // Another user's plan and step are as missing as a made-up one.
    let stolen = call_tool(
        &app,
        &mut socket,
        "complete_step",
        json!({ "step_id": step_id(&theirs, 0) }),
    )
    .await;
    assert_eq!(stolen["error"]["code"], "not_found");
    let peek = call_tool(
        &app,
        &mut socket,
        "get_plan_progress",
        json!({ "plan_id": theirs["id"] }),
    )
    .await;
    assert_eq!(peek["error"]["code"], "not_found");
    let theirs_now: Value = app
        .get(
            &format!("/api/plans/{}", theirs["id"].as_str().unwrap()),
            &other,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs_now["steps"][0]["completed_at"].is_null());
    let bad = call_tool(
        &app,
        &mut socket,
        "complete_step",
        json!({ "step_id": "not-an-id" }),
    )
    .await;
    assert_eq!(bad["error"]["code"], "invalid_arguments");

    // Without ids, a conversation not about a step lists the user's plans
    // and cannot complete anything.
    let listed = call_tool(&app, &mut socket, "get_plan_progress", json!({})).await;
    let plans = listed["result"]["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 1, "only the caller's: {plans:?}");
    assert_eq!(plans[0]["current_order"], 2);
    let nothing = call_tool(&app, &mut socket, "complete_step", json!({})).await;
    assert_eq!(nothing["error"]["code"], "invalid_arguments");
}

#[tokio::test]
async fn in_a_conversation_about_a_step_the_tools_default_to_that_step() {
    let app = spawn_app().await;
    let token = app.register("voice-coached@example.com").await;
    let plan = app
        .plan(&token, "Learn Rust", &["Read the book", "Write a CLI"])
        .await;
    let (mut socket, ready) = app.chat(&token, None).await;
    // A first message stores the conversation; then tie it to the last step
    // as a voice session on that step does.
    call_tool(&app, &mut socket, "get_current_time", json!({})).await;
    let conversation: Uuid = ready["conversation_id"].as_str().unwrap().parse().unwrap();
    let step: Uuid = step_id(&plan, 1).parse().unwrap();
    colloquy::store::attach_step(&app.state.db, conversation, step)
        .await
        .unwrap();

    let progress = call_tool(&app, &mut socket, "get_plan_progress", json!({})).await;
    assert_eq!(progress["result"]["plan_id"], plan["id"]);
    assert_eq!(progress["result"]["current_order"], 1);
    let done = call_tool(&app, &mut socket, "complete_step", json!({})).await;
    assert_eq!(done["result"]["completed"]["order"], 2);
    assert_eq!(
        done["result"]["plan"]["current_order"], 1,
        "the first step is still to do"
    );
    let again = call_tool(&app, &mut socket, "complete_step", json!({})).await;
    assert_eq!(again["result"]["already_completed"], true);
    assert_eq!(
        again["result"]["completed_at"],
        done["result"]["completed_at"]
    );
}
