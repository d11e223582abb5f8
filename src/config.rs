//! The service's configuration: a TOML file, then environment overrides, then checks.
//!
//! Every setting has a default, so `handoff serve` runs with no file at all against a
//! local RabbitMQ. The environment wins over the file so that containers and systemd units
//! can set the URL, the journal path and secrets without editing the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::authz::Agency;

/// The whole configuration of `handoff serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub amqp: Amqp,
    pub journal: Journal,
    pub http: Http,
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
    /// The journal file; the outbox mark sits beside it with `.published` appended.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Where `/healthz`, `/readyz` and `/metrics` listen; empty to turn them off.
    pub listen: String,
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
        }
    }
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            path: PathBuf::from("handoff-journal.jsonl"),
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
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("HANDOFF_AMQP_URL", "amqp.url"),
    ("HANDOFF_PREFETCH", "amqp.prefetch"),
    ("HANDOFF_QUEUE_TYPE", "amqp.queue_type (quorum | classic)"),
    (
        "HANDOFF_DECLARE_TOPOLOGY",
        "amqp.declare_topology (true | false)",
    ),
    ("HANDOFF_JOURNAL", "journal.path"),
    ("HANDOFF_HTTP_LISTEN", "http.listen (empty: off)"),
    ("HANDOFF_LOG_FORMAT", "log.format (text | json)"),
    ("HANDOFF_LOG", "log.level"),
    (
        "HANDOFF_PUBLISHERS",
        "publishers, replacing the file's: user=agency,user=agency,...",
    ),
];

/// The environment overrides as lines for `--help`.
pub fn env_help() -> String {
    ENV_OVERRIDES
        .iter()
        .map(|(name, what)| format!("  {name:<22} {what}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads `path` (when given), applies the environment, and checks the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
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
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("HANDOFF_AMQP_URL") {
            self.amqp.url = v;
        }
        if let Some(v) = var("HANDOFF_PREFETCH") {
            self.amqp.prefetch = v.parse().map_err(|_| ConfigError::Invalid {
                setting: "HANDOFF_PREFETCH",
                message: format!("{v:?} is not a number from 1 to 65535"),
            })?;
        }
        if let Some(v) = var("HANDOFF_QUEUE_TYPE") {
            self.amqp.queue_type = match v.as_str() {
                "quorum" => QueueType::Quorum,
                "classic" => QueueType::Classic,
                _ => {
                    return Err(ConfigError::Invalid {
                        setting: "HANDOFF_QUEUE_TYPE",
                        message: format!("{v:?} is neither quorum nor classic"),
                    });
                }
            };
        }
        if let Some(v) = var("HANDOFF_DECLARE_TOPOLOGY") {
            self.amqp.declare_topology = match v.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ConfigError::Invalid {
                        setting: "HANDOFF_DECLARE_TOPOLOGY",
                        message: format!("{v:?} is neither true nor false"),
                    });
                }
            };
        }
        if let Some(v) = var("HANDOFF_JOURNAL") {
            self.journal.path = PathBuf::from(v);
        }
        if let Some(v) = var("HANDOFF_HTTP_LISTEN") {
            self.http.listen = v;
        }
        if let Some(v) = var("HANDOFF_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        setting: "HANDOFF_LOG_FORMAT",
                        message: format!("{v:?} is neither text nor json"),
                    });
                }
            };
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
        self.http_listen()?;
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
    pub fn http_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
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

/// Reads `user=agency,user=agency` (the form of `HANDOFF_PUBLISHERS`).
pub fn parse_publishers(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
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

    #[test]
    fn the_user_of_a_url() {
        assert_eq!(url_user("amqp://bop:secret@127.0.0.1:5672/%2f"), "bop");
        assert_eq!(url_user("amqps://a%40b:x@host/"), "a@b");
        assert_eq!(url_user("amqp://127.0.0.1:5672"), "guest");
    }
}
