//! Coaching data over HTTP (seed 004): the profile, plans and their ordered
//! steps.

use colloquy::store;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

async fn patch_json(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.http
        .patch(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Create a plan with steps titled `steps`; returns the created plan.
async fn create_plan(app: &TestApp, token: &str, title: &str, steps: &[&str]) -> Value {
    let steps: Vec<Value> = steps.iter().map(|t| json!({ "title": t })).collect();
    let response = app
        .post_json(
            "/api/plans",
            token,
            json!({ "title": title, "steps": steps }),
        )
        .await;
    assert_eq!(response.status(), 201, "create plan {title}");
    response.json().await.unwrap()
}

fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

/// The plan's step titles in order, after checking the orders are 1..n.
async fn step_titles(app: &TestApp, token: &str, plan_id: &str) -> Vec<String> {
    let response = app.get(&format!("/api/plans/{plan_id}"), token).await;
    assert_eq!(response.status(), 200);
    let plan: Value = response.json().await.unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let orders: Vec<i64> = steps.iter().map(|s| s["order"].as_i64().unwrap()).collect();
    let dense: Vec<i64> = (1..=steps.len() as i64).collect();
    assert_eq!(orders, dense, "orders are dense in {plan}");
    steps
        .iter()
        .map(|s| s["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn plans_and_steps_can_be_created_read_changed_and_deleted() {
    let app = spawn_app().await;
    let token = app.register("coach@example.com").await;

    let response = app
        .post_json(
            "/api/plans",
            &token,
            json!({
                "title": "  Run a 5k ",
                "description": "Couch to 5k in eight weeks",
                "steps": [
                    { "title": "Buy shoes", "icon": "👟" },
                    { "title": "First run", "description": "Ten minutes, easy" },
                ],
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let plan: Value = response.json().await.unwrap();
    assert_eq!(plan["title"], "Run a 5k", "titles are trimmed");
    assert_eq!(plan["description"], "Couch to 5k in eight weeks");
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["order"], 1);
    assert_eq!(steps[0]["icon"], "👟");
    assert_eq!(steps[1]["order"], 2);
    assert_eq!(steps[1]["description"], "Ten minutes, easy");
    assert_eq!(steps[1]["icon"], "", "icon defaults to empty");
    let plan_path = format!("/api/plans/{}", id(&plan));

    // A plan without steps, created later, lists first.
    let bare = create_plan(&app, &token, "Sleep better", &[]).await;
    assert_eq!(bare["steps"], json!([]));
    let listed: Value = app.get("/api/plans", &token).await.json().await.unwrap();
    let titles: Vec<&str> = listed["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Sleep better", "Run a 5k"]);
    assert_eq!(listed["has_more"], false);

    let changed = patch_json(
        &app,
        &plan_path,
        &token,
        json!({ "description": "Eight weeks, three runs a week" }),
    )
    .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["title"], "Run a 5k", "absent fields are kept");
    assert_eq!(changed["description"], "Eight weeks, three runs a week");

    let added = app
        .post_json(
            &format!("{plan_path}/steps"),
            &token,
            json!({ "title": "Race day", "icon": "🏁" }),
        )
        .await;
    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["order"], 3, "appended without an order");
    assert_eq!(added["plan_id"], plan["id"]);
    let step_path = format!("/api/steps/{}", id(&added));

    let shown: Value = app.get(&step_path, &token).await.json().await.unwrap();
    assert_eq!(shown["title"], "Race day");
    let edited = patch_json(
        &app,
        &step_path,
        &token,
        json!({ "title": "Race day!", "description": "Enjoy it", "icon": "🥇" }),
    )
    .await;
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(edited["title"], "Race day!");
    assert_eq!(edited["description"], "Enjoy it");
    assert_eq!(edited["icon"], "🥇");
    assert_eq!(edited["order"], 3);

    let shown: Value = app.get(&plan_path, &token).await.json().await.unwrap();
    assert_eq!(shown["description"], "Eight weeks, three runs a week");
    assert_eq!(
        step_titles(&app, &token, id(&plan)).await,
        ["Buy shoes", "First run", "Race day!"]
    );

    assert_eq!(delete(&app, &step_path, &token).await.status(), 204);
    assert_eq!(app.get(&step_path, &token).await.status(), 404);
    assert_eq!(delete(&app, &plan_path, &token).await.status(), 204);
    assert_eq!(app.get(&plan_path, &token).await.status(), 404);
    assert_eq!(delete(&app, &plan_path, &token).await.status(), 404);
}

#[tokio::test]
async fn step_orders_stay_dense_through_inserts_moves_and_deletes() {
    let app = spawn_app().await;
    let token = app.register("orders@example.com").await;
    let plan = create_plan(&app, &token, "Plan", &["a", "b", "c"]).await;
    let plan_id = id(&plan);
    let steps_path = format!("/api/plans/{plan_id}/steps");
    let step_id = |title: &str| {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["title"] == title)
            .map(|s| id(s).to_owned())
            .unwrap()
    };

    let x: Value = app
        .post_json(&steps_path, &token, json!({ "title": "x", "order": 2 }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(x["order"], 2);
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["a", "x", "b", "c"]
    );

    let far: Value = app
        .post_json(&steps_path, &token, json!({ "title": "far", "order": 99 }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(far["order"], 5, "an order past the end appends");
    let first = app
        .post_json(&steps_path, &token, json!({ "title": "first", "order": 1 }))
        .await;
    assert_eq!(first.status(), 201);
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["first", "a", "x", "b", "c", "far"]
    );

    // Move down, move up, move past the end.
    let moved = patch_json(
        &app,
        &format!("/api/steps/{}", step_id("a")),
        &token,
        json!({ "order": 4 }),
    )
    .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(moved.json::<Value>().await.unwrap()["order"], 4);
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["first", "x", "b", "a", "c", "far"]
    );
    let moved = patch_json(
        &app,
        &format!("/api/steps/{}", step_id("c")),
        &token,
        json!({ "order": 1 }),
    )
    .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["c", "first", "x", "b", "a", "far"]
    );
    let moved: Value = patch_json(
        &app,
        &format!("/api/steps/{}", step_id("b")),
        &token,
        json!({ "order": 1000 }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(moved["order"], 6, "an order past the end moves to the end");
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["c", "first", "x", "a", "far", "b"]
    );

    // Deleting closes the gap.
    let deleted = delete(&app, &format!("/api/steps/{}", id(&x)), &token).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["c", "first", "a", "far", "b"]
    );
    let deleted = delete(&app, &format!("/api/steps/{}", step_id("c")), &token).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        step_titles(&app, &token, plan_id).await,
        ["first", "a", "far", "b"]
    );
}

#[tokio::test]
async fn the_profile_can_be_read_and_updated_and_refuses_bad_input() {
    let app = spawn_app().await;
    let token = app.register("profile@example.com").await;

    let unauthenticated = app.http.get(app.url("/api/profile")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let profile: Value = app.get("/api/profile", &token).await.json().await.unwrap();
    assert_eq!(
        profile,
        json!({ "full_name": null, "user_data": {}, "timezone": "UTC" })
    );

    let data = json!({ "goals": ["run a 5k"], "preferences": { "tone": "gentle" } });
    let updated = patch_json(
        &app,
        "/api/profile",
        &token,
        json!({ "full_name": " Ada Lovelace ", "user_data": data }),
    )
    .await;
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(updated["full_name"], "Ada Lovelace");
    assert_eq!(updated["user_data"], data);
    // The name is the account's name.
    let me: Value = app.get("/api/auth/me", &token).await.json().await.unwrap();
    assert_eq!(me["full_name"], "Ada Lovelace");

    // Only what is sent changes; user_data is replaced whole.
    let replaced: Value = patch_json(
        &app,
        "/api/profile",
        &token,
        json!({ "user_data": { "goals": [] } }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(replaced["full_name"], "Ada Lovelace");
    assert_eq!(replaced["user_data"], json!({ "goals": [] }));
    let cleared: Value = patch_json(&app, "/api/profile", &token, json!({ "full_name": null }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["full_name"], Value::Null);
    assert_eq!(cleared["user_data"], json!({ "goals": [] }));

    for (body, code) in [
        (json!({ "user_data": [1, 2] }), "invalid_user_data"),
        (json!({ "user_data": "goals" }), "invalid_user_data"),
        (
            json!({ "user_data": { "notes": "x".repeat(20_000) } }),
            "user_data_too_large",
        ),
        (json!({ "full_name": "two\nlines" }), "invalid_full_name"),
        (json!({ "full_name": "n".repeat(201) }), "invalid_full_name"),
        (json!({ "full_name": 7 }), "invalid_json"),
    ] {
        let refused = patch_json(&app, "/api/profile", &token, body.clone()).await;
        assert_eq!(refused.status(), 400, "{body}");
        assert_eq!(error_code(refused).await, code, "{body}");
    }
    let unchanged: Value = app.get("/api/profile", &token).await.json().await.unwrap();
    assert_eq!(unchanged, cleared, "refused updates change nothing");
}

#[tokio::test]
async fn another_users_plans_and_steps_are_a_404_for_every_verb() {
    let app = spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let other = app.register("other@example.com").await;
    let plan = create_plan(&app, &owner, "Private", &["secret step"]).await;
    let plan_path = format!("/api/plans/{}", id(&plan));
    let step_path = format!("/api/steps/{}", id(&plan["steps"][0]));

    assert_eq!(app.get(&plan_path, &other).await.status(), 404);
    assert_eq!(app.get(&step_path, &other).await.status(), 404);
    let hijack = json!({ "title": "hijacked", "order": 1 });
    for response in [
        patch_json(&app, &plan_path, &other, hijack.clone()).await,
        patch_json(&app, &step_path, &other, hijack.clone()).await,
        app.post_json(&format!("{plan_path}/steps"), &other, hijack.clone())
            .await,
        delete(&app, &step_path, &other).await,
        delete(&app, &plan_path, &other).await,
    ] {
        assert_eq!(response.status(), 404);
        assert_eq!(error_code(response).await, "not_found");
    }
    let listed: Value = app.get("/api/plans", &other).await.json().await.unwrap();
    assert_eq!(listed["plans"], json!([]));

    // The owner's plan is untouched.
    let mine: Value = app.get(&plan_path, &owner).await.json().await.unwrap();
    assert_eq!(mine["title"], "Private");
    assert_eq!(step_titles(&app, &owner, id(&plan)).await, ["secret step"]);
}

#[tokio::test]
async fn deleting_a_plan_deletes_its_steps() {
    let app = spawn_app().await;
    let token = app.register("cascade@example.com").await;
    let plan = create_plan(&app, &token, "Short-lived", &["one", "two"]).await;
    let step_ids: Vec<Uuid> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| id(s).parse().unwrap())
        .collect();

    let deleted = delete(&app, &format!("/api/plans/{}", id(&plan)), &token).await;
    assert_eq!(deleted.status(), 204);
    for step_id in step_ids {
        let path = format!("/api/steps/{step_id}");
        assert_eq!(app.get(&path, &token).await.status(), 404);
        // Gone from the database, not merely hidden.
        let stored = store::find_step(&app.state.db, step_id).await.unwrap();
        assert!(stored.is_none(), "step {step_id} was deleted with its plan");
    }
}

#[tokio::test]
async fn invalid_plan_and_step_input_gets_clear_400s() {
    let app = spawn_app().await;
    let token = app.register("invalid@example.com").await;
    let plan = create_plan(&app, &token, "Valid", &["only"]).await;
    let plan_path = format!("/api/plans/{}", id(&plan));
    let steps_path = format!("{plan_path}/steps");
    let step_path = format!("/api/steps/{}", id(&plan["steps"][0]));

    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({ "title": i.to_string() }))
        .collect();
    let refusals = [
        ("/api/plans", json!({ "title": "  " }), "empty_title"),
        (
            "/api/plans",
            json!({ "title": "t".repeat(201) }),
            "title_too_long",
        ),
        (
            "/api/plans",
            json!({ "description": "no title" }),
            "invalid_json",
        ),
        (
            "/api/plans",
            json!({ "title": "t", "description": "d".repeat(4001) }),
            "description_too_long",
        ),
        (
            "/api/plans",
            json!({ "title": "t", "steps": [{ "title": "ok" }, { "title": "" }] }),
            "empty_title",
        ),
        (
            "/api/plans",
            json!({ "title": "t", "steps": too_many }),
            "too_many_steps",
        ),
        (
            steps_path.as_str(),
            json!({ "title": "t", "icon": "i".repeat(65) }),
            "invalid_icon",
        ),
        (
            steps_path.as_str(),
            json!({ "title": "t", "order": 0 }),
            "invalid_order",
        ),
        (
            steps_path.as_str(),
            json!({ "title": "t", "order": 1.5 }),
            "invalid_json",
        ),
    ];
    for (path, body, code) in refusals {
        let response = app.post_json(path, &token, body.clone()).await;
        assert_eq!(response.status(), 400, "{path} {body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{path} {body}: {error}");
        if body["steps"][1]["title"] == "" {
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("steps[1]"), "names the step: {message}");
        }
    }
    for (path, body, code) in [
        (&plan_path, json!({ "title": "" }), "empty_title"),
        (&step_path, json!({ "title": "a\nb" }), "invalid_characters"),
        (&step_path, json!({ "order": -1 }), "invalid_order"),
        (
            &step_path,
            json!({ "description": "a\u{0}b" }),
            "invalid_characters",
        ),
    ] {
        let response = patch_json(&app, path, &token, body.clone()).await;
        assert_eq!(response.status(), 400, "{path} {body}");
        assert_eq!(error_code(response).await, code, "{path} {body}");
    }
    assert_eq!(step_titles(&app, &token, id(&plan)).await, ["only"]);

    // Ids: malformed is a 400, unknown a 404, both JSON.
    let malformed = app.get("/api/plans/not-a-uuid", &token).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_code(malformed).await, "invalid_path");
    let malformed = app.get("/api/steps/not-a-uuid", &token).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_code(malformed).await, "invalid_path");
    let unknown = app
        .get(&format!("/api/plans/{}", Uuid::now_v7()), &token)
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_code(unknown).await, "not_found");
    let unknown = app
        .post_json(
            &format!("/api/plans/{}/steps", Uuid::now_v7()),
            &token,
            json!({ "title": "t" }),
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_full_plan_refuses_another_step() {
    let app = spawn_app().await;
    let token = app.register("full@example.com").await;
    let titles: Vec<String> = (1..=100).map(|i| format!("step {i}")).collect();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let plan = create_plan(&app, &token, "Full", &titles).await;
    let refused = app
        .post_json(
            &format!("/api/plans/{}/steps", id(&plan)),
            &token,
            json!({ "title": "one too many" }),
        )
        .await;
    assert_eq!(refused.status(), 409);
    assert_eq!(error_code(refused).await, "conflict");
}
