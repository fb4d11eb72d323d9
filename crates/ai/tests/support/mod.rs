//! Test doubles shared by the integration tests of this crate.
//!
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod fake_gemini_live;
