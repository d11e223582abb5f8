//! The journal: every accepted event, checksummed, made durable before it is acknowledged.
//!
//! Format: JSON lines. Each line is the event's CloudEvent object with a checksum attribute
//! inserted as its first member: `{"handoffcrc":"<8 lowercase hex>",` followed by the rest of
//! the original object after its `{`. The checksum is CRC-32C of the original object text,
//! that is the line with its 25-byte prefix replaced by `{`. Every line therefore stays a JSON
//! object that `handoff replay` can read, and a damaged line can be told from an intact one.
//!
//! Group commit: the service [`Journal::append`]s each accepted event to a pending batch and
//! then calls [`Journal::commit`] once for the whole batch. One write and one `fdatasync`
//! make all of its entries durable, and only then are their AMQP messages acknowledged.
//!
//! Recovery ([`FileJournal::open`]) streams the file from its start and hands every intact
//! entry to the caller, which rebuilds its state from them. Whatever follows the last intact
//! entry without forming intact entries (a line cut short by a crash, zero bytes left by a
//! power loss) is a torn tail: it was never acknowledged, so it is cut off. A damaged entry
//! with an intact entry after it cannot come from a crash during an append: it is corruption,
//! and the journal refuses to open rather than guess, and never truncates intact data.
//!
//! The outbox mark ([`OutboxMark`]) beside the journal counts the decisions that have been
//! published and confirmed, so that a restart republishes only the ones after it.
//!
//! Besides the events, a journal holds handoff's own control entries ([`control`], ICD
//! section 8), framed and checksummed the same way: a `handoff.journal.opened` is its first
//! entry and the first each newly started writer appends. They decide nothing; every reader
//! skips them.

pub mod control;
pub mod feed;
pub mod fence;
pub mod read;
pub mod stream;
pub mod tool;

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// The start of every journal line, up to the checksum's hex digits.
const CRC_OPEN: &[u8] = b"{\"handoffcrc\":\"";
/// What follows the checksum's hex digits.
const CRC_CLOSE: &[u8] = b"\",";
/// The length of `{"handoffcrc":"xxxxxxxx",`, the part of a line the checksum does not cover.
const PREFIX_LEN: usize = CRC_OPEN.len() + 8 + CRC_CLOSE.len();
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
/// The read buffer for recovery: large reads keep the syscall count low on big journals.
const READ_BUFFER: usize = 1 << 20;

/// Frames one event's JSON object as a journal line (with trailing '\n') appended to `out`.
///
/// `json` must be compact JSON of a non-empty object (serde_json output): it starts with `{`,
/// ends with `}` and holds no newline. Anything else is a bug in the caller, and writing it
/// would damage the journal, so this panics instead.
pub fn frame(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    assert!(
        bytes.len() > 2 && bytes[0] == b'{' && bytes[bytes.len() - 1] == b'}',
        "a journal entry must be a non-empty JSON object"
    );
    assert!(
        !bytes.contains(&b'\n'),
        "a journal entry must not contain a newline"
    );
    let crc = crc32c::crc32c(bytes);
    out.reserve(bytes.len() + PREFIX_LEN);
    out.extend_from_slice(CRC_OPEN);
    for shift in (0..8).rev() {
        out.push(HEX_DIGITS[((crc >> (shift * 4)) & 0xf) as usize]);
    }
    out.extend_from_slice(CRC_CLOSE);
    out.extend_from_slice(&bytes[1..]);
    out.push(b'\n');
}

/// Checks one line (without the trailing '\n'). Ok(()) when the checksum matches.
pub fn check_line(line: &[u8]) -> Result<(), LineError> {
    check(line).map(|_| ())
}

/// Why a journal line is not an intact entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error(
        "the line does not start with a handoffcrc checksum, so the journal did not write it \
         or its start is damaged"
    )]
    NoChecksum,
    #[error(
        "checksum mismatch (stored {stored:08x}, computed {computed:08x}), so the line's bytes \
         changed after they were written"
    )]
    Mismatch { stored: u32, computed: u32 },
    #[error("the line's checksum matches but its text is not valid UTF-8")]
    NotUtf8,
}

/// Checks one line (without the trailing '\n') and gives its text when it is intact.
pub fn check(line: &[u8]) -> Result<&str, LineError> {
    if line.len() <= PREFIX_LEN
        || !line.starts_with(CRC_OPEN)
        || &line[PREFIX_LEN - CRC_CLOSE.len()..PREFIX_LEN] != CRC_CLOSE
    {
        return Err(LineError::NoChecksum);
    }
    let stored =
        parse_hex(&line[CRC_OPEN.len()..CRC_OPEN.len() + 8]).ok_or(LineError::NoChecksum)?;
    let computed = crc32c::crc32c_append(crc32c::crc32c(b"{"), &line[PREFIX_LEN..]);
    if stored != computed {
        return Err(LineError::Mismatch { stored, computed });
    }
    std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)
}

/// Parses exactly 8 lowercase hex digits, the only form `frame` writes.
fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u32::from(v))
    })
}

/// The small interface the service writes through: a [`FileJournal`] on one machine, or a
/// [`stream::StreamJournal`] replicated on the RabbitMQ cluster.
pub trait Journal: Send {
    /// Appends one event (JSON object text, see [`frame`]) to the pending batch. Not durable yet.
    fn append(&mut self, json: &str);
    /// Writes the pending batch and makes it durable (write_all + sync_data). Returns how many
    /// entries were committed by this call (0 when nothing was pending: then no syscall at all).
    ///
    /// On an error none of the pending entries may be acknowledged; they are dropped from the
    /// batch, and their messages will be redelivered after a restart.
    fn commit(&mut self) -> Result<usize, JournalError>;
    /// Entries durable so far (recovered + committed).
    fn len(&self) -> u64;
    /// Whether no entry is durable yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The journal the service writes: a local file, or a stream on the RabbitMQ cluster.
pub enum AnyJournal {
    File(FileJournal),
    Stream(stream::StreamJournal),
}

impl Journal for AnyJournal {
    fn append(&mut self, json: &str) {
        match self {
            AnyJournal::File(j) => j.append(json),
            AnyJournal::Stream(j) => j.append(json),
        }
    }

    fn commit(&mut self) -> Result<usize, JournalError> {
        match self {
            AnyJournal::File(j) => j.commit(),
            AnyJournal::Stream(j) => j.commit(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            AnyJournal::File(j) => j.len(),
            AnyJournal::Stream(j) => j.len(),
        }
    }
}

/// The original event object of a journal line (without its '\n'): the line with its
/// `handoffcrc` member taken out, as [`frame`] received it. A line without the member (a
/// plain log line) is given back as it is.
pub fn unframed(line: &str) -> std::borrow::Cow<'_, str> {
    let bytes = line.as_bytes();
    if bytes.len() > PREFIX_LEN
        && bytes.starts_with(CRC_OPEN)
        && &bytes[PREFIX_LEN - CRC_CLOSE.len()..PREFIX_LEN] == CRC_CLOSE
    {
        std::borrow::Cow::Owned(format!("{{{}", &line[PREFIX_LEN..]))
    } else {
        std::borrow::Cow::Borrowed(line)
    }
}

/// A journal in memory, for tests of the pipeline without files: committed entries are
/// framed lines exactly as [`FileJournal`] writes them (without '\n'), and it can be told
/// to fail its next commit, as a full disk would.
#[derive(Debug, Clone, Default)]
pub struct MemJournal {
    committed: Vec<String>,
    pending: Vec<String>,
    fail_next: bool,
    failed: bool,
}

impl MemJournal {
    /// An empty journal.
    pub fn new() -> MemJournal {
        MemJournal::default()
    }

    /// A journal holding `lines` (framed, as [`MemJournal::entries`] gives them) as durable.
    pub fn with_entries(lines: Vec<String>) -> MemJournal {
        MemJournal {
            committed: lines,
            ..MemJournal::default()
        }
    }

    /// The durable entries, framed, in order.
    pub fn entries(&self) -> &[String] {
        &self.committed
    }

    /// Entries appended but not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What a crash leaves behind: the durable entries only.
    pub fn crashed(&self) -> MemJournal {
        MemJournal::with_entries(self.committed.clone())
    }

    /// Makes the next commit that has entries fail (and every commit after it, as
    /// [`FileJournal`] does after a failed write).
    pub fn fail_next_commit(&mut self) {
        self.fail_next = true;
    }
}

impl Journal for MemJournal {
    fn append(&mut self, json: &str) {
        let mut line = Vec::new();
        frame(json, &mut line);
        line.pop();
        self.pending
            .push(String::from_utf8(line).expect("a framed str is UTF-8"));
    }

    fn commit(&mut self) -> Result<usize, JournalError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        if self.fail_next || self.failed {
            self.fail_next = false;
            self.failed = true;
            self.pending.clear();
            return Err(JournalError::Io {
                path: PathBuf::from("(memory)"),
                op: "write to",
                source: io::Error::other("commit failed as the test asked"),
            });
        }
        let n = self.pending.len();
        self.committed.append(&mut self.pending);
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.committed.len() as u64
    }
}

/// The journal as one append-only file on the local disk.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    /// Opened for appending, and locked so that a second service cannot write the same file.
    file: File,
    /// The framed lines of the pending batch.
    pending: Vec<u8>,
    pending_entries: usize,
    durable: u64,
    /// Set when a write or sync failed. After a failed fsync the kernel may have dropped the
    /// dirty pages and a retried fsync can report success without writing them, so the only
    /// safe course is to stop writing and let a restart recover the file from what is on disk.
    failed: bool,
}

/// What opening a journal found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Intact entries recovered.
    pub entries: u64,
    /// Bytes of intact entries, which is the file's length after recovery.
    pub bytes: u64,
    /// Some((offset, bytes removed)) when a torn tail was cut off.
    pub truncated: Option<(u64, u64)>,
    /// Some(mode) when an existing file is readable or writable by group or others
    /// (mode & 0o077 != 0); the service warns.
    pub loose_mode: Option<u32>,
}

/// A journal (or outbox mark) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error(
        "journal {path} is damaged at byte {offset} (line {line_number}): {reason}; later \
         entries are intact, so this is not a torn write. Stop, keep a copy of the file, and \
         see `handoff journal verify`."
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        line_number: u64,
        reason: LineError,
    },
    #[error("journal {path}, line {line_number} (byte {offset}): {message}")]
    Entry {
        path: PathBuf,
        offset: u64,
        line_number: u64,
        message: String,
    },
    /// A `handoff.journal.opened` entry names other rules than this build's (ICD section
    /// 8): deciding on would publish decisions its writer never made.
    #[error(
        "journal {path}, {found}. This handoff will not decide it or write to it: start the \
         handoff release that decides by rules version {rules} on it, or point this one at a \
         new journal (journal.path, HANDOFF_JOURNAL). `handoff replay --rules current` shows \
         what this release would decide from it",
        rules = found.rules
    )]
    OtherRules {
        path: PathBuf,
        found: control::OtherRules,
    },
    /// The stream journal could not be written or read back (a lost connection, no
    /// majority, another writer took over): this instance stops writing; its state is
    /// rebuilt from the stream.
    #[error("journal stream {stream}: {message}")]
    Stream { stream: String, message: String },
}

/// Why the caller of [`FileJournal::open`] refuses an intact entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not a valid event or control entry: the envelope's reason.
    #[error("{0}")]
    Invalid(String),
    /// An opened entry names other rules than this build's.
    #[error(transparent)]
    OtherRules(control::OtherRules),
}

impl From<String> for EntryError {
    fn from(message: String) -> Self {
        EntryError::Invalid(message)
    }
}

impl JournalError {
    /// Whether the journal could not be read or written (a full disk, an IO error, a held
    /// lock), as opposed to a journal whose contents are damaged. A restart can succeed once
    /// the cause is fixed, so the service exits with `EX_TEMPFAIL` (75).
    pub fn is_io(&self) -> bool {
        matches!(self, JournalError::Io { .. })
    }
}

/// Builds the `map_err` closure for an IO error on `path`.
fn io_error(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> JournalError {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl FileJournal {
    /// Opens `path`, creating it (mode 0600 on unix) when missing, and recovers it.
    ///
    /// Calls `each(offset, line_text)` for every intact entry in file order; `line_text` is
    /// the full line without its '\n', including the handoffcrc member. If `each` returns
    /// an error the open fails with [`JournalError::Entry`], or [`JournalError::OtherRules`]
    /// for a journal decided under other rules.
    ///
    /// A torn tail (bytes after the last intact entry that do not form intact entries: a last
    /// line without '\n', or damaged lines at the very end, such as a run of zero bytes after
    /// a power loss) is truncated and synced, and reported in [`Recovery::truncated`]. A
    /// damaged entry followed by an intact one is corruption: the open fails with
    /// [`JournalError::Corrupt`] and the file is left as it is.
    ///
    /// The file is streamed, so memory is bounded by the longest line, not the file's size.
    /// It is locked exclusively (advisory lock) while the journal is open, so a second
    /// process opening the same journal fails instead of interleaving its writes.
    pub fn open(
        path: &Path,
        mut each: impl FnMut(u64, &str) -> Result<(), EntryError>,
    ) -> Result<(FileJournal, Recovery), JournalError> {
        let (file, created) = open_or_create(path)?;
        lock(&file, path)?;
        let mut recovery = Recovery::default();
        if created {
            // The new directory entry must be durable too, or the whole file could vanish in a
            // power loss even though its contents were synced.
            sync_parent(path)?;
        } else {
            recovery.loose_mode = loose_mode(&file, path)?;
        }

        let mut reader = read::LineReader::new(BufReader::with_capacity(READ_BUFFER, &file));
        // The first damaged line since the last intact entry: a torn tail unless an intact
        // entry follows it.
        let mut damaged: Option<(u64, u64, LineError)> = None;
        while let Some(line) = reader.next_line().map_err(io_error(path, "read"))? {
            if !line.complete {
                // A last line without '\n' was cut short: the torn tail starts at or before it.
                break;
            }
            let (offset, line_number) = (line.offset, line.number);
            match check(line.bytes) {
                Ok(text) => {
                    if let Some((offset, line_number, reason)) = damaged {
                        return Err(JournalError::Corrupt {
                            path: path.to_path_buf(),
                            offset,
                            line_number,
                            reason,
                        });
                    }
                    each(offset, text).map_err(|e| match e {
                        EntryError::Invalid(message) => JournalError::Entry {
                            path: path.to_path_buf(),
                            offset,
                            line_number,
                            message,
                        },
                        EntryError::OtherRules(found) => JournalError::OtherRules {
                            path: path.to_path_buf(),
                            found,
                        },
                    })?;
                    recovery.entries += 1;
                    recovery.bytes = offset + line.len_on_disk();
                }
                Err(reason) => {
                    damaged.get_or_insert((offset, line_number, reason));
                }
            }
        }
        let end = reader.bytes_read();
        drop(reader);

        if end > recovery.bytes {
            file.set_len(recovery.bytes)
                .map_err(io_error(path, "truncate the torn tail of"))?;
            file.sync_all().map_err(io_error(path, "sync"))?;
            recovery.truncated = Some((recovery.bytes, end - recovery.bytes));
        }
        // The file was opened with O_APPEND, so every write goes to its (possibly truncated)
        // end whatever the read position is.
        let journal = FileJournal {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            pending_entries: 0,
            durable: recovery.entries,
            failed: false,
        };
        Ok((journal, recovery))
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries appended but not yet committed.
    pub fn pending(&self) -> usize {
        self.pending_entries
    }
}

impl Journal for FileJournal {
    fn append(&mut self, json: &str) {
        frame(json, &mut self.pending);
        self.pending_entries += 1;
    }

    fn commit(&mut self) -> Result<usize, JournalError> {
        let entries = std::mem::take(&mut self.pending_entries);
        if entries == 0 {
            return Ok(0);
        }
        if self.failed {
            self.pending.clear();
            return Err(JournalError::Io {
                path: self.path.clone(),
                op: "write to",
                source: io::Error::other(
                    "an earlier write or sync of this journal failed, so what is on disk is \
                     unknown; restart the service to recover the journal",
                ),
            });
        }
        let result = self
            .file
            .write_all(&self.pending)
            .map_err(io_error(&self.path, "write to"))
            .and_then(|()| self.file.sync_data().map_err(io_error(&self.path, "sync")));
        self.pending.clear();
        if let Err(e) = result {
            // A partly written batch is a torn tail, which the next open cuts off, as long as
            // nothing is appended after it: hence no more writes from this handle.
            self.failed = true;
            return Err(e);
        }
        self.durable += entries as u64;
        Ok(entries)
    }

    fn len(&self) -> u64 {
        self.durable
    }
}

/// Opens the journal for reading and appending, creating it with mode 0600 when missing.
/// Returns whether it was created.
fn open_or_create(path: &Path) -> Result<(File, bool), JournalError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options
            .open(path)
            .map(|file| (file, false))
            .map_err(io_error(path, "open")),
        Err(e) => Err(io_error(path, "create")(e)),
    }
}

fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    file.try_lock().map_err(|e| {
        let source = match e {
            std::fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process (or another open journal in this one) holds its lock",
            ),
            std::fs::TryLockError::Error(e) => e,
        };
        io_error(path, "lock")(source)
    })
}

fn sync_parent(path: &Path) -> Result<(), JournalError> {
    sync_dir_of(path).map_err(io_error(path, "sync the directory of"))
}

/// Makes a rename or a creation in `path`'s directory durable: fsyncs the directory (on
/// Unix; elsewhere there is nothing to do).
pub(crate) fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The file's permission bits when group or others may read or write it.
fn loose_mode(file: &File, path: &Path) -> Result<Option<u32>, JournalError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(io_error(path, "read the metadata of"))?
            .permissions()
            .mode()
            & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(None)
    }
}

/// The outbox mark: how many decisions have been published and confirmed, kept beside the
/// journal as `<journal path>.published`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMark {
    path: PathBuf,
}

impl OutboxMark {
    /// The mark for `journal`: its full file name with `.published` appended.
    pub fn beside(journal: &Path) -> OutboxMark {
        let mut name = journal.as_os_str().to_owned();
        name.push(".published");
        OutboxMark { path: name.into() }
    }

    /// The second mark, for the rules' refusals (`unknown_offer`, `late_response`): how
    /// many of their dead letters RabbitMQ confirmed, as `<journal path>.dead-lettered`.
    /// It is a file of its own so that the decisions' mark keeps its meaning (ICD section
    /// 8; `handoff journal repair` lowers it by counting decisions).
    pub(crate) fn refusals_beside(journal: &Path) -> OutboxMark {
        let mut name = journal.as_os_str().to_owned();
        name.push(".dead-lettered");
        OutboxMark { path: name.into() }
    }

    /// The mark file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored count, and whether the file was unreadable. A missing file gives (0, false).
    /// A file that cannot be parsed gives (0, true): republishing everything is safe
    /// (at-least-once, and decision ids are deterministic), losing a decision is not.
    pub(crate) fn load(&self) -> Result<(u64, bool), JournalError> {
        let mut text = Vec::new();
        match File::open(&self.path) {
            // A valid mark is at most 21 bytes; anything much longer is garbage anyway.
            Ok(file) => file
                .take(64)
                .read_to_end(&mut text)
                .map_err(io_error(&self.path, "read"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, false)),
            Err(e) => return Err(io_error(&self.path, "open")(e)),
        };
        match std::str::from_utf8(&text)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) => Ok((n, false)),
            None => Ok((0, true)),
        }
    }

    /// Stores `n` atomically: writes `<path>.tmp` (mode 0600), then renames it over the mark.
    pub fn store(&self, n: u64) -> Result<(), JournalError> {
        // There is deliberately no fsync here. After a crash the mark may be older than the
        // last store, or (on file systems that do not order a rename after the data it
        // names) empty. An older mark only makes the service republish decisions that were
        // already confirmed, and an empty one reads as unreadable and republishes all of
        // them; both are safe because delivery is at-least-once and decision ids are
        // deterministic, so consumers drop the repeats. The mark never runs ahead of the
        // truth, so no decision is lost, and the publish path avoids an fsync per confirm.
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&tmp)
            .and_then(|mut file| file.write_all(format!("{n}\n").as_bytes()))
            .map_err(io_error(&tmp, "write"))?;
        std::fs::rename(&tmp, &self.path).map_err(io_error(&self.path, "replace"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("handoff-journal-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn event(i: usize) -> String {
        format!(r#"{{"specversion":"1.0","id":"e-{i}","source":"urn:test","data":{{"n":{i}}}}}"#)
    }

    fn framed(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        frame(json, &mut out);
        out
    }

    /// Every recovered entry as (offset, line).
    type Seen = Vec<(u64, String)>;

    /// Opens `path` and collects every recovered entry.
    fn reopen(path: &Path) -> Result<(FileJournal, Recovery, Seen), JournalError> {
        let mut seen = Vec::new();
        let (journal, recovery) = FileJournal::open(path, |offset, line| {
            seen.push((offset, line.to_string()));
            Ok(())
        })?;
        Ok((journal, recovery, seen))
    }

    /// Writes `count` framed events to a fresh journal file and gives each line's offset.
    fn write_entries(path: &Path, count: usize) -> Vec<u64> {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..count {
            offsets.push(bytes.len() as u64);
            frame(&event(i), &mut bytes);
        }
        std::fs::write(path, &bytes).unwrap();
        offsets
    }

    #[test]
    fn frame_and_check_round_trip() {
        let json = event(7);
        let line = framed(&json);
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        assert_eq!(check_line(body), Ok(()));
        // The original object is `{` plus everything after the prefix.
        assert_eq!(&body[PREFIX_LEN..], &json.as_bytes()[1..]);

        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        let object = value.as_object().unwrap();
        // serde_json's map is sorted, so the member order is checked on the text.
        assert!(body.starts_with(b"{\"handoffcrc\":\""));
        let hex = format!("{:08x}", crc32c::crc32c(json.as_bytes()));
        assert_eq!(object["handoffcrc"], serde_json::Value::String(hex));
        assert_eq!(object["id"], "e-7");
    }

    #[test]
    fn a_flipped_byte_is_a_mismatch() {
        let mut line = framed(&event(1));
        line.pop();
        let at = line.len() - 5;
        line[at] ^= 0x01;
        assert!(matches!(
            check_line(&line),
            Err(LineError::Mismatch { stored, computed }) if stored != computed
        ));
        // A damaged checksum digit is a mismatch too.
        let mut line = framed(&event(1));
        line.pop();
        line[CRC_OPEN.len()] = if line[CRC_OPEN.len()] == b'0' {
            b'1'
        } else {
            b'0'
        };
        assert!(matches!(check_line(&line), Err(LineError::Mismatch { .. })));
    }

    #[test]
    fn lines_without_a_checksum() {
        assert_eq!(check_line(event(1).as_bytes()), Err(LineError::NoChecksum));
        assert_eq!(check_line(b""), Err(LineError::NoChecksum));
        assert_eq!(check_line(&[0u8; 64]), Err(LineError::NoChecksum));
        assert_eq!(
            check_line(br#"{"handoffcrc":"0A1B2C3D","id":"x"}"#),
            Err(LineError::NoChecksum)
        );
        assert_eq!(
            check_line(br#"{"handoffcrc":"0a1b2c3d","#),
            Err(LineError::NoChecksum)
        );
    }

    #[test]
    fn not_utf8_behind_a_matching_checksum() {
        let original = b"{\"a\":\"\xff\"}";
        let crc = crc32c::crc32c(original);
        let mut line = format!("{{\"handoffcrc\":\"{crc:08x}\",").into_bytes();
        line.extend_from_slice(&original[1..]);
        assert_eq!(check_line(&line), Err(LineError::NotUtf8));
    }

    #[test]
    #[should_panic(expected = "newline")]
    fn frame_refuses_a_newline() {
        frame("{\"a\":\n1}", &mut Vec::new());
    }

    #[test]
    fn append_commit_and_reopen() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        let (mut journal, recovery, seen) = reopen(&path).unwrap();
        assert_eq!(recovery, Recovery::default());
        assert!(seen.is_empty());
        assert_eq!(journal.commit().unwrap(), 0);
        for i in 0..3 {
            journal.append(&event(i));
        }
        assert_eq!(journal.pending(), 3);
        assert_eq!(journal.len(), 0);
        assert_eq!(journal.commit().unwrap(), 3);
        assert_eq!(journal.len(), 3);
        assert_eq!(journal.commit().unwrap(), 0);
        drop(journal);

        let (journal, recovery, seen) = reopen(&path).unwrap();
        let mut offset = 0;
        for (i, (at, line)) in seen.iter().enumerate() {
            let expected = framed(&event(i));
            assert_eq!(*at, offset);
            assert_eq!(line.as_bytes(), &expected[..expected.len() - 1]);
            offset += expected.len() as u64;
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(journal.len(), 3);
        assert_eq!(
            recovery,
            Recovery {
                entries: 3,
                bytes: offset,
                truncated: None,
                loose_mode: None
            }
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), offset);
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        write_entries(&path, 2);
        let good = std::fs::metadata(&path).unwrap().len();
        let half = framed(&event(2));
        let half = &half[..half.len() / 2];
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(half).unwrap();
        drop(file);

        let (mut journal, recovery, seen) = reopen(&path).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(recovery.entries, 2);
        assert_eq!(recovery.bytes, good);
        assert_eq!(recovery.truncated, Some((good, half.len() as u64)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);

        journal.append(&event(2));
        assert_eq!(journal.commit().unwrap(), 1);
        assert_eq!(journal.len(), 3);
        drop(journal);
        let (_, recovery, seen) = reopen(&path).unwrap();
        assert_eq!(recovery.truncated, None);
        let lines: Vec<&str> = seen.iter().map(|(_, l)| l.as_str()).collect();
        let expected: Vec<String> = (0..3)
            .map(|i| {
                String::from_utf8(framed(&event(i)))
                    .unwrap()
                    .trim_end()
                    .to_string()
            })
            .collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_run_of_zero_bytes_is_a_torn_tail() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        write_entries(&path, 3);
        let good = std::fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0u8; 4096]).unwrap();
        drop(file);

        let (_, recovery, seen) = reopen(&path).unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(recovery.truncated, Some((good, 4096)));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
    }

    #[test]
    fn damaged_complete_lines_at_the_end_are_a_torn_tail() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        write_entries(&path, 2);
        let good = std::fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"\0\0\0\n{\"not\":\"framed\"}\n").unwrap();
        drop(file);

        let (_, recovery, _) = reopen(&path).unwrap();
        assert_eq!(recovery.entries, 2);
        assert_eq!(recovery.truncated, Some((good, 21)));
    }

    #[test]
    fn a_damaged_entry_before_an_intact_one_is_corruption() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        let offsets = write_entries(&path, 3);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = offsets[1] as usize + 40;
        bytes[at] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();

        let err = reopen(&path).unwrap_err();
        match &err {
            JournalError::Corrupt {
                offset,
                line_number,
                reason,
                ..
            } => {
                assert_eq!(*offset, offsets[1]);
                assert_eq!(*line_number, 2);
                assert!(matches!(reason, LineError::Mismatch { .. }));
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&format!("damaged at byte {} (line 2)", offsets[1])));
        assert!(message.contains("handoff journal verify"));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn an_unframed_line_in_the_middle_is_corruption() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        let mut bytes = framed(&event(0));
        let offset = bytes.len() as u64;
        bytes.extend_from_slice(event(1).as_bytes());
        bytes.push(b'\n');
        frame(&event(2), &mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            reopen(&path),
            Err(JournalError::Corrupt { offset: o, line_number: 2, reason: LineError::NoChecksum, .. })
                if o == offset
        ));
    }

    #[cfg(unix)]
    #[test]
    fn modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new();
        let path = dir.file("new.jsonl");
        let (_, recovery, _) = reopen(&path).unwrap();
        assert_eq!(recovery.loose_mode, None);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Reopening our own file does not warn.
        assert_eq!(reopen(&path).unwrap().1.loose_mode, None);

        let loose = dir.file("loose.jsonl");
        write_entries(&loose, 1);
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, recovery, _) = reopen(&loose).unwrap();
        assert_eq!(recovery.loose_mode, Some(0o644));
        assert_eq!(recovery.entries, 1);
    }

    #[test]
    fn an_entry_the_caller_rejects_fails_the_open() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        let offsets = write_entries(&path, 3);
        let err = FileJournal::open(&path, |_, line| {
            if line.contains("\"e-2\"") {
                Err("not a valid event".to_string().into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        match &err {
            JournalError::Entry {
                offset,
                line_number,
                message,
                ..
            } => {
                assert_eq!(*offset, offsets[2]);
                assert_eq!(*line_number, 3);
                assert_eq!(message, "not a valid event");
            }
            other => panic!("expected Entry, got {other:?}"),
        }
        assert!(err.to_string().contains("line 3"));
    }

    #[test]
    fn a_second_open_of_the_same_journal_is_refused() {
        let dir = TempDir::new();
        let path = dir.file("j.jsonl");
        let (journal, _, _) = reopen(&path).unwrap();
        assert!(matches!(
            reopen(&path),
            Err(JournalError::Io { op: "lock", .. })
        ));
        drop(journal);
        reopen(&path).unwrap();
    }

    #[test]
    fn unframed_gives_the_object_frame_was_given() {
        let json = event(3);
        let line = framed(&json);
        let line = std::str::from_utf8(&line[..line.len() - 1]).unwrap();
        assert_eq!(unframed(line), json);
        assert_eq!(unframed(&json), json);
    }

    #[test]
    fn mem_journal_commits_and_fails_on_request() {
        let mut j = MemJournal::new();
        j.append(&event(0));
        assert_eq!(j.len(), 0);
        assert_eq!(j.commit().unwrap(), 1);
        assert_eq!(check_line(j.entries()[0].as_bytes()), Ok(()));
        j.fail_next_commit();
        assert_eq!(j.commit().unwrap(), 0);
        j.append(&event(1));
        assert!(j.commit().unwrap_err().is_io());
        j.append(&event(2));
        assert!(j.commit().is_err(), "a failed journal stays failed");
        assert_eq!(j.len(), 1);
        assert_eq!(j.crashed().entries(), j.entries());
    }

    #[test]
    fn outbox_mark() {
        let dir = TempDir::new();
        let journal = dir.file("j.jsonl");
        let mark = OutboxMark::beside(&journal);
        assert_eq!(mark.path(), dir.file("j.jsonl.published"));
        assert_eq!(mark.load().unwrap(), (0, false));
        mark.store(42).unwrap();
        assert_eq!(mark.load().unwrap(), (42, false));
        mark.store(43).unwrap();
        assert_eq!(mark.load().unwrap(), (43, false));
        assert!(!dir.file("j.jsonl.published.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(mark.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(mark.path(), "garbage\n").unwrap();
        assert_eq!(mark.load().unwrap(), (0, true));
        std::fs::write(mark.path(), "").unwrap();
        assert_eq!(mark.load().unwrap(), (0, true));
    }
}
