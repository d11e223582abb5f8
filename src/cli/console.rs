//! `handoff console [LOG]`: the web console over a log, for auditors; and
//! `handoff console --hash-credential`, which makes the credential hash its configuration
//! needs (the live service's console too).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::console::{Console, auth, routes, source::Source};
use crate::journal::control::Rules;

use super::RULES_HELP;

/// Serve the web console over a log, for auditors (or hash its credential).
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Serve the web console over a log (a journal, an export of the \
stream journal, or a JSON-lines log of events), replayed once at start: the board as of the \
log's last clock time (open holds and offers, the latest decisions by type and rule, what \
would have been dead-lettered, ICE occupancy), a page per person with the `explain` \
timeline and who was told of each decision, and the DDOR and capacity reports for a chosen \
window. The same pages as the live service's console (`[console]` in the configuration).\n\n\
The console shows personal data: it needs a credential, whose Argon2 hash is read from \
console.credential_hash in --config or from HANDOFF_CONSOLE_CREDENTIAL_HASH, and listens on \
console.listen (default 127.0.0.1:9465) or --listen. Make the hash with \
`handoff console --hash-credential < FILE` (the credential is read from stdin, never from \
the command line). Stop with Ctrl-C or SIGTERM.",
    after_help = "Examples:\n  head -c 32 /dev/urandom | base64 > credential && handoff console --hash-credential < credential\n  HANDOFF_CONSOLE_CREDENTIAL_HASH='$argon2id$…' handoff console samples/week.jsonl"
)]
pub(crate) struct Args {
    /// The log to replay and serve.
    #[arg(required_unless_present = "hash_credential")]
    pub(crate) log: Option<PathBuf>,
    /// Read a credential from stdin (one line) and print its hash for console.credential_hash.
    #[arg(long, conflicts_with_all = ["log", "listen", "config"])]
    pub(crate) hash_credential: bool,
    /// Where to listen (default: console.listen from the configuration).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// The TOML configuration file whose [console] section is used.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "journal", long_help = RULES_HELP)]
    pub(crate) rules: Rules,
}

pub fn run(args: Args) -> ExitCode {
    match go(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handoff console: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn go(args: Args) -> anyhow::Result<()> {
    if args.hash_credential {
        let mut credential = String::new();
        std::io::stdin().read_to_string(&mut credential)?;
        let credential = credential.trim_end_matches(['\n', '\r']);
        anyhow::ensure!(
            credential.len() >= 12,
            "a credential of {} characters is too easy to guess; use at least 12 (say, 32 random bytes in base64)",
            credential.len()
        );
        println!("{}", auth::hash(credential));
        return Ok(());
    }
    let log = args
        .log
        .expect("clap requires LOG without --hash-credential");
    let mut config = crate::live::config::Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.console.listen = listen;
    }
    let (addr, hash) = config.console_listen()?;
    let gate = auth::Gate::new(&hash)?;
    let started = std::time::Instant::now();
    eprintln!("handoff console: replaying {}", log.display());
    let source = Source::offline(log, args.rules)?;
    let board = source.board();
    eprintln!(
        "handoff console: {} people, {} open holds, {} open offers as of {} ({:.1} s)",
        board.people,
        board.holds.len(),
        board.offers.len(),
        board
            .as_of
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        started.elapsed().as_secs_f64()
    );
    let console = Console::new(gate, source);
    let runtime = crate::live::service::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        eprintln!("handoff console: http://{addr}/ (sign in with the configured credential)");
        let stop = crate::live::service::wait_for_signal();
        crate::live::http::serve_router(listener, routes(console), stop).await?;
        Ok(())
    })
}
