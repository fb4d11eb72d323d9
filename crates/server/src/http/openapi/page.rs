//! The `/api/docs` page: the OpenAPI document rendered as plain HTML on the
//! server. Swagger UI, Redoc and Scalar are JavaScript bundles fetched from
//! a CDN or at build time; this page needs neither, runs no script, and is
//! styled by the UI's own `/api-docs.css`, so it passes the same
//! Content-Security-Policy as the rest of the UI.
//!
//! It reads the document as JSON rather than utoipa's types: the JSON is
//! what clients see, so the page cannot show something the document lacks.

use std::fmt::Write;

use serde_json::{Map, Value};

/// How deep nested schemas are expanded before they are cut short.
const MAX_DEPTH: usize = 6;
/// The methods a path item may hold, in the order they are shown.
const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// The whole page for the document `api`.
pub fn render(api: &Value) -> String {
    let title = escape(&text(&api["info"]["title"]));
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} API</title><link rel=\"stylesheet\" href=\"/api-docs.css\"></head>\
         <body><header><h1>{title} API <small>{version}</small></h1>{description}\
         <p><a href=\"/api/openapi.json\">OpenAPI {openapi} document (JSON)</a></p></header>",
        version = escape(&text(&api["info"]["version"])),
        description = prose(&api["info"]["description"]),
        openapi = escape(&text(&api["openapi"])),
    );
    let tags = tags(api);
    out.push_str("<nav><ul>");
    for (name, _) in &tags {
        let _ = write!(out, "<li><a href=\"#tag-{0}\">{0}</a></li>", escape(name));
    }
    out.push_str("<li><a href=\"#schemas\">schemas</a></li></ul></nav><main>");
    for (name, description) in &tags {
        let _ = write!(
            out,
            "<section id=\"tag-{0}\"><h2>{0}</h2>{1}",
            escape(name),
            prose(description)
        );
        for (path, method, operation) in operations(api) {
            if tag_of(operation) == name.as_str() {
                render_operation(&mut out, path, method, operation);
            }
        }
        out.push_str("</section>");
    }
    render_schemas(&mut out, api);
    out.push_str("</main></body></html>\n");
    out
}

/// The declared tags in order, then any tag used but not declared.
fn tags(api: &Value) -> Vec<(String, Value)> {
    let mut tags: Vec<(String, Value)> = api["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tag| (text(&tag["name"]), tag["description"].clone()))
        .collect();
    for (_, _, operation) in operations(api) {
        let tag = tag_of(operation);
        if !tags.iter().any(|(name, _)| name == tag) {
            tags.push((tag.to_owned(), Value::Null));
        }
    }
    tags
}

fn tag_of(operation: &Value) -> &str {
    operation["tags"][0].as_str().unwrap_or("other")
}

/// Every operation as (path, method, operation), paths in document order.
fn operations(api: &Value) -> impl Iterator<Item = (&str, &'static str, &Value)> {
    api["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            METHODS.into_iter().filter_map(move |method| {
                item.get(method)
                    .map(|operation| (path.as_str(), method, operation))
            })
        })
}

fn render_operation(out: &mut String, path: &str, method: &str, operation: &Value) {
    let _ = write!(
        out,
        "<details class=\"op\" id=\"op-{method}-{anchor}\"><summary>\
         <span class=\"method {method}\">{upper}</span> <code class=\"path\">{path}</code> \
         <span class=\"summary\">{summary}</span> {auth}</summary>{description}",
        anchor = escape(&path.replace(['/', '{', '}'], "_")),
        upper = method.to_uppercase(),
        path = escape(path),
        summary = escape(&text(&operation["summary"])),
        auth = auth_badge(&operation["security"]),
        description = prose(&operation["description"]),
    );
    if let Some(parameters) = operation["parameters"].as_array() {
        out.push_str("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>");
        for parameter in parameters {
            let required = if parameter["required"] == Value::Bool(true) {
                " <span class=\"req\">required</span>"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{required}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&text(&parameter["name"])),
                escape(&text(&parameter["in"])),
                schema(&parameter["schema"], 0),
                inline(&text(&parameter["description"])),
            );
        }
        out.push_str("</table>");
    }
    if let Some(body) = operation["requestBody"].as_object() {
        let required = if body.get("required") == Some(&Value::Bool(true)) {
            " (required)"
        } else {
            ""
        };
        let _ = write!(out, "<h4>Request body{required}</h4>");
        out.push_str(&prose(body.get("description").unwrap_or(&Value::Null)));
        render_content(out, body.get("content"));
    }
    out.push_str(
        "<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>",
    );
    for (status, response) in operation["responses"].as_object().into_iter().flatten() {
        let mut body = String::new();
        render_content(&mut body, response.get("content"));
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{body}</td></tr>",
            escape(status),
            inline(&text(&response["description"])),
        );
    }
    out.push_str("</table></details>");
}

/// Who may call: nobody needs a token, any token, or an administrator's.
fn auth_badge(security: &Value) -> &'static str {
    let Some(requirements) = security.as_array().filter(|r| !r.is_empty()) else {
        return "<span class=\"auth public\">public</span>";
    };
    let admin = requirements.iter().any(|requirement| {
        requirement
            .as_object()
            .into_iter()
            .flat_map(Map::values)
            .any(|roles| {
                roles
                    .as_array()
                    .is_some_and(|r| r.contains(&"admin".into()))
            })
    });
    if admin {
        "<span class=\"auth admin\">admin token</span>"
    } else {
        "<span class=\"auth token\">token</span>"
    }
}

fn render_content(out: &mut String, content: Option<&Value>) {
    for (media_type, media) in content.and_then(Value::as_object).into_iter().flatten() {
        let _ = write!(
            out,
            "<div class=\"media\"><code>{}</code> {}</div>",
            escape(media_type),
            schema(&media["schema"], 0)
        );
    }
}

fn render_schemas(out: &mut String, api: &Value) {
    out.push_str("<section id=\"schemas\"><h2>Schemas</h2>");
    let schemas = api["components"]["schemas"].as_object();
    for (name, definition) in schemas.into_iter().flatten() {
        let _ = write!(
            out,
            "<div class=\"schema\" id=\"schema-{0}\"><h3>{0}</h3>{1}{2}</div>",
            escape(name),
            prose(&definition["description"]),
            schema(definition, 0),
        );
    }
    out.push_str("</section>");
}

/// A schema as a short type with its properties listed beneath.
fn schema(definition: &Value, depth: usize) -> String {
    if let Some(reference) = definition["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    if depth > MAX_DEPTH {
        return "…".into();
    }
    for (key, joiner) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " &amp; ")] {
        if let Some(parts) = definition[key].as_array() {
            let parts: Vec<String> = parts.iter().map(|p| schema(p, depth + 1)).collect();
            return parts.join(joiner);
        }
    }
    let mut kind = match &definition["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds.iter().map(text).collect::<Vec<_>>().join(" | "),
        _ if definition.get("properties").is_some() => "object".into(),
        _ => "any JSON".into(),
    };
    let mut out = String::new();
    if let Some(format) = definition["format"].as_str() {
        kind = format!("{kind} ({format})");
    }
    if kind.starts_with("array") {
        let _ = write!(out, "array of {}", schema(&definition["items"], depth + 1));
    } else {
        out.push_str(&escape(&kind));
    }
    if let Some(values) = definition["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&text(v))))
            .collect();
        let _ = write!(out, ": one of {}", values.join(", "));
    }
    if let Some(values) = definition["additionalProperties"].as_object() {
        let _ = write!(
            out,
            ", each value {}",
            schema(&Value::Object(values.clone()), depth + 1)
        );
    }
    if let Some(properties) = definition["properties"].as_object() {
        let required = &definition["required"];
        out.push_str("<ul class=\"props\">");
        for (name, property) in properties {
            let mark = if required
                .as_array()
                .is_some_and(|r| r.contains(&name.as_str().into()))
            {
                " <span class=\"req\">required</span>"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<li><code>{}</code>{mark}: {} <span class=\"desc\">{}</span></li>",
                escape(name),
                schema(property, depth + 1),
                inline(&text(&property["description"])),
            );
        }
        out.push_str("</ul>");
    }
    out
}

/// A string value as text; other JSON as its compact form; null as nothing.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Paragraphs of a description (blank-line separated), `code` kept.
fn prose(value: &Value) -> String {
    text(value)
        .split("\n\n")
        .filter(|paragraph| !paragraph.trim().is_empty())
        .map(|paragraph| format!("<p>{}</p>", inline(paragraph)))
        .collect()
}

/// Escaped text whose `backticked` spans become `<code>`.
fn inline(text: &str) -> String {
    escape(text)
        .split('`')
        .enumerate()
        .map(|(index, part)| {
            if index % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_from_the_document_is_escaped() {
        let api = json!({
            "openapi": "3.1.0",
            "info": { "title": "<b>x</b>", "version": "1" },
            "paths": { "/a/{id}": { "get": {
                "tags": ["t"], "summary": "say <script>", "responses": {}
            } } },
        });
        let page = render(&api);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(page.contains("/a/{id}"));
    }

    #[test]
    fn schemas_show_types_refs_and_required_properties() {
        let object = json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "tags": { "type": "array", "items": { "$ref": "#/components/schemas/Tag" } },
                "note": { "type": ["string", "null"], "description": "a `note`" },
            },
        });
        let html = schema(&object, 0);
        assert!(html.contains("<code>id</code> <span class=\"req\">required</span>: string (uuid)"));
        assert!(html.contains("array of <a href=\"#schema-Tag\">Tag</a>"));
        assert!(html.contains("string | null"));
        assert!(html.contains("a <code>note</code>"));
    }
}
