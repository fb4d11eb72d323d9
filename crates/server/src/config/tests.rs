//! Loading and validating the layered configuration.

use super::*;

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
    assert_eq!(Config::default().addr.to_string(), "127.0.0.1:8080");
}

#[test]
fn file_with_unknown_key_is_rejected() {
    let error = check_file_keys("adr = \"x\"").unwrap_err();
    assert!(error.to_string().contains("adr"));
    let error = check_file_keys("[local]\nworkerz = 2").unwrap_err();
    assert!(error.to_string().contains("local.workerz"));
    check_file_keys("addr = \"127.0.0.1:1\"\n[local]\nworkers = 2").unwrap();
}

#[test]
fn debug_hides_secrets() {
    let config = Config {
        jwt_secret: Some("s".repeat(40)),
        database_url: Some("postgres://app:hunter2@db/app".into()),
        ..Config::default()
    };
    let text = format!("{config:?}");
    assert!(!text.contains(&"s".repeat(40)));
    assert!(!text.contains("hunter2"));
    assert!(text.contains("postgres://app:***@db/app"));
}

#[test]
fn zero_limits_are_rejected() {
    let config = Config {
        max_frame_bytes: 0,
        ..Config::default()
    };
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("max_frame_bytes"));
}

#[test]
fn plans_load_from_the_file_and_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colloquy.toml");
    std::fs::write(
        &path,
        "default_plan = \"pro\"\n[plans.pro]\nmessages_per_day = 50\nmodels = [\"fake-model\"]\n",
    )
    .unwrap();
    // A plan name no other test uses: the environment is the process's.
    std::env::set_var("COLLOQUY_PLANS__ENVTESTPLAN__TOKENS_PER_DAY", "1234");
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    std::env::remove_var("COLLOQUY_PLANS__ENVTESTPLAN__TOKENS_PER_DAY");
    let plans = config.effective_plans();
    assert_eq!(config.default_plan, "pro");
    assert_eq!(plans["pro"].messages_per_day, Some(50));
    assert_eq!(plans["pro"].tokens_per_day, None);
    assert_eq!(plans["pro"].models, Some(vec!["fake-model".to_owned()]));
    assert_eq!(plans["envtestplan"].tokens_per_day, Some(1234));
    assert!(plans.contains_key("free") && plans.contains_key("anonymous"));

    std::fs::write(&path, "[plans.pro]\nmessages_per_dya = 5\n").unwrap();
    let error = Config::load(Some(&path), &Overrides::default()).unwrap_err();
    assert!(error.to_string().contains("messages_per_dya"), "{error}");
    std::fs::write(&path, "anonymous_plan = \"nope\"\n").unwrap();
    let error = Config::load(Some(&path), &Overrides::default()).unwrap_err();
    assert!(error.to_string().contains("anonymous_plan"), "{error}");
}

/// A TOML value of any type and size, as an operator might mistype it.
fn any_toml_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| format!("{n:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z0-9:/.*_ -]{0,20}".prop_map(|text| format!("{text:?}")),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn any_values_for_known_settings_load_or_fail_with_a_message(
        picks in proptest::collection::vec((0usize..64, any_toml_value()), 1..6),
    ) {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let keys: Vec<&String> = defaults.as_object().unwrap().keys().collect();
        let text: String = picks
            .iter()
            .map(|(index, value)| format!("{} = {value}\n", keys[index % keys.len()]))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colloquy.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(error) = Config::load(Some(&path), &Overrides::default()) {
            proptest::prop_assert!(!error.to_string().is_empty());
        }
    }
}
