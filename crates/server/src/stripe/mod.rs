//! Stripe billing: the webhook's [`signature`] check, turning its
//! [`events`] into plan changes (exactly once, by event id), and opening a
//! [`checkout`] session for a plan.

pub mod checkout;
pub mod events;
pub mod signature;
