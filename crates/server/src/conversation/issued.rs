//! Conversation ids handed out before the conversation exists.
//!
//! A socket opened without a conversation gets a fresh id in `ready`, but
//! the conversation is stored only with its first message. Until then the
//! id must stay its user's, across reconnects and server restarts, with no
//! row or other state to say so: the id itself says whom it was issued to.
//! It is a version 8 UUID: a millisecond timestamp first (so ids sort by
//! time like v7), 42 random bits, then a 32-bit tag keyed with the server's
//! secret over the owner and the rest of the id. Another user cannot get a
//! tag that matches (it would need the secret), and the owner's own id
//! verifies on any node that shares the secret.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::{Uuid, Variant};

use crate::auth::TokenService;

/// Whom an id was issued to, as far as the id itself tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    ToCaller,
    /// A server-issued id (version 8) whose tag does not match the caller.
    ToSomeoneElse,
    /// Not an id this server issues (e.g. a client-chosen session id).
    NotIssued,
}

/// Sets the tag apart from anything else signed with the same secret.
const DOMAIN: &[u8] = b"colloquy conversation id\0";

fn tag(tokens: &TokenService, owner: Uuid, head: &[u8]) -> Option<[u8; 4]> {
    let mut message = Vec::with_capacity(DOMAIN.len() + 16 + head.len());
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(owner.as_bytes());
    message.extend_from_slice(head);
    tokens.tag(&message)
}

/// A fresh conversation id reserved for `owner`.
pub fn issue(tokens: &TokenService, owner: Uuid) -> Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let random: [u8; 6] = rand::random();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..12].copy_from_slice(&random);
    bytes[6] = 0x80 | (bytes[6] & 0x0f); // version 8
    bytes[8] = 0x80 | (bytes[8] & 0x3f); // RFC 4122 variant
    match tag(tokens, owner, &bytes[..12]) {
        Some(tag) => {
            bytes[12..].copy_from_slice(&tag);
            Uuid::from_bytes(bytes)
        }
        // HMAC signing cannot fail; should it, the id is simply not reserved.
        None => Uuid::now_v7(),
    }
}

/// Whether `id` was issued to `caller` by [`issue`].
pub fn check(tokens: &TokenService, id: Uuid, caller: Uuid) -> Issued {
    if id.get_version_num() != 8 || id.get_variant() != Variant::RFC4122 {
        return Issued::NotIssued;
    }
    let bytes = id.as_bytes();
    match tag(tokens, caller, &bytes[..12]) {
        Some(tag) if tag == bytes[12..] => Issued::ToCaller,
        _ => Issued::ToSomeoneElse,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tokens(secret: &str) -> TokenService {
        TokenService::new(secret.as_bytes(), Duration::from_secs(60))
    }

    #[test]
    fn an_issued_id_is_its_owners_and_no_one_elses() {
        let tokens = tokens("a secret of at least thirty-two characters");
        let (owner, other) = (Uuid::now_v7(), Uuid::now_v7());
        let id = issue(&tokens, owner);
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(check(&tokens, id, owner), Issued::ToCaller);
        assert_eq!(check(&tokens, id, other), Issued::ToSomeoneElse);
        assert_ne!(issue(&tokens, owner), id, "ids are fresh");
    }

    #[test]
    fn other_ids_are_not_issued_ones_and_other_secrets_do_not_verify() {
        let tokens = tokens("a secret of at least thirty-two characters");
        let owner = Uuid::now_v7();
        assert_eq!(check(&tokens, Uuid::now_v7(), owner), Issued::NotIssued);
        assert_eq!(check(&tokens, Uuid::new_v4(), owner), Issued::NotIssued);
        let id = issue(&tokens, owner);
        let rotated = self::tokens("another secret, also thirty-two characters long");
        assert_eq!(check(&rotated, id, owner), Issued::ToSomeoneElse);
    }

    #[test]
    fn issued_ids_sort_by_time() {
        let tokens = tokens("a secret of at least thirty-two characters");
        let first = issue(&tokens, Uuid::nil());
        std::thread::sleep(Duration::from_millis(2));
        assert!(issue(&tokens, Uuid::nil()) > first);
    }
}
