//! Deterministic identifiers for decisions: the same journal always yields the same ids.
//!
//! A decision id is a UUID version 5 (SHA-1, RFC 9562) in handoff's own namespace, named
//! after what caused the decision and its position among that cause's decisions. Event
//! causes are named by `source` and `id` (the pair the ICD makes unique); timer causes by
//! their `timer:<kind>:<ref>` string. So an id never depends on wall time, memory layout or
//! which machine replays the journal, and a redelivered event yields the same ids again.
//!
//! The SHA-1 is RustCrypto's (hardware SHA instructions where the CPU has them) rather
//! than the uuid crate's portable one: ids are made for two of every three events, and
//! the portable SHA-1 took a tenth of the engine's time. A test pins the result to
//! `Uuid::new_v5`.

use sha1::{Digest, Sha1};
use uuid::{Builder, Uuid};

/// The namespace of all decision ids: `Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:handoff")`.
const NAMESPACE: Uuid = Uuid::from_u128(0x7904_41ac_0588_58de_a4fc_f61c_cefa_d0c5);

/// The UUIDv5 of the name `parts` joined by newlines, without building the name, in
/// handoff's namespace: decision ids, and the ids of the journal's own control entries
/// (whose names start with their type, which no decision's name does).
pub fn v5(parts: &[&[u8]]) -> String {
    let mut h = Sha1::new();
    h.update(NAMESPACE.as_bytes());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(part);
    }
    let digest = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    let mut buf = Uuid::encode_buffer();
    Builder::from_sha1_bytes(first)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// The id of the `n`th decision (counting from 0) caused by the event `source` + `id`.
pub fn decision_id_for_event(source: &str, id: &str, n: usize) -> String {
    let n = n.to_string();
    v5(&[b"event", source.as_bytes(), id.as_bytes(), n.as_bytes()])
}

/// The id of the `n`th decision (counting from 0) caused by the timer `caused_by`
/// (the full `timer:<kind>:<ref>` string).
pub fn decision_id_for_timer(caused_by: &str, n: usize) -> String {
    let n = n.to_string();
    v5(&[b"timer", caused_by.as_bytes(), n.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v5_of_the_documented_names() {
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:handoff");
        assert_eq!(NAMESPACE, ns);
        assert_eq!(
            decision_id_for_event("urn:agency:bop:sentry", "e-1", 0),
            Uuid::new_v5(&ns, b"event\nurn:agency:bop:sentry\ne-1\n0").to_string()
        );
        assert_eq!(
            decision_id_for_timer("timer:hold:x", 12),
            Uuid::new_v5(&ns, b"timer\ntimer:hold:x\n12").to_string()
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = decision_id_for_event("urn:agency:bop:sentry", "e-1", 0);
        // Pinned (computed independently with Python's uuid.uuid5): changing the naming scheme would change every id agencies have stored.
        assert_eq!(a, "5f8b71b8-407b-5bb9-93d1-c15dbfa8eda8");
        assert_ne!(a, decision_id_for_event("urn:agency:bop:sentry", "e-1", 1));
        assert_ne!(a, decision_id_for_event("urn:agency:ice:eagle", "e-1", 0));
        assert_ne!(a, decision_id_for_timer("timer:hold:x", 0));
    }
}
