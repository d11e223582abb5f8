//! Fencing: which messages of a replicated journal count (ICD section 8), decided the same
//! way by every reader (a standby tailing the stream, a writer reading its own entries
//! back, `handoff journal export`). Sans IO: it sees only each message's epoch and sequence
//! number, in the order the stream holds them.
//!
//! A writer numbers its entries within its epoch: its `handoff.journal.opened` marker is
//! sequence 0, its events 1, 2, 3, ... A message counts when:
//! - it is a marker (sequence 0) with an epoch above every epoch seen so far: a new writer
//!   took over, and from here on only its entries count;
//! - it is the next entry (sequence) of the current epoch.
//!
//! Everything else is skipped, never decided on:
//! - an entry of the current epoch with a sequence already seen is a **duplicate**: a
//!   writer that lost its connection publishes its unconfirmed entries again, and the
//!   broker may already hold some of them;
//! - anything of an older epoch after a newer marker is **fenced**: a paused old writer (a
//!   zombie) that woke up and appended cannot change what anyone decides; a marker whose
//!   epoch is not above the current one is fenced too (the first marker of an epoch wins).
//!
//! A sequence that skips ahead, or an entry of a newer epoch before its marker, cannot
//! come from a writer that publishes in order on one channel: it is an error (a damaged
//! stream), and the reader refuses to go on rather than guess.

/// What a message of the stream is to the readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new writer's marker: the current epoch is now this one.
    Opened { epoch: u64 },
    /// The next entry of the current writer: it counts.
    Entry,
    /// An entry seen before (a republish after a lost connection): skipped.
    Duplicate,
    /// Written under an older epoch than the current one (a zombie's), or a marker that
    /// came too late: skipped.
    Fenced { epoch: u64, current: u64 },
}

impl Verdict {
    /// Whether the message is part of the journal.
    pub fn counts(self) -> bool {
        matches!(self, Verdict::Opened { .. } | Verdict::Entry)
    }
}

/// A stream that no writer could have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    #[error("entry {found} of epoch {epoch} follows entry {} (entries are missing)", .expected - 1)]
    Gap {
        epoch: u64,
        expected: u64,
        found: u64,
    },
    #[error("entry {seq} of epoch {epoch} comes before that epoch's opened entry")]
    NoMarker { epoch: u64, seq: u64 },
}

/// The readers' state: the current epoch and the next sequence number expected in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fence {
    current: Option<u64>,
    next: u64,
}

impl Fence {
    /// The epoch of the latest marker that counted, if any.
    pub fn epoch(&self) -> Option<u64> {
        self.current
    }

    /// The epoch a new writer must claim: one above the latest it read.
    pub fn next_epoch(&self) -> u64 {
        self.current.map_or(1, |e| e + 1)
    }

    /// Decides about the next message of the stream, an entry with `epoch` and `seq`.
    pub fn entry(&mut self, epoch: u64, seq: u64) -> Result<Verdict, FenceError> {
        let newer = self.current.is_none_or(|c| epoch > c);
        if seq == 0 {
            if newer {
                self.current = Some(epoch);
                self.next = 1;
                return Ok(Verdict::Opened { epoch });
            }
            let current = self.current.unwrap_or(0);
            return Ok(if epoch == current {
                // The current marker again: a republish.
                Verdict::Duplicate
            } else {
                Verdict::Fenced { epoch, current }
            });
        }
        match self.current {
            _ if newer => Err(FenceError::NoMarker { epoch, seq }),
            Some(current) if epoch < current => Ok(Verdict::Fenced { epoch, current }),
            _ if seq < self.next => Ok(Verdict::Duplicate),
            _ if seq > self.next => Err(FenceError::Gap {
                epoch,
                expected: self.next,
                found: seq,
            }),
            _ => {
                self.next += 1;
                Ok(Verdict::Entry)
            }
        }
    }

    /// Whether an outbox mark written under `epoch` counts: only the current writer's (an
    /// older writer's marks may count decisions that a newer writer's entries undid).
    pub fn mark(&self, epoch: u64) -> bool {
        self.current == Some(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds (epoch, seq) pairs and renders each verdict on a line, for `expect`-style
    /// comparison.
    fn check(messages: &[(u64, u64)], expect: &str) {
        let mut fence = Fence::default();
        let got: Vec<String> = messages
            .iter()
            .map(|&(e, s)| match fence.entry(e, s) {
                Ok(Verdict::Opened { epoch }) => format!("{e}.{s} opened {epoch}"),
                Ok(Verdict::Entry) => format!("{e}.{s} entry"),
                Ok(Verdict::Duplicate) => format!("{e}.{s} duplicate"),
                Ok(Verdict::Fenced { epoch, current }) => {
                    format!("{e}.{s} fenced ({epoch} < {current})")
                }
                Err(err) => format!("{e}.{s} error: {err}"),
            })
            .collect();
        assert_eq!(got.join("\n"), expect.trim());
    }

    #[test]
    fn one_writer_in_order() {
        check(
            &[(1, 0), (1, 1), (1, 2)],
            "1.0 opened 1\n1.1 entry\n1.2 entry",
        );
    }

    #[test]
    fn a_republish_after_a_lost_connection_is_skipped() {
        check(
            &[(1, 0), (1, 1), (1, 2), (1, 1), (1, 2), (1, 3)],
            "1.0 opened 1\n1.1 entry\n1.2 entry\n1.1 duplicate\n1.2 duplicate\n1.3 entry",
        );
    }

    #[test]
    fn a_zombie_writing_after_a_newer_marker_is_fenced() {
        check(
            &[(1, 0), (1, 1), (2, 0), (1, 2), (2, 1), (1, 3)],
            "1.0 opened 1\n1.1 entry\n2.0 opened 2\n1.2 fenced (1 < 2)\n2.1 entry\n1.3 fenced (1 < 2)",
        );
    }

    #[test]
    fn the_first_marker_of_an_epoch_wins() {
        check(
            &[(1, 0), (2, 0), (2, 1), (2, 0), (1, 0), (3, 0)],
            "1.0 opened 1\n2.0 opened 2\n2.1 entry\n2.0 duplicate\n1.0 fenced (1 < 2)\n3.0 opened 3",
        );
    }

    #[test]
    fn epochs_may_skip() {
        check(
            &[(1, 0), (5, 0), (5, 1)],
            "1.0 opened 1\n5.0 opened 5\n5.1 entry",
        );
    }

    #[test]
    fn a_gap_or_an_entry_before_its_marker_is_an_error() {
        check(
            &[(1, 0), (1, 2)],
            "1.0 opened 1\n1.2 error: entry 2 of epoch 1 follows entry 0 (entries are missing)",
        );
        check(
            &[(1, 1)],
            "1.1 error: entry 1 of epoch 1 comes before that epoch's opened entry",
        );
        check(
            &[(1, 0), (2, 1)],
            "1.0 opened 1\n2.1 error: entry 1 of epoch 2 comes before that epoch's opened entry",
        );
    }

    #[test]
    fn marks_count_only_under_the_current_epoch() {
        let mut fence = Fence::default();
        assert!(!fence.mark(1));
        assert_eq!(fence.next_epoch(), 1);
        fence.entry(1, 0).unwrap();
        assert!(fence.mark(1));
        fence.entry(2, 0).unwrap();
        assert!(!fence.mark(1));
        assert!(fence.mark(2));
        assert_eq!(fence.next_epoch(), 3);
    }
}
