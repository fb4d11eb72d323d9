//! The browser UI: the files of `web/` embedded into the binary with
//! `rust-embed`, so `colloquy serve` alone serves the chat at `/` and the
//! seed 001 socket test page at `/v2/chat/test`.
//!
//! Every embedded file gets one explicit route (`/app.js`, `/style.css`, ...)
//! rather than a catch-all: unknown paths, `/api/...` ones above all, still
//! reach the router's JSON 404 fallback, and an asset can never shadow an API
//! route. Responses carry a strong `ETag` (a hash of the content) and
//! `Cache-Control: no-cache`, so a browser revalidates on every load and gets
//! a cheap `304` until the server ships different files.
//!
//! In debug builds `rust-embed` reads `web/` from disk at run time, so an
//! edit shows on reload without a rebuild; release builds carry the bytes.

use axum::{
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use rust_embed::RustEmbed;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{error::AppError, AppState};

/// The `web/` directory at the workspace root.
#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Assets;

/// The page served at `/`.
const INDEX: &str = "index.html";
/// The seed 001 test page, served at `/v2/chat/test`. It lives at the top of
/// `web/` because a `web/v2/chat/` folder would collide with the
/// `/v2/chat/{session_id}` socket route.
const V2_TEST_PAGE: &str = "v2-chat-test.html";

/// What HTML pages may load: only this origin's scripts and styles, no
/// plugins, no framing. The UI never builds HTML from strings, so this is a
/// second line of defence should a bug ever let model output reach the DOM
/// as markup. `ws:`/`wss:` are listed because older browsers do not count
/// same-host sockets as `'self'`.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The read-only page of a share link, served at `/s/{share_id}`.
const SHARED_PAGE: &str = "shared.html";

/// `/`, `/v2/chat/test` and `/s/{share_id}`, documented; then one route per
/// embedded file, left out of the OpenAPI document: they are the UI's
/// scripts and styles, not an API, and the tag `ui` says they exist.
pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(v2_test_page))
        .routes(routes!(shared_page));
    for path in Assets::iter() {
        // Route syntax characters in a file name would change the route's
        // meaning (or panic the router); such files are simply not served.
        if path.contains(['{', '}', '*', ':']) {
            tracing::warn!(%path, "web asset name is not routable; skipped");
            continue;
        }
        let route = format!("/{path}");
        let path = path.into_owned();
        // The one route added outside the document (see the test
        // `no_route_is_added_outside_the_document`).
        router = router.route(
            &route,
            get(move |headers: HeaderMap| {
                let path = path.clone();
                async move { serve(&path, &headers) }
            }),
        );
    }
    router
}

/// The chat UI.
#[utoipa::path(
    get, path = "/", tag = "ui",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn index(headers: HeaderMap) -> Response {
    serve(INDEX, &headers)
}

/// The seed 001 socket test page.
#[utoipa::path(
    get, path = "/v2/chat/test", tag = "ui",
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn v2_test_page(headers: HeaderMap) -> Response {
    serve(V2_TEST_PAGE, &headers)
}

/// The read-only page of a share link.
///
/// The page reads the id from its URL and loads `GET /api/shared/{share_id}`.
#[utoipa::path(
    get, path = "/s/{share_id}", tag = "ui",
    params(("share_id" = String, Path, description = "The id from the share link.")),
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
async fn shared_page(headers: HeaderMap) -> Response {
    serve(SHARED_PAGE, &headers)
}

/// The headers of every HTML page this server sends: the CSP above and no
/// framing, besides those of every file.
pub(super) fn page_headers(out: &mut HeaderMap) {
    file_headers(out);
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    out.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
}

/// The headers of every file: no sniffing, no referrer.
fn file_headers(out: &mut HeaderMap) {
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Answer one asset: `304` when the browser's copy is current, else the bytes.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return AppError::NotFound("asset").into_response();
    };
    let etag = etag_of(&file.metadata.sha256_hash());
    let mut response = if matches_etag(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = file.data.into_owned().into_response();
        let content_type = HeaderValue::from_str(&content_type(path))
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        response
    };
    let out = response.headers_mut();
    // `no-cache` means "revalidate before use", not "do not store": with the
    // ETag below an unchanged file costs one tiny 304 round trip.
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    if path.ends_with(".html") {
        page_headers(out);
    } else {
        file_headers(out);
    }
    response
}

/// The `Content-Type` for a file name; text gets an explicit UTF-8 charset
/// so browsers never guess an encoding.
fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
        || mime.subtype() == mime_guess::mime::JSON
        || mime.suffix() == Some(mime_guess::mime::XML);
    if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// A strong entity tag from the content hash (half of it is plenty).
fn etag_of(hash: &[u8; 32]) -> String {
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak comparison, as
/// RFC 9110 prescribes for `If-None-Match`: a `W/` prefix is ignored.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_styles_and_pages_get_utf8_text_types() {
        assert!(content_type("app.js").contains("javascript"));
        assert!(content_type("app.js").ends_with("charset=utf-8"));
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("icon.png"), "image/png");
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = etag_of(&[7; 32]);
        let mut headers = HeaderMap::new();
        assert!(!matches_etag(&headers, &etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{etag}")).unwrap(),
        );
        assert!(matches_etag(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"nope\""));
        assert!(!matches_etag(&headers, &etag));
    }

    #[test]
    fn the_index_and_test_page_are_embedded() {
        assert!(Assets::get(INDEX).is_some());
        assert!(Assets::get(V2_TEST_PAGE).is_some());
    }
}
