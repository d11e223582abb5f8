//! The replicated journal: a RabbitMQ stream queue on the cluster (`journal.backend =
//! "stream"`), written by one writer at a time and read from any offset by every other
//! instance (hot standbys) and by `handoff journal export`.
//!
//! Each commit is one message whose body is exactly the journal lines a
//! [`FileJournal`](super::FileJournal) would hold (CRC-framed), one per line, with two
//! headers: the writer's epoch ([`EPOCH`]) and the sequence number within that epoch of
//! its first entry ([`SEQ`]; the next entries follow on; 0 is the writer's
//! `handoff.journal.opened` marker, alone in its message). One message per commit keeps
//! the broker's work per commit constant (one message of 250 entries, not 250 messages). Readers decide
//! which messages count with a [`Fence`]: duplicates from a republish and a zombie's late
//! entries are skipped. Between the entries, the writer appends *outbox marks*: messages
//! with an empty body and the headers [`PUBLISHED`] and [`DEAD_LETTERED`], the stream's
//! form of the `.published` file beside a file journal.
//!
//! Durability: an entry is confirmed by RabbitMQ once a majority of the stream's replicas
//! hold it (in memory or in the page cache: a stream does not fsync each write). It
//! survives the loss of any minority of nodes, not a simultaneous power loss of a majority.
//! The file backend fsyncs every commit on one disk, which survives a power loss but not
//! the loss of that disk or machine.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};

use super::fence::{Fence, FenceError, Verdict};
use super::{Journal, JournalError, frame};

/// Header: the epoch of the writer that appended the message.
pub const EPOCH: &str = "x-handoff-epoch";
/// Header: an entry's sequence number within its epoch (0: the writer's opened marker).
pub const SEQ: &str = "x-handoff-seq";
/// Header of an outbox mark: how many decisions RabbitMQ has confirmed.
pub const PUBLISHED: &str = "x-handoff-published";
/// Header of an outbox mark: how many of the rules' refusals were dead-lettered.
pub const DEAD_LETTERED: &str = "x-handoff-dead-lettered";
/// Header of an outbox mark: the writer's clock when the mark was taken (milliseconds
/// since 1970), no earlier than any decision it counts; a new writer never stamps an event
/// earlier, so that the decisions the mark counts keep their positions in decision order
/// whatever the new writer's host clock says.
pub const CLOCK: &str = "x-handoff-clock";
/// The offset RabbitMQ puts on every delivery from a stream.
const OFFSET: &str = "x-stream-offset";

/// How many deliveries a stream consumer may hold unacknowledged.
const PREFETCH: u16 = 2000;
/// Acknowledge (multiple) after this many deliveries.
const ACK_EVERY: u64 = 500;

/// Makes sure the journal's stream queue and its exchange (a fanout of the same name,
/// bound to the stream only: the service's user then needs no write permission on the
/// default exchange, which reaches every queue) exist. Each is looked for first
/// (passively, which needs no permission); what is missing is declared when `create`
/// (durable, as a stream must be; replicated on `replicas` nodes), else it is an error.
/// deploy/rabbitmq/definitions.json creates both, and there the service's user may not.
pub async fn declare(
    conn: &Connection,
    name: &str,
    replicas: u32,
    create: bool,
) -> lapin::Result<()> {
    let passive_queue = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let passive_exchange = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let ch = conn.create_channel().await?;
    let found = async {
        ch.queue_declare(name.into(), passive_queue, FieldTable::default())
            .await?;
        ch.exchange_declare(
            name.into(),
            ExchangeKind::Fanout,
            passive_exchange,
            FieldTable::default(),
        )
        .await
    }
    .await;
    match found {
        Ok(()) => {
            let _ = ch.close(200, "found".into()).await;
            return Ok(());
        }
        Err(e) if !create || !is_not_found(&e) => return Err(e),
        // The broker closed the channel (404).
        Err(_) => {}
    }
    let ch = conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("stream")),
    );
    args.insert(
        "x-initial-cluster-size".into(),
        AMQPValue::LongInt(replicas.min(i32::MAX as u32) as i32),
    );
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await?;
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        name.into(),
        name.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let _ = ch.close(200, "declared".into()).await;
    Ok(())
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    First,
    Offset(u64),
    /// The last chunk written (to learn where the stream ends).
    LastChunk,
}

/// One message of the stream, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A batch of entries (one commit's), numbered `seq`, `seq + 1`, ...
    Entry {
        offset: u64,
        epoch: u64,
        seq: u64,
        lines: Vec<String>,
    },
    Mark {
        offset: u64,
        epoch: u64,
        published: u64,
        dead_lettered: u64,
        /// The writer's clock, in milliseconds since 1970.
        clock: Option<u64>,
    },
}

impl Message {
    pub fn offset(&self) -> u64 {
        match self {
            Message::Entry { offset, .. } | Message::Mark { offset, .. } => *offset,
        }
    }
}

/// A message that is not a journal entry nor a mark, or a stream no writer could produce.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the message at offset {offset} is not a journal message: {why}")]
    Foreign { offset: u64, why: String },
    #[error("at offset {offset}: {error}")]
    Fence { offset: u64, error: FenceError },
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the stream consumer was closed")]
    Closed,
}

fn as_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        _ => None,
    }
}

fn header(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    headers.and_then(|h| h.inner().get(name)).and_then(as_u64)
}

/// Reads one delivery of the stream.
pub fn read(d: &Delivery) -> Result<Message, ReadError> {
    let headers = d.properties.headers().as_ref();
    let foreign = |offset: u64, why: &str| ReadError::Foreign {
        offset,
        why: why.to_string(),
    };
    let offset = header(headers, OFFSET).ok_or_else(|| foreign(0, "no x-stream-offset"))?;
    let epoch = header(headers, EPOCH).ok_or_else(|| foreign(offset, "no epoch header"))?;
    if let Some(published) = header(headers, PUBLISHED) {
        let dead_lettered = header(headers, DEAD_LETTERED)
            .ok_or_else(|| foreign(offset, "a mark without its refusals' count"))?;
        return Ok(Message::Mark {
            offset,
            epoch,
            published,
            dead_lettered,
            clock: header(headers, CLOCK),
        });
    }
    let seq = header(headers, SEQ).ok_or_else(|| foreign(offset, "no sequence header"))?;
    let text = std::str::from_utf8(&d.data).map_err(|_| foreign(offset, "not UTF-8"))?;
    let mut lines = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        super::check(line.as_bytes())
            .map_err(|e| foreign(offset, &format!("entry {} of the message: {e}", i + 1)))?;
        lines.push(line.to_owned());
    }
    Ok(Message::Entry {
        offset,
        epoch,
        seq,
        lines,
    })
}

/// A consumer of the stream from some offset, acknowledging as it goes (a stream keeps
/// its messages; acknowledgements only let the broker send more).
pub struct Tail {
    channel: Channel,
    consumer: lapin::Consumer,
    unacked: u64,
}

impl Tail {
    pub async fn open(conn: &Connection, stream: &str, from: Start) -> lapin::Result<Tail> {
        let channel = conn.create_channel().await?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions { global: false })
            .await?;
        let mut args = FieldTable::default();
        let offset = match from {
            Start::First => AMQPValue::LongString(LongString::from("first")),
            Start::LastChunk => AMQPValue::LongString(LongString::from("last")),
            Start::Offset(n) => AMQPValue::LongLongInt(n.min(i64::MAX as u64) as i64),
        };
        args.insert(ShortString::from(OFFSET), offset);
        let consumer = channel
            .basic_consume(
                stream.into(),
                "handoff-journal-tail".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await?;
        Ok(Tail {
            channel,
            consumer,
            unacked: 0,
        })
    }

    /// The next message, waiting for one as long as it takes.
    pub async fn next(&mut self) -> Result<Message, ReadError> {
        let d = match self.consumer.next().await {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ReadError::Closed),
        };
        self.unacked += 1;
        if self.unacked >= ACK_EVERY {
            self.unacked = 0;
            self.channel
                .basic_ack(d.delivery_tag, BasicAckOptions { multiple: true })
                .await?;
        }
        read(&d)
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
    }
}

/// A reader's view of the stream: the fence, and where it got to.
#[derive(Debug, Clone, Default)]
pub struct Reader {
    pub fence: Fence,
    /// The offset after the last message read.
    pub next_offset: Option<u64>,
    /// Entries that counted (events and markers).
    pub entries: u64,
}

/// What a message of the stream means to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A journal line that counts (an event or a writer's marker, `seq` 0).
    Line { epoch: u64, seq: u64, line: String },
    /// An outbox mark of the current writer.
    Mark {
        published: u64,
        dead_lettered: u64,
        clock: Option<u64>,
    },
    /// Skipped: a duplicate, a zombie's, or an old writer's mark.
    Skipped(Option<Verdict>),
}

impl Reader {
    /// Where a consumer resumes after the messages already read.
    pub fn resume(&self) -> Start {
        self.next_offset.map_or(Start::First, Start::Offset)
    }

    /// Applies the next message: what each of its entries (or its mark) means, in order.
    /// Messages at offsets already read (a consumer that resumed at an earlier chunk
    /// boundary) are skipped.
    pub fn apply(&mut self, m: Message) -> Result<Vec<Read>, ReadError> {
        let offset = m.offset();
        if self.next_offset.is_some_and(|n| offset < n) {
            return Ok(vec![Read::Skipped(None)]);
        }
        self.next_offset = Some(offset + 1);
        match m {
            Message::Mark {
                epoch,
                published,
                dead_lettered,
                clock,
                ..
            } => Ok(vec![if self.fence.mark(epoch) {
                Read::Mark {
                    published,
                    dead_lettered,
                    clock,
                }
            } else {
                Read::Skipped(None)
            }]),
            Message::Entry {
                epoch, seq, lines, ..
            } => {
                let mut reads = Vec::with_capacity(lines.len());
                for (seq, line) in (seq..).zip(lines) {
                    let verdict = self
                        .fence
                        .entry(epoch, seq)
                        .map_err(|error| ReadError::Fence { offset, error })?;
                    reads.push(if verdict.counts() {
                        self.entries += 1;
                        Read::Line { epoch, seq, line }
                    } else {
                        Read::Skipped(Some(verdict))
                    });
                }
                Ok(reads)
            }
        }
    }
}

/// The properties of an entry of `epoch` with sequence `seq`.
fn entry_properties(epoch: u64, seq: u64) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(EPOCH.into(), AMQPValue::LongLongInt(epoch as i64));
    headers.insert(SEQ.into(), AMQPValue::LongLongInt(seq as i64));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// The properties of an outbox mark.
pub fn mark_properties(
    epoch: u64,
    published: u64,
    dead_lettered: u64,
    clock: Option<u64>,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(ms) = clock {
        headers.insert(CLOCK.into(), AMQPValue::LongLongInt(ms as i64));
    }
    headers.insert(EPOCH.into(), AMQPValue::LongLongInt(epoch as i64));
    headers.insert(PUBLISHED.into(), AMQPValue::LongLongInt(published as i64));
    headers.insert(
        DEAD_LETTERED.into(),
        AMQPValue::LongLongInt(dead_lettered as i64),
    );
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// Publishes `lines` (journal lines without '\n') as entries `first_seq..` of `epoch`:
/// one message holding them one per line (a commit is one stream message, so the broker's
/// work does not grow with the batch), through the stream's exchange, and waits for its
/// confirm. A nack is an error.
pub async fn publish_entries(
    ch: &Channel,
    stream: &str,
    epoch: u64,
    first_seq: u64,
    lines: &[String],
) -> Result<(), String> {
    let body = lines.join("\n");
    let confirm = ch
        .basic_publish(
            stream.into(),
            "".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            entry_properties(epoch, first_seq),
        )
        .await
        .map_err(|e| e.to_string())?;
    match confirm.await.map_err(|e| e.to_string())? {
        Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
        Confirmation::Nack(_) => Err("RabbitMQ refused (nacked) the entries".into()),
    }
}

/// What the writer's tail reports of its own entries read back.
#[derive(Debug)]
pub enum ReadBack {
    /// An entry of the writer's epoch that counts, as the stream holds it.
    Ours { seq: u64, line: String },
    /// A newer writer's marker: this writer is fenced off.
    Superseded { epoch: u64 },
    /// The stream cannot be read any more.
    Failed(String),
}

/// The writer's side of the stream journal: appends are published with confirms at
/// commit, and a commit succeeds only once every entry has been read back from the
/// stream, intact and in order, under this writer's epoch.
pub struct StreamJournal {
    handle: tokio::runtime::Handle,
    channel: Channel,
    stream: String,
    epoch: u64,
    /// The sequence number of the next entry.
    next_seq: u64,
    pending: Vec<String>,
    read_back: std_mpsc::Receiver<ReadBack>,
    timeout: Duration,
    len: u64,
    /// How long the last commit waited, from publishing to reading back.
    last_commit: Duration,
}

impl StreamJournal {
    /// The journal of the writer of `epoch`, whose marker (sequence 0) is already in the
    /// stream and read back; `entries` counted before it, the marker included.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handle: tokio::runtime::Handle,
        channel: Channel,
        stream: String,
        epoch: u64,
        entries: u64,
        read_back: std_mpsc::Receiver<ReadBack>,
        timeout: Duration,
    ) -> StreamJournal {
        StreamJournal {
            handle,
            channel,
            stream,
            epoch,
            next_seq: 1,
            pending: Vec::new(),
            read_back,
            timeout,
            len: entries,
            last_commit: Duration::ZERO,
        }
    }

    /// The channel entries are published on.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// How long the last commit took from publishing to reading its entries back.
    pub fn last_commit(&self) -> Duration {
        self.last_commit
    }

    fn fail(&self, message: String) -> JournalError {
        JournalError::Stream {
            stream: self.stream.clone(),
            message,
        }
    }
}

impl Journal for StreamJournal {
    fn append(&mut self, json: &str) {
        let mut line = Vec::with_capacity(json.len() + 26);
        frame(json, &mut line);
        line.pop(); // the '\n': a message is one line
        self.pending
            .push(String::from_utf8(line).expect("a framed JSON line is UTF-8"));
    }

    /// Publishes the pending entries with confirms, then waits until the stream gives
    /// every one of them back under this writer's epoch. Fails (and the writer must give
    /// up its role) when a confirm or the reading back takes longer than the timeout, the
    /// connection fails, or a newer writer's marker comes first.
    fn commit(&mut self) -> Result<usize, JournalError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let lines = std::mem::take(&mut self.pending);
        let first = self.next_seq;
        let started = Instant::now();
        let deadline = started + self.timeout;
        let published = self.handle.block_on(tokio::time::timeout(
            self.timeout,
            publish_entries(&self.channel, &self.stream, self.epoch, first, &lines),
        ));

        match published {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fail(e)),
            Err(_) => {
                return Err(self.fail(format!(
                    "no confirm within {} ms (is a majority of the stream's nodes up?)",
                    self.timeout.as_millis()
                )));
            }
        }
        let mut expected = first;
        let end = first + lines.len() as u64;
        while expected < end {
            let left = deadline.saturating_duration_since(Instant::now());
            let (seq, line) = match self.read_back.recv_timeout(left) {
                Ok(ReadBack::Ours { seq, line }) => (seq, line),
                Ok(ReadBack::Superseded { epoch }) => {
                    return Err(self.fail(format!(
                        "another writer took over (epoch {epoch} after this writer's {})",
                        self.epoch
                    )));
                }
                Ok(ReadBack::Failed(why)) => {
                    return Err(self.fail(format!("reading the entries back: {why}")));
                }
                Err(_) => {
                    return Err(self.fail(format!(
                        "the entries were not read back within {} ms",
                        self.timeout.as_millis()
                    )));
                }
            };
            if seq != expected || lines[(seq - first) as usize] != line {
                return Err(self.fail(format!(
                    "entry {seq} of epoch {} read back is not the one written as {expected}",
                    self.epoch
                )));
            }
            expected += 1;
        }
        self.next_seq = end;
        self.len += lines.len() as u64;
        self.last_commit = started.elapsed();

        Ok(lines.len())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// What `handoff journal export` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    /// Entries written out (events and writers' markers that count).
    pub entries: u64,
    /// Messages skipped: duplicates, a zombie's entries, marks.
    pub skipped: u64,
    /// The latest outbox mark of the current writer: decisions and refusals confirmed.
    pub published: Option<(u64, u64)>,
    /// The stream's end when the export began (the offset after its last message).
    pub end: u64,
}

/// Where the stream ends now: the offset after the last message of its last chunk, or 0
/// for an empty stream. (AMQP 0-9-1 has no "end of stream": a consumer from the last chunk
/// is given that chunk's messages at once.)
pub async fn end_offset(conn: &Connection, stream: &str) -> Result<u64, ReadError> {
    let mut tail = Tail::open(conn, stream, Start::LastChunk).await?;
    let mut end = 0;
    let mut wait = Duration::from_secs(2);
    while let Ok(m) = tokio::time::timeout(wait, tail.next()).await {
        let offset = match m {
            Ok(m) => m.offset(),
            Err(ReadError::Foreign { offset, .. }) => offset,
            Err(e) => return Err(e),
        };
        end = end.max(offset + 1);
        // The rest of the chunk comes with the first message.
        wait = Duration::from_millis(300);
    }
    tail.close().await;
    Ok(end)
}

/// Copies the journal in `stream` as it stands now into `out` as a file journal would
/// hold it: every entry that counts, in order, one line each (duplicates and what a fenced
/// writer appended left out).
pub async fn export<W: std::io::Write + ?Sized>(
    conn: &Connection,
    stream: &str,
    out: &mut W,
) -> Result<Exported, ExportError> {
    let end = end_offset(conn, stream).await?;
    let mut exported = Exported {
        end,
        ..Exported::default()
    };
    if end == 0 {
        return Ok(exported);
    }
    let mut tail = Tail::open(conn, stream, Start::First).await?;
    let mut reader = Reader::default();
    while reader.next_offset.is_none_or(|n| n < end) {
        let m = tail.next().await?;
        let offset = m.offset();
        let reads = reader.apply(m).map_err(|e| {
            ExportError::Read(ReadError::Foreign {
                offset,
                why: e.to_string(),
            })
        })?;
        for read in reads {
            match read {
                Read::Line { line, .. } => {
                    out.write_all(line.as_bytes())?;
                    out.write_all(b"\n")?;
                    exported.entries += 1;
                }
                Read::Mark {
                    published,
                    dead_lettered,
                    ..
                } => {
                    exported.published = Some((published, dead_lettered));
                    exported.skipped += 1;
                }
                Read::Skipped(_) => exported.skipped += 1,
            }
        }
    }
    tail.close().await;
    Ok(exported)
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<lapin::Error> for ExportError {
    fn from(e: lapin::Error) -> Self {
        ExportError::Read(ReadError::Amqp(e))
    }
}
