//! Answers from a journal or log: replay, explain, what-if and the reports, all built on
//! one replay loop (`replay::run`).

pub mod explain;
pub mod replay;
pub mod report;
pub mod whatif;
