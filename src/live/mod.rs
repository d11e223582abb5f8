//! `handoff serve` and `handoff publish`: everything that talks to RabbitMQ, the wall clock
//! or the network.

pub mod amqp;
pub(crate) mod backoff;
pub mod config;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod publish;
pub(crate) mod replicated;
pub mod service;
