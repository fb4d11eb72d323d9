//! Property tests: whatever a client sends, parsing a client event either
//! yields an event or an error, never a panic, and an event that parses
//! survives a round trip unchanged.

use colloquy_protocol::{ClientEvent, ServerEvent};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// An object shaped like a client event: a real or made-up `type` and
/// fields with the real names but any values.
fn event_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("text"),
        Just("stop"),
        Just("ping"),
        Just("resume"),
        Just("audio"),
        Just("audio_end"),
        Just("launch"),
        Just(""),
    ];
    let field = prop_oneof![
        Just("content"),
        Just("client_id"),
        Just("last_seq"),
        Just("data"),
        Just("sample_rate"),
        Just("type"),
    ];
    (kind, prop::collection::vec((field, any_json()), 0..5)).prop_map(|(kind, fields)| {
        let mut object = Map::new();
        object.insert("type".into(), json!(kind));
        for (name, value) in fields {
            object.insert(name.into(), value);
        }
        Value::Object(object)
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_parser(text in ".{0,200}") {
        let _ = serde_json::from_str::<ClientEvent>(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = serde_json::from_slice::<ClientEvent>(&bytes);
    }

    #[test]
    fn event_shaped_json_parses_or_fails_cleanly_and_round_trips(value in event_like()) {
        let text = value.to_string();
        if let Ok(event) = serde_json::from_str::<ClientEvent>(&text) {
            let again: ClientEvent = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
            prop_assert_eq!(again, event);
        }
    }

    #[test]
    fn any_json_is_never_mistaken_for_an_unknown_server_event(value in any_json()) {
        // Server events are only ever produced by the server; parsing junk
        // as one must still fail cleanly (clients in Rust use this path).
        let _ = serde_json::from_value::<ServerEvent>(value);
    }
}
