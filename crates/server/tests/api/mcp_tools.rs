//! `[[tools.mcp]]` end to end: the server starts the MCP test double
//! (`examples/mcp_test_server.rs`, built with rmcp's server side) over
//! stdio, offers its tools as `calc__<tool>`, and calls them when the fake
//! upstream asks; a server that exits is started again; a server whose
//! tool list changes is listed again.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use colloquy::config::tools::McpServerConfig;
use serde_json::{json, Value};

use crate::{
    fake_openai::Script,
    helpers::{send_text, spawn_app_with, TestApp},
};

/// The test double's executable, built once per test run (a no-op when it
/// is up to date; CI's `cargo test --workspace` has built it already).
fn mcp_test_server() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // This binary is <target>/<profile>/deps/api-<hash>.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("a profile dir");
        let target_dir = profile_dir.parent().expect("a target dir");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "colloquy",
                "--example",
                "mcp_test_server",
            ])
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        // The same features as this test binary, so nothing is rebuilt.
        let features: Vec<&str> = [
            (cfg!(feature = "local-llm"), "local-llm"),
            (cfg!(feature = "voice-local"), "voice-local"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !features.is_empty() {
            build.arg("--features").arg(features.join(","));
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the MCP test server failed");
        profile_dir
            .join("examples")
            .join(format!("mcp_test_server{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A server whose config declares the test double as MCP server `calc`.
async fn spawn_app_with_calc() -> TestApp {
    spawn_app_with_calc_and(|_| {}).await
}

/// [`spawn_app_with_calc`], with the config further adjusted by `tweak`.
async fn spawn_app_with_calc_and(tweak: impl FnOnce(&mut colloquy::config::Config)) -> TestApp {
    let command = mcp_test_server().to_string_lossy().into_owned();
    spawn_app_with(move |config| {
        config.tools.mcp = vec![McpServerConfig {
            name: "calc".into(),
            command: Some(command),
            args: Vec::new(),
            url: None,
        }];
        config.tools.mcp_restart_min_ms = 50;
        tweak(config);
    })
    .await
}

/// The tool names offered in the upstream's first request.
fn offered(app: &TestApp) -> Vec<String> {
    app.upstream.requests()[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Ask something, let the upstream call `name` with `arguments`, and
/// return the reply's events.
async fn call_tool(app: &TestApp, email: &str, name: &str, arguments: &str) -> Vec<Value> {
    app.upstream
        .push(Script::tool_calls(&[("call_1", name, arguments)]));
    app.upstream.push(Script::tokens(&["Done."]));
    let token = app.register(email).await;
    let (mut socket, _) = app.chat(&token, None).await;
    let ack = send_text(&mut socket, "Use the tool", None).await;
    socket.reply_events(ack["reply_id"].as_str().unwrap()).await
}

/// A reply in which the upstream calls `calc__add(a, b)`.
async fn add(app: &TestApp, email: &str, a: i64, b: i64) -> Vec<Value> {
    let arguments = json!({ "a": a, "b": b }).to_string();
    call_tool(app, email, "calc__add", &arguments).await
}

/// Wait until the registry offers `name`.
async fn offered_soon(app: &TestApp, name: &str) {
    let tools = app.state.turns.tools().clone();
    let offered = async {
        while !tools.definitions().iter().any(|d| d.name == name) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), offered)
        .await
        .unwrap_or_else(|_| panic!("{name} is offered"));
}

fn tool_event<'a>(events: &'a [Value], status: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == "tool" && e["status"] == status)
        .unwrap_or_else(|| panic!("a tool {status} event in {events:?}"))
}

#[tokio::test]
async fn an_mcp_tool_is_offered_with_its_server_prefix_and_its_result_reaches_the_model() {
    let app = spawn_app_with_calc().await;
    let events = add(&app, "mcp-add@example.com", 2, 3).await;
    let start = tool_event(&events, "start");
    assert_eq!(start["name"], "calc__add");
    assert_eq!(start["arguments"], json!({ "a": 2, "b": 3 }));
    let end = tool_event(&events, "end");
    assert_eq!(end["result"], json!({ "content": "5" }), "{end}");
    assert_eq!(events.last().unwrap()["status"], "complete");

    let requests = app.upstream.requests();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap())
        .collect();
    for name in ["calc__add", "calc__fail", "calc__crash", "calculate"] {
        assert!(offered.contains(&name), "{name} offered: {offered:?}");
    }
    let messages = requests[1]["messages"].as_array().unwrap();
    let result = messages.last().unwrap();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], "call_1");
    let content: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({ "content": "5" }));
}

#[tokio::test]
async fn an_mcp_tool_error_ends_the_call_with_the_servers_message() {
    let app = spawn_app_with_calc().await;
    let events = call_tool(&app, "mcp-fail@example.com", "calc__fail", "{}").await;
    let end = tool_event(&events, "end");
    assert_eq!(end["error"]["code"], "tool_failed");
    assert_eq!(end["error"]["message"], "the tool failed on purpose");
    assert_eq!(events.last().unwrap()["status"], "complete");
}

#[tokio::test]
async fn an_mcp_server_that_exits_is_unavailable_then_restarted_with_its_tools() {
    let app = spawn_app_with_calc().await;
    let events = call_tool(&app, "mcp-crash@example.com", "calc__crash", "{}").await;
    let end = tool_event(&events, "end");
    assert_eq!(end["error"]["code"], "tool_unavailable", "{end}");
    assert_eq!(events.last().unwrap()["status"], "complete");

    // The supervisor starts the server again after its backoff.
    offered_soon(&app, "calc__add").await;
    let events = add(&app, "mcp-again@example.com", 1, 1).await;
    assert_eq!(
        tool_event(&events, "end")["result"],
        json!({ "content": "2" })
    );
}

#[tokio::test]
async fn a_tool_list_change_adds_the_new_tool() {
    let app = spawn_app_with_calc().await;
    assert!(!app
        .state
        .turns
        .tools()
        .definitions()
        .iter()
        .any(|d| d.name == "calc__sub"));
    let events = call_tool(&app, "mcp-grow@example.com", "calc__grow", "{}").await;
    assert_eq!(
        tool_event(&events, "end")["result"],
        json!({ "content": "grown" })
    );
    offered_soon(&app, "calc__sub").await;
    let arguments = json!({ "a": 5, "b": 3 }).to_string();
    let events = call_tool(&app, "mcp-sub@example.com", "calc__sub", &arguments).await;
    assert_eq!(
        tool_event(&events, "end")["result"],
        json!({ "content": "2" })
    );
}

#[tokio::test]
async fn only_allowed_mcp_tools_are_offered_or_callable() {
    let app = spawn_app_with_calc_and(|config| {
        config.tools.allow = Some(vec!["calc__a*".into()]);
    })
    .await;
    let events = add(&app, "mcp-allowed@example.com", 2, 2).await;
    assert_eq!(
        tool_event(&events, "end")["result"],
        json!({ "content": "4" })
    );
    let names = offered(&app);
    assert!(names.iter().any(|n| n == "calc__add"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "calculate"),
        "built-ins are not filtered: {names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n == "calc__fail" || n == "calc__crash"),
        "{names:?}"
    );

    let events = call_tool(&app, "mcp-refused@example.com", "calc__crash", "{}").await;
    assert_eq!(tool_event(&events, "end")["error"]["code"], "unknown_tool");
    // The refused call never reached the server: it is still up.
    let events = add(&app, "mcp-still-up@example.com", 1, 2).await;
    assert_eq!(
        tool_event(&events, "end")["result"],
        json!({ "content": "3" })
    );
}

#[tokio::test]
async fn an_oversized_message_from_a_stdio_server_is_dropped_not_buffered() {
    let app = spawn_app_with_calc_and(|config| {
        config.tools.mcp_max_message_bytes = 64 * 1024;
        config.tools.tool_timeout_secs = 2;
    })
    .await;
    // A 4 MiB line, 64 times the cap: read and dropped as it arrives, so
    // the call gets no answer and ends at its time limit.
    let arguments = json!({ "bytes": 4 * 1024 * 1024 }).to_string();
    let events = call_tool(&app, "mcp-huge@example.com", "calc__huge", &arguments).await;
    assert_eq!(tool_event(&events, "end")["error"]["code"], "timeout");
    assert_eq!(events.last().unwrap()["status"], "complete");
    // The connection survives the dropped line: the next call is answered.
    let events = add(&app, "mcp-after-huge@example.com", 20, 22).await;
    assert_eq!(
        tool_event(&events, "end")["result"],
        json!({ "content": "42" })
    );
    // Under the cap, the answer arrives (and the result size cap applies).
    let arguments = json!({ "bytes": 32 * 1024 }).to_string();
    let events = call_tool(&app, "mcp-big@example.com", "calc__huge", &arguments).await;
    assert_eq!(
        tool_event(&events, "end")["error"]["code"],
        "result_too_large"
    );
}
