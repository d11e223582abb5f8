//! `handoff-bench`: the live load benchmark, a tool beside the product. It runs the real
//! service in-process (`handoff::live::service::serve`) against a real RabbitMQ.

mod live;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "handoff-bench",
    version,
    about = "Benchmarks of handoff that need a live RabbitMQ"
)]
enum Command {
    /// Load-test the live service against a real RabbitMQ: throughput and latency, with a

    /// bare relay as the ceiling.
    #[command(
        long_about = "Load-test the live service against a real RabbitMQ. Generates \
--events events (as `handoff gen`), publishes them at --rate to a fresh, run-named copy of the \
topology (durable queues of --queue-type, publisher confirms, each event sent as its agency's \
user-id: the URL's user needs RabbitMQ's impersonator tag), runs the service in-process on a \
2-worker runtime with a fresh journal, consumes the decisions and reports throughput and the \
latency from an event's publish to its first decision (p50, p90, p99, p99.9, max). The same \
events then go through a bare relay (consume, publish with confirms, ack; no validation, \
journal or engine; as many messages out per event as handoff publishes), the ceiling, and \
handoff's throughput is reported as a fraction of it. \
Queues and exchanges are deleted afterwards.\n\n\
Exit status: 0 if every run completed, 1 if the service stopped with an error or a run's \
final event never came back, 2 if the bench could not run (no broker, no impersonation)."
    )]
    #[command(name = "live")]
    BenchLive(live::BenchArgs),
}

fn main() -> ExitCode {
    match Command::parse() {
        Command::BenchLive(args) => live::run(&args),
    }
}
