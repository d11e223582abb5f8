//! handoff's rules, free of IO: the domain model, the decision engine, decision ids and
//! who may publish what. No tokio, no lapin, no serde_json, and chrono without its clock:
//! the engine is given time, it never reads it. See `ARCHITECTURE.md` for the map.

pub mod authz;
pub mod engine;
pub mod ids;
pub mod model;
pub mod why;
