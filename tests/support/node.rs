//! Test support: a RabbitMQ node of the test's own, for tests that must restart the broker
//! or give it a configuration of their own (a TLS listener), which the shared broker of
//! `broker.rs` must never suffer while other tests use it.
//!
//! Include it with `#[path = "support/node.rs"] mod node;`.
//!
//! The node is the machine's own RabbitMQ installation started a second time under another
//! node name, with its own ports, data directory, configuration and Erlang cookie, as a child
//! of the test. It finds the installation at `HANDOFF_TEST_RABBITMQ_BIN` (a directory
//! holding `rabbitmq-server` and `rabbitmqctl`), else `/usr/lib/rabbitmq/bin`, else the
//! `PATH`. Without an installation, the test fails and says so: a broker that the test
//! restarts cannot be borrowed from anyone.
//!
//! `guest` may connect from anywhere (`loopback_users = none`), and is the node's admin.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A private RabbitMQ node. Dropping it stops the node and removes its files.
pub struct Node {
    /// `name@localhost`.
    pub name: String,
    /// The plain AMQP port.
    pub port: u16,
    /// The AMQPS port, when the configuration has a TLS listener.
    pub tls_port: Option<u16>,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    starts: u32,
}

/// A free TCP port on 127.0.0.1 (free when asked; the node binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn installation() -> PathBuf {
    if let Ok(dir) = std::env::var("HANDOFF_TEST_RABBITMQ_BIN")
        && !dir.is_empty()
    {
        return PathBuf::from(dir);
    }
    let packaged = PathBuf::from("/usr/lib/rabbitmq/bin");
    if packaged.join("rabbitmq-server").exists() {
        return packaged;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("rabbitmq-server").exists() && dir.join("rabbitmqctl").exists() {
            return dir;
        }
    }
    panic!(
        "this test starts and restarts a RabbitMQ node of its own and found no RabbitMQ \
         installation: install RabbitMQ, or set HANDOFF_TEST_RABBITMQ_BIN to the directory \
         holding rabbitmq-server and rabbitmqctl"
    );
}

impl Node {
    /// Starts a node whose `rabbitmq.conf` is the plain listener plus `extra_conf` (which may
    /// use `{dir}` for the node's directory, and must set `listeners.ssl.default` to
    /// `127.0.0.1:{tls_port}` if it wants TLS). Waits until AMQP answers.
    pub fn start(test: &str, extra_conf: &str) -> Node {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let clean: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
        let name = format!("handoff-{clean}-{}-{n}@localhost", std::process::id());
        let dir =
            std::env::temp_dir().join(format!("handoff-node-{clean}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let tls_port = extra_conf.contains("{tls_port}").then(free_port);
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        conf.push_str(
            &extra_conf
                .replace("{dir}", &dir.display().to_string())
                .replace("{tls_port}", &tls_port.unwrap_or(0).to_string()),
        );
        std::fs::write(dir.join("rabbitmq.conf"), conf).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("env.conf"), "").unwrap();
        let mut node = Node {
            name,
            port,
            tls_port,
            dir,
            bin: installation(),
            child: None,
            starts: 0,
        };
        node.boot();
        node
    }

    /// The node's directory (for files the configuration names).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn env(&self, cmd: &mut Command) {
        let d = &self.dir;
        cmd.env("HOME", d)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"));
    }

    fn boot(&mut self) {
        assert!(self.child.is_none());
        self.starts += 1;
        let out =
            std::fs::File::create(self.dir.join(format!("node-{}.log", self.starts))).unwrap();
        let mut cmd = Command::new(self.bin.join("rabbitmq-server"));
        self.env(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting rabbitmq-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "RabbitMQ node {} exited with {status}:\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "RabbitMQ node {} did not listen within 90 s:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.ctl(&["await_startup"]);
    }

    /// The node's console output, every start.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("node-{n}.log"))).unwrap_or_default()
            })
            .collect()
    }

    /// Runs `rabbitmqctl -n NODE args…` and returns its standard output; panics on failure.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(self.bin.join("rabbitmqctl"));
        self.env(&mut cmd);
        let out = cmd
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds a user with full permissions on `/` and the given tags; returns its AMQP URL.
    pub fn add_user(&self, user: &str, tags: &[&str]) -> String {
        self.ctl(&["add_user", user, user]);
        self.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
        let mut args = vec!["set_user_tags", user];
        args.extend_from_slice(tags);
        self.ctl(&args);
        format!("amqp://{user}:{user}@127.0.0.1:{}/%2f", self.port)
    }

    /// Closes every client connection, as an operator (or a network fault) would.
    pub fn close_all_connections(&self) {
        self.ctl(&["close_all_connections", "closed by the test"]);
    }

    /// Stops the node (`rabbitmqctl stop`, a clean shutdown that keeps its data).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut cmd = Command::new(self.bin.join("rabbitmqctl"));
            self.env(&mut cmd);
            let _ = cmd
                .arg("-n")
                .arg(&self.name)
                .arg("stop")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Stops the node and starts it again on the same ports and data: a broker restart.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
