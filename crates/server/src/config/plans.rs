//! Plans and their daily quotas (`[plans.<name>]`, `default_plan`,
//! `anonymous_plan`), apart from the rest of the configuration.
//!
//! A plan the operator defines replaces the built-in plan of the same name
//! as a whole, so a limit left out of a defined plan is unlimited (TOML has
//! no null to unset one limit of a built-in plan). The built-in `free` and
//! `anonymous` plans stay available unless redefined.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// The plan of signed-in users without a plan of their own, by default.
pub const DEFAULT_PLAN: &str = "free";
/// The plan of guest (anonymous) users, by default.
pub const ANONYMOUS_PLAN: &str = "anonymous";

/// Longest plan name accepted (it is stored on the user's plan row).
pub const MAX_PLAN_NAME_CHARS: usize = 64;

/// One plan's daily quotas (UTC days) and the models it may use. `None`:
/// unlimited (or every model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// Replies a user may ask for per day.
    pub messages_per_day: Option<u64>,
    /// Prompt plus completion tokens per day.
    pub tokens_per_day: Option<u64>,
    /// Seconds of voice heard and spoken per day.
    pub voice_seconds_per_day: Option<u64>,
    /// Model ids the plan may pick (as `GET /api/models` lists them).
    pub models: Option<Vec<String>>,
}

impl PlanConfig {
    /// Whether the plan may use `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|allowed| allowed == model))
    }
}

/// The plans a self-hoster gets without configuring any: generous enough
/// that nobody using a local model notices them, tight enough that a public
/// server on a paid API is not drained by one guest.
pub fn builtin_plans() -> BTreeMap<String, PlanConfig> {
    BTreeMap::from([
        (
            DEFAULT_PLAN.to_owned(),
            PlanConfig {
                messages_per_day: Some(500),
                tokens_per_day: Some(1_000_000),
                voice_seconds_per_day: Some(3600),
                models: None,
            },
        ),
        (
            ANONYMOUS_PLAN.to_owned(),
            PlanConfig {
                messages_per_day: Some(200),
                tokens_per_day: Some(200_000),
                voice_seconds_per_day: Some(1200),
                models: None,
            },
        ),
    ])
}

/// The built-in plans overlaid with the configured ones (`configured`
/// wins, plan by plan).
pub fn effective_plans(configured: &BTreeMap<String, PlanConfig>) -> BTreeMap<String, PlanConfig> {
    let mut plans = builtin_plans();
    plans.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    plans
}

/// Check the plan settings: names are short and `default_plan` and
/// `anonymous_plan` name a plan that exists.
pub(super) fn validate(
    configured: &BTreeMap<String, PlanConfig>,
    default_plan: &str,
    anonymous_plan: &str,
) -> anyhow::Result<()> {
    let plans = effective_plans(configured);
    if let Some(name) = plans
        .keys()
        .find(|name| name.is_empty() || name.chars().count() > MAX_PLAN_NAME_CHARS)
    {
        bail!("invalid configuration: plan name {name:?} must be 1 to {MAX_PLAN_NAME_CHARS} characters");
    }
    for (setting, name) in [
        ("default_plan", default_plan),
        ("anonymous_plan", anonymous_plan),
    ] {
        if !plans.contains_key(name) {
            bail!("invalid configuration: {setting} names plan `{name}`, which is not defined in [plans]");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_defined_plan_replaces_the_builtin_one_and_keeps_the_others() {
        let configured = BTreeMap::from([(
            DEFAULT_PLAN.to_owned(),
            PlanConfig {
                tokens_per_day: Some(10),
                ..PlanConfig::default()
            },
        )]);
        let plans = effective_plans(&configured);
        assert_eq!(plans[DEFAULT_PLAN].messages_per_day, None);
        assert_eq!(plans[DEFAULT_PLAN].tokens_per_day, Some(10));
        assert_eq!(plans[ANONYMOUS_PLAN], builtin_plans()[ANONYMOUS_PLAN]);
    }

    #[test]
    fn default_and_anonymous_plans_must_exist() {
        validate(&BTreeMap::new(), DEFAULT_PLAN, ANONYMOUS_PLAN).unwrap();
        let error = validate(&BTreeMap::new(), "pro", ANONYMOUS_PLAN).unwrap_err();
        assert!(error.to_string().contains("default_plan"), "{error}");
    }

    #[test]
    fn a_model_list_restricts_models_and_none_allows_all() {
        let open = PlanConfig::default();
        let narrow = PlanConfig {
            models: Some(vec!["fake-model".into()]),
            ..PlanConfig::default()
        };
        assert!(open.allows_model("anything"));
        assert!(narrow.allows_model("fake-model"));
        assert!(!narrow.allows_model("other"));
    }
}
