//! handoff: validates custody events from agencies, journals them, and decides who takes
//! custody under the rules of the ICD. See `ARCHITECTURE.md` for the map.

pub mod amqp;
pub mod authz;
pub mod bench_live;
pub mod cli;
pub mod config;
pub mod engine;
pub mod envelope;
pub mod explain;
pub mod generator;
pub mod http;
pub mod ids;
pub mod journal;
pub mod journal_tool;
pub mod metrics;
pub mod model;
pub mod publish;
pub mod replay;
pub mod report;
pub mod schemas;
pub mod service;
pub mod whatif;
pub mod wire;
