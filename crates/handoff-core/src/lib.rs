//! handoff's rules, free of IO: the domain model, the decision engine, decision ids and
//! who may publish what. No tokio, no lapin, no serde_json, and chrono without its clock:
//! the engine is given time, it never reads it. See `ARCHITECTURE.md` for the map.

pub mod authz;
pub mod engine;
pub mod ids;
pub mod model;
pub mod why;

/// The version of the rules (ICD section 5) this engine decides by. A journal names the
/// version its writer decided by in its `handoff.journal.opened` entries (ICD section 8),
/// and a journal decided under another version is not replayed under this one unless the
/// user asks for it, since its decisions would differ from those that were published.
/// Raise it with every change to section 5 that can change a decision.
pub const RULES_VERSION: u32 = 2;
