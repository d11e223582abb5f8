//! The service's configuration: a TOML file, then environment overrides, then checks.
//!
//! Every setting has a default, so `handoff serve` runs with no file at all against a
//! local RabbitMQ. The environment wins over the file so that containers and systemd units
//! can set the URL, the journal path and secrets without editing the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use handoff_core::authz::Agency;

/// The whole configuration of `handoff serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub amqp: Amqp,
    pub journal: Journal,
    pub http: Http,
    pub console: Console,
    pub log: Log,
    /// AMQP user name → the agency it speaks for: `bop`, `ice`, `court` or
    /// `jurisdiction:<jurisdiction_id>`. A user not listed here may publish nothing.
    pub publishers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Amqp {
    /// `amqp://user:password@host:port/vhost` (the vhost URL-encoded: `%2f` for `/`).
    pub url: String,
    /// More URLs of the same cluster (other nodes), tried in turn after `url` when a
    /// connection fails: with the stream journal, the service must reach the cluster
    /// through any node that is up.
    pub urls: Vec<String>,
    /// How many unacknowledged deliveries RabbitMQ may hand us at once. It bounds both
    /// memory and the size of a group commit.
    pub prefetch: u16,
    pub queue_type: QueueType,
    /// Declare the exchanges, queues and bindings at start-up. Turn off when an operator
    /// imports `deploy/rabbitmq/definitions.json` and the service's user may not declare.
    pub declare_topology: bool,
    pub events_exchange: String,
    pub decisions_exchange: String,
    /// The service's inbound queue, bound to every event type on `events_exchange`.
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    /// Alternate exchange of `decisions_exchange`: decisions no agency queue is bound for
    /// land in `unrouted_queue` instead of vanishing.
    pub unrouted_exchange: String,
    pub unrouted_queue: String,
    /// Messages larger than this are dead-lettered as `oversized` before any parsing.
    pub max_message_bytes: usize,
    /// The first wait before reconnecting; it doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// TLS files, used when `url` is `amqps://`.
    pub tls: Tls,
}

/// The files of TLS to RabbitMQ (`[amqp.tls]`), used when the URL is `amqps://`. Only paths
/// are kept here: [`Tls::load`] reads the files, and no error ever shows what is in them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificates trusted to sign the broker's certificate, in addition to the
    /// platform's roots; without it, the platform's roots alone.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (then any intermediates), for a broker that requires client
    /// certificates. It needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key_file: Option<PathBuf>,
}

/// TLS settings read from the files of [`Tls`], ready for lapin. Its `Debug` shows which
/// parts are present, never the key.
#[derive(Clone, Default)]
pub struct TlsMaterial(pub lapin::tcp::OwnedTLSConfig);

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &self.0.cert_chain.is_some())
            .field("client_certificate", &self.0.identity.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Replicated, the production default.
    Quorum,
    /// A single node's queue: for development and tests.
    Classic,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Journal {
    /// Where the journal lives: `file` (one machine, the default) or `stream` (a RabbitMQ
    /// stream replicated on the cluster, with one writer at a time and hot standbys).
    pub backend: Backend,
    /// The journal file (backend `file`); the outbox mark sits beside it with
    /// `.published` appended.
    pub path: PathBuf,
    /// The stream queue that holds the journal (backend `stream`).
    pub stream: String,
    /// How many nodes hold a replica of a newly declared stream (`x-initial-cluster-size`).
    pub stream_replicas: u32,
    /// The exclusive queue whose holder is the one writer (backend `stream`).
    pub lock_queue: String,
    /// How often a standby tries to take the writer's lock, in milliseconds.
    pub lock_poll_ms: u64,
    /// How long a write to the stream may wait for its confirm and its reading back
    /// before the writer gives up its role (without a majority of nodes, a publish waits
    /// forever), in milliseconds.
    pub confirm_timeout_ms: u64,
    /// This instance's identity as a journal writer, recorded in the
    /// `handoff.journal.opened` entry it appends at every start (ICD section 8). `None`:
    /// this host's name and the process id (`host:4711`), see [`Journal::writer_id`].
    pub writer: Option<String>,
}

/// Where the journal lives (`journal.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local file, fsync'd at every commit: one machine.
    File,
    /// A RabbitMQ stream queue replicated on the cluster: one writer, hot standbys.
    Stream,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Stream => "stream",
        }
    }
}

impl Journal {
    /// The writer id: the configured one, else `<host name>:<process id>`.
    pub fn writer_id(&self) -> String {
        self.writer
            .clone()
            .unwrap_or_else(crate::journal::control::default_writer)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Where `/healthz`, `/readyz` and `/metrics` listen; empty to turn them off.
    pub listen: String,
}

/// The web console (`src/console`). Off unless `enabled`; it shows personal data, so it
/// needs a credential and listens on this host only unless told otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Console {
    pub enabled: bool,
    pub listen: String,
    /// The credential's Argon2 hash (PHC string), from `handoff console --hash-credential`.
    pub credential_hash: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `handoff=debug`. The default silences lapin,
    /// whose connection errors repeat what the service already logs as a warning.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Amqp {
    fn default() -> Self {
        Amqp {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            urls: Vec::new(),
            prefetch: 1000,
            queue_type: QueueType::Quorum,
            declare_topology: true,
            events_exchange: "handoff.events".into(),
            decisions_exchange: "handoff.decisions".into(),
            queue: "handoff.inbound".into(),
            dead_letter_exchange: "handoff.dead-letter".into(),
            dead_letter_queue: "handoff.dead-letter".into(),
            unrouted_exchange: "handoff.unrouted".into(),
            unrouted_queue: "handoff.unrouted".into(),
            max_message_bytes: 64 * 1024,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            tls: Tls::default(),
        }
    }
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            backend: Backend::File,
            path: PathBuf::from("handoff-journal.jsonl"),
            stream: "handoff.journal".into(),
            stream_replicas: 3,
            lock_queue: "handoff.writer".into(),
            lock_poll_ms: 500,
            confirm_timeout_ms: 10_000,
            writer: None,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Console {
            enabled: false,
            listen: "127.0.0.1:9465".into(),
            credential_hash: String::new(),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: "info,lapin=off".into(),
        }
    }
}

/// A configuration that cannot be used, with the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// The environment variables read by [`Config::load`], with what they set. `--help`
/// prints this list.
pub(crate) const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("HANDOFF_AMQP_URL", "amqp.url"),
    (
        "HANDOFF_AMQP_URLS",
        "amqp.urls: more nodes of the cluster, comma-separated",
    ),
    ("HANDOFF_AMQP_TLS_CA", "amqp.tls.ca_file (empty: none)"),
    ("HANDOFF_AMQP_TLS_CERT", "amqp.tls.cert_file (empty: none)"),
    ("HANDOFF_AMQP_TLS_KEY", "amqp.tls.key_file (empty: none)"),
    ("HANDOFF_PREFETCH", "amqp.prefetch"),
    ("HANDOFF_QUEUE_TYPE", "amqp.queue_type (quorum | classic)"),
    (
        "HANDOFF_DECLARE_TOPOLOGY",
        "amqp.declare_topology (true | false)",
    ),
    ("HANDOFF_JOURNAL", "journal.path"),
    ("HANDOFF_JOURNAL_BACKEND", "journal.backend (file | stream)"),
    ("HANDOFF_JOURNAL_STREAM", "journal.stream"),
    (
        "HANDOFF_JOURNAL_WRITER",
        "journal.writer (empty: <host name>:<pid>)",
    ),
    ("HANDOFF_HTTP_LISTEN", "http.listen (empty: off)"),
    ("HANDOFF_CONSOLE_ENABLED", "console.enabled (true | false)"),
    ("HANDOFF_CONSOLE_LISTEN", "console.listen"),
    (
        "HANDOFF_CONSOLE_CREDENTIAL_HASH",
        "console.credential_hash (an Argon2 PHC string)",
    ),
    ("HANDOFF_LOG_FORMAT", "log.format (text | json)"),
    ("HANDOFF_LOG", "log.level"),
    (
        "HANDOFF_PUBLISHERS",
        "publishers, replacing the file's: user=agency,user=agency,...",
    ),
];

/// The environment overrides as lines for `--help`.
pub(crate) fn env_help() -> String {
    ENV_OVERRIDES
        .iter()
        .map(|(name, what)| format!("  {name:<22} {what}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads `path` (when given), applies the environment, and checks the result.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::from_toml(
                &std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?,
                path,
            )?,
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.check()?;
        Ok(config)
    }

    /// Parses a TOML document; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Applies the overrides of [`ENV_OVERRIDES`], reading variables through `var`.
    pub(crate) fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = var("HANDOFF_AMQP_URL") {
            self.amqp.url = v;
        }
        self.amqp.tls.apply_env(&var);
        if let Some(v) = var("HANDOFF_PREFETCH") {
            self.amqp.prefetch = v.parse().map_err(|_| ConfigError::Invalid {
                setting: "HANDOFF_PREFETCH",
                message: format!("{v:?} is not a number from 1 to 65535"),
            })?;
        }
        if let Some(v) = var("HANDOFF_QUEUE_TYPE") {
            self.amqp.queue_type = either(
                "HANDOFF_QUEUE_TYPE",
                &v,
                [
                    ("quorum", QueueType::Quorum),
                    ("classic", QueueType::Classic),
                ],
            )?;
        }
        if let Some(v) = var("HANDOFF_DECLARE_TOPOLOGY") {
            self.amqp.declare_topology = either(
                "HANDOFF_DECLARE_TOPOLOGY",
                &v,
                [("true", true), ("false", false)],
            )?;
        }
        if let Some(v) = var("HANDOFF_JOURNAL") {
            self.journal.path = PathBuf::from(v);
        }
        if let Some(v) = var("HANDOFF_JOURNAL_BACKEND") {
            self.journal.backend = either(
                "HANDOFF_JOURNAL_BACKEND",
                &v,
                [("file", Backend::File), ("stream", Backend::Stream)],
            )?;
        }
        if let Some(v) = var("HANDOFF_JOURNAL_STREAM") {
            self.journal.stream = v;
        }
        if let Some(v) = var("HANDOFF_AMQP_URLS") {
            self.amqp.urls = v
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = var("HANDOFF_JOURNAL_WRITER") {
            self.journal.writer = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = var("HANDOFF_HTTP_LISTEN") {
            self.http.listen = v;
        }
        if let Some(v) = var("HANDOFF_CONSOLE_ENABLED") {
            self.console.enabled = either(
                "HANDOFF_CONSOLE_ENABLED",
                &v,
                [("true", true), ("false", false)],
            )?;
        }
        if let Some(v) = var("HANDOFF_CONSOLE_LISTEN") {
            self.console.listen = v;
        }
        if let Some(v) = var("HANDOFF_CONSOLE_CREDENTIAL_HASH") {
            self.console.credential_hash = v;
        }
        if let Some(v) = var("HANDOFF_LOG_FORMAT") {
            self.log.format = either(
                "HANDOFF_LOG_FORMAT",
                &v,
                [("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?;
        }
        if let Some(v) = var("HANDOFF_LOG") {
            self.log.level = v;
        }
        if let Some(v) = var("HANDOFF_PUBLISHERS") {
            self.publishers = parse_publishers(&v)?;
        }
        Ok(())
    }

    /// Checks what serde cannot: agencies, numbers in range, the listen address.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.agencies()?;
        if self.amqp.prefetch == 0 {
            return Err(ConfigError::Invalid {
                setting: "amqp.prefetch",
                message: "must be at least 1".into(),
            });
        }
        if self.amqp.max_message_bytes == 0 {
            return Err(ConfigError::Invalid {
                setting: "amqp.max_message_bytes",
                message: "must be at least 1".into(),
            });
        }
        if let Some(writer) = &self.journal.writer
            && !crate::journal::control::is_writer_id(writer)
        {
            return Err(ConfigError::Invalid {
                setting: "journal.writer",
                message: format!(
                    "{writer:?} is not a writer id: 1 to {} letters, digits and . _ : @ -, \
                     starting with a letter or digit",
                    crate::journal::control::MAX_WRITER_LEN
                ),
            });
        }
        if self.journal.backend == Backend::Stream {
            for (setting, name) in [
                ("journal.stream", &self.journal.stream),
                ("journal.lock_queue", &self.journal.lock_queue),
            ] {
                if name.is_empty() || name.len() > 255 {
                    return Err(ConfigError::Invalid {
                        setting,
                        message: "must be a queue name of 1 to 255 bytes".into(),
                    });
                }
            }
            if self.journal.stream_replicas == 0 {
                return Err(ConfigError::Invalid {
                    setting: "journal.stream_replicas",
                    message: "must be at least 1".into(),
                });
            }
            if self.journal.lock_poll_ms == 0 || self.journal.confirm_timeout_ms == 0 {
                return Err(ConfigError::Invalid {
                    setting: "journal.lock_poll_ms / journal.confirm_timeout_ms",
                    message: "must be at least 1".into(),
                });
            }
        }
        self.http_listen()?;
        if self.console.enabled {
            self.console_listen()?;
        }
        check_url(&self.amqp.url)?;
        for url in &self.amqp.urls {
            check_url(url)?;
        }
        self.amqp.tls.load(&self.amqp.url)?;
        Ok(())
    }

    /// The publishers table read into agencies.
    pub fn agencies(&self) -> Result<BTreeMap<String, Agency>, ConfigError> {
        self.publishers
            .iter()
            .map(|(user, agency)| {
                agency
                    .parse()
                    .map(|a| (user.clone(), a))
                    .map_err(|message| ConfigError::Invalid {
                        setting: "publishers",
                        message: format!("user {user:?}: {message}"),
                    })
            })
            .collect()
    }

    /// The HTTP listen address, `None` when turned off.
    pub(crate) fn http_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.http.listen.is_empty() {
            return Ok(None);
        }
        self.http
            .listen
            .parse()
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                setting: "http.listen",
                message: format!("{:?}: {e}", self.http.listen),
            })
    }
}

/// The value of an environment variable that takes one of two words, or why not.
fn either<T: Copy>(
    setting: &'static str,
    v: &str,
    words: [(&str, T); 2],
) -> Result<T, ConfigError> {
    words
        .iter()
        .find(|(w, _)| *w == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| ConfigError::Invalid {
            setting,
            message: format!("{v:?} is neither {} nor {}", words[0].0, words[1].0),
        })
}

impl Config {
    /// The console's address and credential hash, checked; what a console needs. `listen`,
    /// when given, replaces the configured address (`handoff console --listen`).
    pub(crate) fn console_listen(&self) -> Result<(SocketAddr, String), ConfigError> {
        let c = &self.console;
        if c.credential_hash.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "console.credential_hash",
                message: "the console shows personal data and needs a credential: set the \
                          hash `handoff console --hash-credential` prints (or \
                          HANDOFF_CONSOLE_CREDENTIAL_HASH)"
                    .into(),
            });
        }
        crate::console::auth::check_hash(&c.credential_hash).map_err(|e| ConfigError::Invalid {
            setting: "console.credential_hash",
            message: e.to_string(),
        })?;
        let addr = c.listen.parse().map_err(|e| ConfigError::Invalid {
            setting: "console.listen",
            message: format!("{:?}: {e}", c.listen),
        })?;
        Ok((addr, c.credential_hash.clone()))
    }
}

impl Tls {
    /// Applies `HANDOFF_AMQP_TLS_CA`, `_CERT` and `_KEY`, read through `var`; an empty
    /// value removes the file's setting.
    pub(crate) fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        for (name, field) in [
            ("HANDOFF_AMQP_TLS_CA", &mut self.ca_file),
            ("HANDOFF_AMQP_TLS_CERT", &mut self.cert_file),
            ("HANDOFF_AMQP_TLS_KEY", &mut self.key_file),
        ] {
            if let Some(v) = var(name) {
                *field = (!v.is_empty()).then(|| PathBuf::from(v));
            }
        }
    }

    /// Reads and checks the files for a connection to `url`: TLS files with a URL that is
    /// not `amqps://`, a certificate without its key (or the reverse), and a file that
    /// cannot be read or holds no PEM of the right kind are errors naming the setting and
    /// the path. Neither the URL nor anything read from a file goes into an error.
    pub(crate) fn load(&self, url: &str) -> Result<TlsMaterial, ConfigError> {
        let any = self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some();
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if any && !scheme.eq_ignore_ascii_case("amqps") {
            return Err(ConfigError::Invalid {
                setting: "amqp.tls",
                message: format!(
                    "TLS files are set but the AMQP URL is {}, not amqps://: use an amqps:// \
                     URL (port 5671 by default), or remove the TLS files",
                    if scheme.is_empty() {
                        "not a URL".to_string()
                    } else {
                        format!("{scheme}://")
                    }
                ),
            });
        }
        let mut material = lapin::tcp::OwnedTLSConfig::default();
        if let Some(path) = &self.ca_file {
            let pem = read_pem("amqp.tls.ca_file", path)?;
            certificates("amqp.tls.ca_file", path, pem.as_bytes())?;
            material.cert_chain = Some(pem);
        }
        match (&self.cert_file, &self.key_file) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    setting: "amqp.tls",
                    message: "cert_file and key_file go together: set both or neither".into(),
                });
            }
            (Some(cert), Some(key)) => {
                let pem = read_pem("amqp.tls.cert_file", cert)?;
                certificates("amqp.tls.cert_file", cert, pem.as_bytes())?;
                let key_pem = read_pem("amqp.tls.key_file", key)?;
                use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
                if PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).is_err() {
                    return Err(ConfigError::Invalid {
                        setting: "amqp.tls.key_file",
                        message: format!(
                            "{}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1, not \
                             encrypted)",
                            key.display()
                        ),
                    });
                }
                material.identity = Some(lapin::tcp::OwnedIdentity::PKCS8 {
                    pem: pem.into_bytes(),
                    key: key_pem.into_bytes(),
                });
            }
        }
        Ok(TlsMaterial(material))
    }
}

/// The text of a PEM file, or an error naming `setting` and the path.
fn read_pem(setting: &'static str, path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::Invalid {
        setting,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
        setting,
        message: format!("{}: not a PEM file (not text)", path.display()),
    })
}

/// Checks that `pem` holds at least one certificate and no damaged one.
fn certificates(setting: &'static str, path: &Path, pem: &[u8]) -> Result<(), ConfigError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        if cert.is_err() {
            return Err(ConfigError::Invalid {
                setting,
                message: format!("{}: a PEM certificate in it is damaged", path.display()),
            });
        }
        count += 1;
    }
    if count == 0 {
        return Err(ConfigError::Invalid {
            setting,
            message: format!(
                "{}: holds no PEM certificate (a CERTIFICATE block)",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Checks that `url` is an AMQP URL lapin can connect with. The parser's reason is given
/// unless it quotes the URL (lapin's does for a URL without `//`), which would print the
/// password: then only the expected form is.
pub(crate) fn check_url(url: &str) -> Result<(), ConfigError> {
    let form = "the form is amqp://user:password@host:port/vhost (or amqps://)";
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(_) => Ok(()),
        Err(reason) => Err(ConfigError::Invalid {
            setting: "amqp.url",
            message: if url.is_empty() || !reason.contains(url) {
                format!("not an AMQP URL ({reason}); {form}")
            } else {
                format!("not an AMQP URL; {form}")
            },
        }),
    }
}

/// Reads `user=agency,user=agency` (the form of `HANDOFF_PUBLISHERS`).
pub(crate) fn parse_publishers(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((user, agency)) if !user.trim().is_empty() => {
                Ok((user.trim().to_string(), agency.trim().to_string()))
            }
            _ => Err(ConfigError::Invalid {
                setting: "HANDOFF_PUBLISHERS",
                message: format!("{pair:?} is not user=agency"),
            }),
        })
        .collect()
}

/// The user name in an AMQP URL (`guest` in `amqp://guest:guest@host/`), which is the
/// `user-id` a publisher on that connection must send. `guest` when the URL names none,
/// as RabbitMQ clients assume.
pub fn url_user(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            percent_decode(user)
        }
        None => "guest".into(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_against_a_local_broker() {
        let c = Config::default();
        c.check().unwrap();
        assert_eq!(c.amqp.queue_type, QueueType::Quorum);
        assert_eq!(c.http_listen().unwrap().unwrap().port(), 9464);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut c = Config::from_toml(
            "[amqp]\nurl = \"amqp://a@h/%2f\"\nprefetch = 5\n[publishers]\nbop = \"bop\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let env = |name: &str| match name {
            "HANDOFF_PREFETCH" => Some("7".to_string()),
            "HANDOFF_PUBLISHERS" => Some("ice=ice, tx=jurisdiction:tx-travis-county".into()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        c.check().unwrap();
        assert_eq!(c.amqp.url, "amqp://a@h/%2f");
        assert_eq!(c.amqp.prefetch, 7);
        let agencies = c.agencies().unwrap();
        assert_eq!(agencies.len(), 2);
        assert_eq!(
            agencies["tx"],
            Agency::Jurisdiction("tx-travis-county".into())
        );
    }

    #[test]
    fn the_writer_is_configured_or_this_host_and_process() {
        let mut c =
            Config::from_toml("[journal]\nwriter = \"handoff-a\"\n", Path::new("x.toml")).unwrap();
        c.check().unwrap();
        assert_eq!(c.journal.writer_id(), "handoff-a");
        c.apply_env(|n| (n == "HANDOFF_JOURNAL_WRITER").then(|| "node-b.example.org".into()))
            .unwrap();
        assert_eq!(c.journal.writer_id(), "node-b.example.org");
        // Empty: back to the default, this host and process.
        c.apply_env(|n| (n == "HANDOFF_JOURNAL_WRITER").then(String::new))
            .unwrap();
        let default = c.journal.writer_id();
        assert!(
            default.ends_with(&format!(":{}", std::process::id())),
            "{default}"
        );
        assert!(crate::journal::control::is_writer_id(&default), "{default}");
        c.journal.writer = Some("two words".into());
        let e = c.check().unwrap_err().to_string();
        assert!(e.starts_with("journal.writer: \"two words\""), "{e}");
    }

    #[test]
    fn mistakes_name_the_setting() {
        let e = Config::from_toml("[amqp]\nprefech = 5\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("prefech"), "{e}");
        let mut c = Config::default();
        c.publishers.insert("x".into(), "sheriff".into());
        let e = c.check().unwrap_err();
        assert!(e.to_string().contains("publishers: user \"x\""), "{e}");
        let e = Config::default()
            .apply_env(|n| (n == "HANDOFF_QUEUE_TYPE").then(|| "stream".into()))
            .unwrap_err();
        assert!(e.to_string().starts_with("HANDOFF_QUEUE_TYPE"), "{e}");
    }

    /// A scratch directory with a self-signed certificate and its key in PEM.
    fn pem_files(name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("handoff-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        (dir.clone(), dir.join("cert.pem"), dir.join("key.pem"))
    }

    #[test]
    fn tls_files_load_from_the_file_and_the_environment() {
        let (dir, cert, key) = pem_files("tls-ok");
        let mut c = Config::from_toml(
            &format!(
                "[amqp]\nurl = \"amqps://a:b@h/%2f\"\n[amqp.tls]\nca_file = {:?}\n",
                cert.display().to_string()
            ),
            Path::new("x.toml"),
        )
        .unwrap();
        c.check().unwrap();
        let env = |name: &str| match name {
            "HANDOFF_AMQP_TLS_CERT" => Some(cert.display().to_string()),
            "HANDOFF_AMQP_TLS_KEY" => Some(key.display().to_string()),
            "HANDOFF_AMQP_TLS_CA" => Some(String::new()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.amqp.tls.ca_file, None);
        let material = c.amqp.tls.load(&c.amqp.url).unwrap();
        assert!(material.0.identity.is_some() && material.0.cert_chain.is_none());
        // Debug shows what is there, never the key.
        let shown = format!("{material:?}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("[45,"),
            "{shown}"
        );
        assert_eq!(shown, "TlsMaterial { ca: false, client_certificate: true }");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_mistakes_name_the_setting_and_the_file_never_its_contents() {
        let (dir, cert, key) = pem_files("tls-bad");
        let secret = std::fs::read_to_string(&key).unwrap();
        let tls = |ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>| Tls {
            ca_file: ca.map(Path::to_owned),
            cert_file: cert.map(Path::to_owned),
            key_file: key.map(Path::to_owned),
        };
        let url = "amqps://u:hunter2@h/%2f";
        let err = |t: Tls, url: &str| {
            let e = t.load(url).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains("BEGIN"), "{e}");
            assert!(!secret.lines().skip(1).any(|l| e.contains(l)), "{e}");
            e
        };
        let e = err(tls(Some(&cert), None, None), "amqp://u:hunter2@h/%2f");
        assert!(
            e.starts_with("amqp.tls: ") && e.contains("amqp://, not amqps://"),
            "{e}"
        );
        let missing = dir.join("missing.pem");
        let e = err(tls(None, Some(&cert), Some(&missing)), url);
        assert!(
            e.starts_with("amqp.tls.key_file: cannot read ") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(tls(None, Some(&cert), None), url);
        assert!(e.contains("cert_file and key_file go together"), "{e}");
        // A key where a certificate belongs, and a certificate where the key belongs.
        let e = err(tls(Some(&key), None, None), url);
        assert!(
            e.starts_with("amqp.tls.ca_file: ") && e.contains("key.pem"),
            "{e}"
        );
        let e = err(tls(None, Some(&cert), Some(&cert)), url);
        assert!(
            e.starts_with("amqp.tls.key_file: ") && e.contains("cert.pem"),
            "{e}"
        );
        let damaged = dir.join("damaged.pem");
        std::fs::write(
            &damaged,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = err(tls(Some(&damaged), None, None), url);
        assert!(
            e.contains("damaged.pem: a PEM certificate in it is damaged"),
            "{e}"
        );
        // Through Config::check as well: a configuration with a bad file is refused.
        let mut c = Config::default();
        c.amqp.url = url.into();
        c.amqp.tls = tls(Some(&missing), None, None);
        assert!(c.check().unwrap_err().to_string().contains("missing.pem"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_url_is_refused_without_printing_it() {
        for url in [
            "amqp:u:hunter2@h/%2f",
            "amqp://u:hunter2@h:notaport/%2f",
            "amqpx://u:hunter2@h/%2f",
        ] {
            let mut c = Config::default();
            c.amqp.url = url.into();
            let e = c.check().unwrap_err().to_string();
            assert!(e.starts_with("amqp.url: not an AMQP URL"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        check_url("amqps://u:p@h:5671/%2f?heartbeat=10").unwrap();
    }

    #[test]
    fn the_user_of_a_url() {
        assert_eq!(url_user("amqp://bop:secret@127.0.0.1:5672/%2f"), "bop");
        assert_eq!(url_user("amqps://a%40b:x@host/"), "a@b");
        assert_eq!(url_user("amqp://127.0.0.1:5672"), "guest");
    }
}
