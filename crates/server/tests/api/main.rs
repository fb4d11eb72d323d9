//! End-to-end tests: the real server on an ephemeral port, a fresh database
//! per test, a fake OpenAI-compatible upstream speaking real SSE, and real
//! HTTP and WebSocket clients.

mod fake_idp;
mod fake_openai;
mod fake_stripe;
mod helpers;

mod analytics;
mod auth;
mod billing;
mod bounds;
mod branches;
mod chat_socket;
mod cluster;
mod cluster_failures;
mod cluster_nodes;
mod conversations;
mod crash;
mod external_auth;
mod failures;
mod http_chat;
mod lifecycle;
mod limits;
#[cfg(feature = "local-llm")]
mod local_model;
mod mcp_tools;
mod models;
mod new_conversations;
mod openai_compat;
mod openapi;
mod plan_tools;
mod plans;
mod process_server;
mod quotas;
mod resume;
mod shares;
mod storage_failures;
mod streaks;
mod summaries;
mod throttles;
mod titles;
mod tools;
mod turn_timings;
mod usage;
#[cfg(feature = "voice-local")]
mod usage_voice;
#[cfg(feature = "voice-local")]
mod voice;
mod voice_gemini;
mod voice_gemini_tools;
mod voice_socket;
#[cfg(feature = "voice-local")]
mod voice_tools;
mod webhooks;
