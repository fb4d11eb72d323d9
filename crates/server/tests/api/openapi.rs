//! The OpenAPI document at `/api/openapi.json` and its page at `/api/docs`.
//!
//! Handlers are registered with utoipa-axum's `routes!`, which documents
//! them by construction. What can still slip past is a route added some
//! other way (`.route(...)`, a plain axum `Router`, a method added to a
//! `MethodRouter`): so the router is asked, for every path the source
//! names and every method, whether it serves it, and the answer must match
//! the document exactly, both ways.

use std::{
    collections::{BTreeSet, HashSet},
    path::{Path, PathBuf},
};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];
/// Methods probed: every one a document can hold but `HEAD`, which axum
/// answers for every `GET` route by itself.
const PROBED: [&str; 7] = ["get", "post", "put", "patch", "delete", "options", "trace"];

async fn document(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("the document is JSON")
}

/// Every (path, method) of the document, path parameters written `{}`.
fn documented(api: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                pairs.insert((template(path), method.to_owned()));
            }
        }
    }
    pairs
}

/// `/a/{id}/b` -> `/a/{}/b`: routes compare whatever their parameters' names.
fn template(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// A request path for a route: each parameter a well-formed UUID.
fn concrete(template: &str) -> String {
    template.replace("{}", "00000000-0000-4000-8000-000000000000")
}

#[tokio::test]
async fn the_document_is_well_formed_openapi_3_1() {
    let app = spawn_app().await;
    let api = document(&app).await;
    assert!(
        api["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        api["openapi"]
    );
    assert_eq!(api["info"]["title"], "Colloquy");
    assert!(api["info"]["version"].is_string());
    let tags: HashSet<&str> = api["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag["name"].as_str().unwrap())
        .collect();
    let schemes = api["components"]["securitySchemes"].as_object().unwrap();
    let mut operation_ids = HashSet::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let path_params: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let at = format!("{method} {path}");
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(
                operation_ids.insert(id.to_owned()),
                "{at}: duplicate operationId {id}"
            );
            let tag = operation["tags"][0].as_str().expect("a tag");
            assert!(tags.contains(tag), "{at}: tag {tag} is not declared");
            assert!(
                operation["summary"].is_string(),
                "{at}: no summary (a doc comment)"
            );
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with(['1', '2'])),
                "{at}: no success response"
            );
            for (status, response) in responses {
                assert!(
                    response["description"].is_string(),
                    "{at} {status}: no description"
                );
                if status.starts_with(['4', '5']) || status == "default" {
                    assert!(
                        response["content"]["application/json"]["schema"].is_object(),
                        "{at} {status}: an error without the JSON error body"
                    );
                }
            }
            let declared: BTreeSet<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{at}: path parameters are required");
                    p["name"].as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(declared, path_params, "{at}: path parameters");
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(
                        schemes.contains_key(scheme),
                        "{at}: unknown scheme {scheme}"
                    );
                }
            }
        }
    }
    // Every reference resolves.
    let text = api.to_string();
    let schemas = api["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").expect(target);
        assert!(schemas.contains_key(name), "unresolved {target}");
    }
}

#[tokio::test]
async fn the_document_says_who_may_call_and_how_errors_look() {
    let app = spawn_app().await;
    let api = document(&app).await;
    let op = |path: &str, method: &str| api["paths"][path][method].clone();
    // Public: no security requirement.
    for (path, method) in [
        ("/healthz", "get"),
        ("/api/config", "get"),
        ("/auth/login", "post"),
        ("/api/shared/{share_id}", "get"),
    ] {
        assert!(
            op(path, method)["security"].is_null(),
            "{method} {path} is public"
        );
    }
    // Signed in: a bearer token or `?token=`, and a 401 when neither.
    let list = op("/api/conversations", "get");
    assert_eq!(list["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(list["security"][1]["token_query"], serde_json::json!([]));
    assert!(list["responses"]["401"].is_object());
    // Admins: the `admin` role and a 403.
    for path in ["/api/analytics/summary", "/metrics"] {
        let admin = op(path, "get");
        assert_eq!(
            admin["security"][0]["bearer"],
            serde_json::json!(["admin"]),
            "{path}"
        );
        assert!(admin["responses"]["403"].is_object(), "{path}");
    }
    let error = &api["components"]["schemas"]["Error"];
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    let detail = &api["components"]["schemas"]["ErrorDetail"];
    assert!(
        detail["properties"]["code"].is_object() && detail["properties"]["message"].is_object()
    );
    // Sockets are documented as their upgrade, with the close codes.
    let socket = op("/api/v1/chat/ws", "get");
    assert!(socket["responses"]["101"].is_object());
    assert!(socket["description"].as_str().unwrap().contains("1008"));
    let names: Vec<&str> = socket["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"conversationId") && names.contains(&"last_seq"),
        "{names:?}"
    );
}

#[tokio::test]
async fn every_route_the_server_answers_is_documented_and_every_documented_one_is_served() {
    let app = spawn_app().await;
    let documented = documented(&document(&app).await);
    let assets = web_assets();
    let mut candidates: BTreeSet<String> = source_paths().iter().map(|p| template(p)).collect();
    candidates.extend(documented.iter().map(|(path, _)| path.clone()));
    let mut served = BTreeSet::new();
    for path in &candidates {
        let request_path = concrete(path);
        if assets.contains(&request_path) {
            continue;
        }
        for method in PROBED {
            let method_name = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .http
                .request(method_name, app.url(&request_path))
                .send()
                .await
                .unwrap();
            if is_served(response).await {
                served.insert((path.clone(), method.to_owned()));
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but missing from the OpenAPI document (register them with `routes!`): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
    assert!(served.len() >= 40, "the probe found too little: {served:?}");
}

/// Whether the router routed the request to a handler: not the 405 of a
/// known path with another method, not the fallback's `route` 404 (a
/// handler's own 404 names what it did not find).
async fn is_served(response: reqwest::Response) -> bool {
    match response.status().as_u16() {
        405 => false,
        404 => {
            let body: Value = response.json().await.unwrap_or_default();
            body["error"]["message"] != "route not found"
        }
        _ => true,
    }
}

/// Every string literal of the server's source that looks like a URL path:
/// wherever a route is added, its path is written there.
fn source_paths() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for file in rust_files(&source_dir()) {
        let text = std::fs::read_to_string(&file).unwrap();
        for literal in text.split('"').skip(1).step_by(2) {
            let path_like = literal.starts_with('/')
                && !literal.contains("//")
                && literal
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-.{}".contains(c));
            if path_like {
                paths.insert(literal.to_owned());
            }
        }
    }
    paths
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `/name` of every file of the UI: served, deliberately undocumented.
fn web_assets() -> HashSet<String> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    std::fs::read_dir(web)
        .unwrap()
        .map(|entry| format!("/{}", entry.unwrap().file_name().to_string_lossy()))
        .collect()
}

#[test]
fn no_route_is_added_outside_the_document() {
    // `OpenApiRouter::route` and plain axum routers add routes the document
    // never hears of; the UI's asset files are the one such route, on purpose.
    let mut found = Vec::new();
    for file in rust_files(&source_dir()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(source_dir())
            .unwrap()
            .display()
            .to_string();
        for needle in [
            ".route(",
            ".route_service(",
            ".nest_service(",
            ".nest(",
            "Router::new(",
        ] {
            for (at, _) in text.match_indices(needle) {
                let before = text[..at].chars().last();
                let plain_router =
                    needle == "Router::new(" && before.is_some_and(|c| c.is_alphanumeric());
                if !plain_router {
                    found.push(format!("{name}: {needle}"));
                }
            }
        }
    }
    let expected = [format!("http{}ui.rs: .route(", std::path::MAIN_SEPARATOR)];
    assert_eq!(
        found, expected,
        "register routes with `.routes(routes!(handler))`"
    );
}

#[tokio::test]
async fn the_docs_page_lists_every_operation_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let api = document(&app).await;
    let response = app.http.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = response.text().await.unwrap();
    for (path, item) in api["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_some()) {
            let anchor = format!("id=\"op-{method}-{}\"", path.replace(['/', '{', '}'], "_"));
            assert!(page.contains(&anchor), "{method} {path} is not on the page");
        }
    }
    assert!(page.contains("id=\"schema-Conversation\""));
    assert!(!page.contains("<script"), "the page runs no script");
    for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !page.contains(attribute),
            "the page loads nothing from elsewhere"
        );
    }
    let css = app.http.get(app.url("/api-docs.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}
