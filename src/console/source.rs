//! Where the console's pages get their data: the live service, or a log replayed offline.
//!
//! The board comes ready-made (the live service refreshes it; the offline console builds it
//! once). A person page and the reports replay the log on each request, as `handoff explain`
//! and `handoff report` do: the journal is the record, and replaying it is what an auditor
//! would do by hand. The replays run on the blocking pool, so a long one never stalls the
//! service's runtime.

use std::io::{BufRead, BufReader, Cursor};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta};
use handoff_core::engine::Engine;
use handoff_core::model::Time;

use crate::answers::explain::{Explainer, Timeline};
use crate::answers::report::capacity::{Capacity, CapacityReport, DEFAULT_RATE_USD};
use crate::answers::report::ddor::{Ddor, DdorReport};
use crate::console::BoardCell;
use crate::console::board::{Board, Recent, Role};
use crate::journal::control::Rules;
use crate::journal::feed::{self, Seen};
use crate::live::config::TlsMaterial;

/// Where the log a page replays is.
#[derive(Clone)]
pub(crate) enum Log {
    /// A file: a journal or a JSON-lines log of events.
    File(PathBuf),
    /// The live service's stream journal, read through RabbitMQ.
    Stream {
        url: String,
        tls: TlsMaterial,
        stream: String,
    },
}

/// Why a page could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error("cannot read the log: {0}")]
    Read(String),
}

/// The console's data.
pub(crate) enum Source {
    Live {
        board: Arc<BoardCell>,
        log: Log,
    },
    Offline {
        board: Arc<Board>,
        log: PathBuf,
        rules: Rules,
    },
}

impl Source {
    /// An offline source: `log` replayed once for the board, as of its last clock time.
    pub(crate) fn offline(log: PathBuf, rules: Rules) -> Result<Source, SourceError> {
        let mut engine = Engine::new();
        let mut recent = Recent::default();
        let file = open(&log)?;
        feed::run_with(&mut engine, file, None, rules, |_, seen| {
            recent.observe(&seen);
            Ok(())
        })
        .map_err(|e| SourceError::Read(e.to_string()))?;
        let as_of = engine.clock().unwrap_or_default();
        let board = Arc::new(Board::build(&engine, &recent, as_of, Role::Replay));
        Ok(Source::Offline { board, log, rules })
    }

    /// The board as it stands.
    pub(crate) fn board(&self) -> Arc<Board> {
        match self {
            Source::Live { board, .. } => board.get(),
            Source::Offline { board, .. } => board.clone(),
        }
    }

    fn rules(&self) -> Rules {
        match self {
            // The live service decides under this release's rules: its journal was opened
            // by it (or refused at start-up).
            Source::Live { .. } => Rules::Journal,
            Source::Offline { rules, .. } => *rules,
        }
    }

    /// The log's bytes or file, ready to replay.
    async fn input(&self) -> Result<Input, SourceError> {
        match self {
            Source::Offline { log, .. }
            | Source::Live {
                log: Log::File(log),
                ..
            } => Ok(Input::File(log.clone())),
            Source::Live {
                log: Log::Stream { url, tls, stream },
                ..
            } => {
                let conn = crate::live::amqp::connect(url, tls, "handoff console")
                    .await
                    .map_err(|e| {
                        SourceError::Read(crate::live::publish::redact_url(&e.to_string()))
                    })?;
                let mut bytes = Vec::new();
                let exported = crate::journal::stream::export(&conn, stream, &mut bytes).await;
                let _ = conn.close(200, "console read the journal".into()).await;
                exported.map_err(|e| SourceError::Read(e.to_string()))?;
                Ok(Input::Bytes(bytes))
            }
        }
    }

    /// One person's timeline (the `explain` of them), or `None` if the log never names them.
    pub(crate) async fn person(&self, person_id: String) -> Result<Option<Timeline>, SourceError> {
        let input = self.input().await?;
        let rules = self.rules();
        blocking(move || {
            let mut explainer = Explainer::new(&person_id);
            let mut engine = Engine::new();
            feed::run_with(&mut engine, input.reader()?, None, rules, |engine, seen| {
                explainer.observe(engine, &seen);
                Ok(())
            })
            .map_err(|e| SourceError::Read(e.to_string()))?;
            let timeline = explainer.finish();
            Ok((!timeline.entries.is_empty()).then_some(timeline))
        })
        .await
    }

    /// The Declined Detainer Outcome Report for `[from, to)`.
    pub(crate) async fn ddor(&self, from: Time, to: Time) -> Result<DdorReport, SourceError> {
        let input = self.input().await?;
        let rules = self.rules();
        blocking(move || {
            let mut ddor = Ddor::new(from, to, 10);
            let mut engine = Engine::new();
            feed::run_with(&mut engine, input.reader()?, None, rules, |engine, seen| {
                ddor.observe(engine, &seen);
                Ok(())
            })
            .map_err(|e| SourceError::Read(e.to_string()))?;
            Ok(ddor.finish(&engine))
        })
        .await
    }

    /// ICE's detention over `[from, to)`: the log replayed as it stood at `to`, the days,
    /// placements and reviews of the window counted (the engine still sees everything
    /// before it, so occupancy is right from the first day).
    pub(crate) async fn capacity(
        &self,
        from: Time,
        to: Time,
    ) -> Result<CapacityReport, SourceError> {
        let input = self.input().await?;
        let rules = self.rules();
        blocking(move || {
            let mut capacity = Capacity::new(DEFAULT_RATE_USD);
            let mut engine = Engine::new();
            feed::run_to(&mut engine, input.reader()?, to, rules, |engine, seen| {
                let inside = match &seen {
                    Seen::Event { event, .. } => event.clock_time() >= from,
                    Seen::Invalid { .. } => false,
                    Seen::End { .. } => true,
                };
                if inside {
                    capacity.observe(engine, &seen);
                }
                Ok(())
            })
            .map_err(|e| SourceError::Read(e.to_string()))?;
            Ok(capacity.finish(&engine))
        })
        .await
    }

    /// The default report window: the last seven days of the board's clock.
    pub(crate) fn default_window(&self) -> (Time, Time) {
        let board = self.board();
        let end = board.clock.unwrap_or(board.as_of);
        let to = day_start(end) + TimeDelta::days(1);
        (to - TimeDelta::days(7), to)
    }
}

/// Midnight UTC of `t`'s day.
fn day_start(t: Time) -> Time {
    let d: NaiveDate = t.date_naive();
    d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

enum Input {
    File(PathBuf),
    Bytes(Vec<u8>),
}

impl Input {
    fn reader(self) -> Result<Box<dyn BufRead>, SourceError> {
        Ok(match self {
            Input::File(path) => Box::new(open(&path)?),
            Input::Bytes(bytes) => Box::new(Cursor::new(bytes)),
        })
    }
}

fn open(path: &PathBuf) -> Result<BufReader<std::fs::File>, SourceError> {
    std::fs::File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| SourceError::Read(format!("{}: {e}", path.display())))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SourceError::Read(e.to_string()))?
}
