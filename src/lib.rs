//! handoff: validates custody events from agencies, journals them, and decides who takes
//! custody under the rules of the ICD. The rules themselves live in `handoff-core`
//! (`crates/handoff-core`); this crate is everything around them. See `ARCHITECTURE.md`.

/// Answers from a log: replay, explain, what-if, reports.
pub mod answers;
/// The command line: one module per command.
pub mod cli;
/// The operators' and auditors' web console (`handoff serve`, `handoff console LOG`).
pub mod console;
/// The wire at the edge: inbound envelope, outbound CloudEvents, JSON Schemas.
pub mod edge;
/// The journal: format, file backend, outbox mark, verify and repair.
pub mod journal;
/// The live service on RabbitMQ.
pub mod live;
