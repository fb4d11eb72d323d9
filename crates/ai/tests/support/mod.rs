//! Test doubles shared by the integration tests of this crate.

pub mod fake_gemini_live;
