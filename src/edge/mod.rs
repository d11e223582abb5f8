//! The edge: where JSON becomes the core's types and back. The core never sees JSON.

pub mod envelope;
pub mod reason;
pub mod schemas;
pub mod wire;
