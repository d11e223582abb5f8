//! `handoff serve`: the live service (`crate::live`), with its configuration file and the
//! environment overrides it lists in `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

/// The long help of `handoff serve`, with the environment overrides listed.
pub(crate) fn about() -> String {
    format!(
        "Run the live service. It consumes events from the inbound queue (manual acks, bounded \
prefetch), validates and authorizes each one (the AMQP user-id, mapped to an agency by the \
publishers setting), appends it to the journal with fsync before acknowledging, and publishes \
every decision to the decisions exchange with publisher confirms. Bad input is dead-lettered \
with its reason in the x-handoff-reason header.\n\n\
At start-up the journal is replayed to rebuild state; decisions not yet confirmed are \
published again with the same ids, and timers that came due while stopped fire with their \
own deadlines. SIGTERM or Ctrl-C stops consuming, finishes the batches in flight and exits.\n\n\
Exit status: 0 after SIGTERM or Ctrl-C; 2 if the configuration is invalid; 75 (EX_TEMPFAIL) if \
a journal write or fsync failed (a full disk): nothing unjournaled was acknowledged, so free \
space and restart; 1 on any other error, such as a damaged journal at start-up (see \
`handoff journal verify`).\n\n\
Settings come from --config (TOML; see deploy/handoff.toml), then from these environment \
variables:\n{}",
        crate::live::config::env_help()
    )
}

/// Run the live service: consume events from RabbitMQ, journal them, publish decisions.
#[derive(Debug, clap::Args)]
#[command(long_about = about())]
pub(crate) struct Args {
    /// The TOML configuration file. Without it, defaults: a local RabbitMQ as guest,
    /// handoff-journal.jsonl in the current directory, HTTP on 127.0.0.1:9464.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// Runs the service; its exit status is its own (see [`about`]).
pub fn run(Args { config }: Args) -> ExitCode {
    crate::live::service::run(config.as_deref())
}
