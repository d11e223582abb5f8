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
//! `PATH`.
//!
//! Without an installation (or with `HANDOFF_TEST_RABBITMQ_DOCKER=1`, which forces it), the
//! node is a Docker container of the same RabbitMQ image as `broker.rs`'s shared broker,
//! started through testcontainers; without Docker either, the test fails and says so, since
//! a broker that the test restarts cannot be borrowed from anyone. The container:
//!
//! - publishes fixed host ports (picked with [`free_port`] on this machine) for AMQP and, when
//!   the configuration uses `{tls_port}`, AMQPS, so that a restart (a container stop and
//!   start, which keeps the node's data) keeps its ports;
//! - gets the same `rabbitmq.conf` as the local node, except that every `listeners.tcp.*`
//!   line binds 5672 and every `listeners.ssl.*` line binds 5671 on all of the container's
//!   interfaces, as Docker's port forwarding needs;
//! - gets a copy of the node's directory, and of every existing file that a configuration
//!   value names by absolute path, at the same absolute path, so that `{dir}` and absolute
//!   file names work unchanged. The copy is made once, when [`Node::start`] creates the
//!   container: files the configuration names must exist before `Node::start` is called,
//!   and files written later into [`Node::dir`] are not seen by the node;
//! - runs `rabbitmqctl` inside itself for [`Node::ctl`], and is removed when the `Node` is
//!   dropped. It assumes that the Docker engine publishes ports on this machine, since the
//!   ports are picked free here.
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
    /// `name@localhost` (`rabbit@HOSTNAME` in a container).
    pub name: String,
    /// The plain AMQP port.
    pub port: u16,
    /// The AMQPS port, when the configuration has a TLS listener.
    pub tls_port: Option<u16>,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// The container, when the node runs in Docker rather than from a local installation.
    container: Option<docker::Container>,
    /// Whether the container's node is running (it is stopped between `stop` and `restart`).
    running: bool,
}

/// A free TCP port on 127.0.0.1 (free when asked; the node binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `HANDOFF_TEST_RABBITMQ_DOCKER` asks for the container even with an installation.
fn docker_forced() -> bool {
    std::env::var("HANDOFF_TEST_RABBITMQ_DOCKER")
        .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The local installation's directory, if there is one (`cluster.rs` uses it too).
pub fn installation() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("HANDOFF_TEST_RABBITMQ_BIN")
        && !dir.is_empty()
    {
        return Some(PathBuf::from(dir));
    }
    let packaged = PathBuf::from("/usr/lib/rabbitmq/bin");
    if packaged.join("rabbitmq-server").exists() {
        return Some(packaged);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| dir.join("rabbitmq-server").exists() && dir.join("rabbitmqctl").exists())
}

/// The container's `rabbitmq.conf`: the local one with its listeners moved to the container's
/// own ports on all of its interfaces.
fn container_conf(conf: &str) -> String {
    let mut out = String::with_capacity(conf.len());
    for line in conf.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if line.contains('=') && key.starts_with("listeners.tcp.") {
            out.push_str(&format!("{key} = 5672\n"));
        } else if line.contains('=') && key.starts_with("listeners.ssl.") {
            out.push_str(&format!("{key} = 5671\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The existing files outside `dir` that the configuration's values name by absolute path.
fn named_files(conf: &str, dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = conf
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(_, value)| PathBuf::from(value.trim()))
        .filter(|path| path.is_absolute() && path.is_file() && !path.starts_with(dir))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Whether an AMQP server answers the protocol header at `host:port` (a bare TCP connect is
/// not enough: Docker's port forwarding accepts connections before the node listens).
fn amqp_answers(host: &str, port: u16) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let Some(addr) = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    else {
        return false;
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
        return false;
    }
    let mut frame_type = [0u8; 1];
    // A method frame (type 1) carries `connection.start`.
    matches!(stream.read(&mut frame_type), Ok(1)) && frame_type[0] == 1
}

impl Node {
    /// Starts a node whose `rabbitmq.conf` is the plain listener plus `extra_conf` (which may
    /// use `{dir}` for the node's directory, and must set `listeners.ssl.default` to
    /// `127.0.0.1:{tls_port}` if it wants TLS). Waits until AMQP answers.
    ///
    /// In a container, the files `extra_conf` names must already exist (see the module's
    /// documentation).
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
        let bin = if docker_forced() {
            None
        } else {
            installation()
        };
        let Some(bin) = bin else {
            return Node::start_container(&clean, n, dir, port, tls_port, &conf);
        };
        std::fs::write(dir.join("rabbitmq.conf"), conf).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("env.conf"), "").unwrap();
        let mut node = Node {
            name,
            port,
            tls_port,
            dir,
            bin,
            child: None,
            starts: 0,
            container: None,
            running: false,
        };
        node.boot();
        node
    }

    /// The fallback of `start`: the node in a container, with `conf` as the local node would
    /// have had it.
    fn start_container(
        clean: &str,
        n: u64,
        dir: PathBuf,
        port: u16,
        tls_port: Option<u16>,
        conf: &str,
    ) -> Node {
        let hostname = format!("handoff-{clean}-{}-{n}", std::process::id());
        let conf = container_conf(conf);
        std::fs::write(dir.join("rabbitmq.conf"), &conf).unwrap();
        let mut copies = named_files(&conf, &dir);
        copies.push(dir.clone());
        let container = docker::Container::create(docker::Spec {
            hostname: hostname.clone(),
            port,
            tls_port,
            conf,
            copies,
        })
        .unwrap_or_else(|e| {
            panic!(
                "this test starts and restarts a RabbitMQ node of its own: {}, and cannot \
                 start a RabbitMQ container ({e}). Install RabbitMQ (or set \
                 HANDOFF_TEST_RABBITMQ_BIN to the directory holding rabbitmq-server and \
                 rabbitmqctl), or run a Docker engine",
                if docker_forced() {
                    "HANDOFF_TEST_RABBITMQ_DOCKER asks for Docker"
                } else {
                    "it found no RabbitMQ installation"
                }
            )
        });
        let node = Node {
            name: format!("rabbit@{hostname}"),
            port,
            tls_port,
            dir,
            bin: PathBuf::new(),
            child: None,
            starts: 1,
            container: Some(container),
            running: true,
        };
        node.await_container();
        node
    }

    /// Waits until the container's node answers AMQP and `rabbitmqctl await_startup`
    /// succeeds; panics with its logs if it does not within 120 s.
    fn await_container(&self) {
        let container = self.container.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !amqp_answers(&container.host, self.port) {
            if let Ok(false) = container.is_running() {
                panic!("RabbitMQ container {} exited:\n{}", self.name, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "RabbitMQ container {} did not answer AMQP within 120 s:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        self.ctl(&["await_startup"]);
    }

    /// The node's directory (for files the configuration names).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host of the node's ports: 127.0.0.1, or the Docker engine's host.
    fn host(&self) -> &str {
        match &self.container {
            Some(container) => &container.host,
            None => "127.0.0.1",
        }
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}:{}/%2f", self.host(), self.port)
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

    /// The node's console output, every start (a container's standard output and error).
    pub fn logs(&self) -> String {
        if let Some(container) = &self.container {
            return container.logs();
        }
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("node-{n}.log"))).unwrap_or_default()
            })
            .collect()
    }

    /// Runs `rabbitmqctl -n NODE args…` (in a container, `rabbitmqctl args…` inside it) and
    /// returns its standard output; panics on failure.
    pub fn ctl(&self, args: &[&str]) -> String {
        if let Some(container) = &self.container {
            return match container.ctl(args) {
                Ok(out) if out.code == Some(0) => out.stdout,
                Ok(out) => panic!(
                    "rabbitmqctl {args:?} failed (exit code {:?}): {}{}",
                    out.code, out.stdout, out.stderr
                ),
                Err(e) => panic!("rabbitmqctl {args:?} could not run in the container: {e}"),
            };
        }
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
        format!("amqp://{user}:{user}@{}:{}/%2f", self.host(), self.port)
    }

    /// Closes every client connection, as an operator (or a network fault) would.
    pub fn close_all_connections(&self) {
        self.ctl(&["close_all_connections", "closed by the test"]);
    }

    /// Stops the node (`rabbitmqctl stop`, a clean shutdown that keeps its data; in a
    /// container, `docker stop`, which shuts RabbitMQ down as cleanly).
    pub fn stop(&mut self) {
        if let Some(container) = &self.container {
            if self.running {
                container
                    .stop()
                    .unwrap_or_else(|e| panic!("cannot stop the container {}: {e}", self.name));
                self.running = false;
            }
            return;
        }
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
        if let Some(container) = &self.container {
            container
                .start()
                .unwrap_or_else(|e| panic!("cannot start the container {} again: {e}", self.name));
            self.running = true;
            self.starts += 1;
            self.await_container();
            return;
        }
        self.boot();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A container is removed, running or not, when its handle drops.
        if self.container.is_none() {
            self.stop();
        }
        self.container = None;
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The node's container, for machines without a RabbitMQ installation.
///
/// The container lives on its own thread with its own tokio runtime (as `broker.rs`'s does),
/// so that every call works from a plain test and from inside a tokio test alike: the
/// caller's thread only sends requests and waits for the answers. Dropping the handle
/// removes the container and waits until it is gone.
mod docker {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use testcontainers_modules::rabbitmq::RabbitMq;
    use testcontainers_modules::testcontainers::core::{ExecCommand, IntoContainerPort, WaitFor};
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::{
        ContainerAsync, CopyTargetOptions, GenericImage, Image, ImageExt,
    };

    /// What the container is made of.
    pub(super) struct Spec {
        /// The container's hostname, hence its node name `rabbit@HOSTNAME`.
        pub hostname: String,
        /// The host port published as the container's 5672.
        pub port: u16,
        /// The host port published as the container's 5671, if any.
        pub tls_port: Option<u16>,
        /// The text of `/etc/rabbitmq/rabbitmq.conf`.
        pub conf: String,
        /// Files and directories copied into the container at the same absolute paths.
        pub copies: Vec<PathBuf>,
    }

    /// The outcome of a command run in the container.
    pub(super) struct Output {
        pub code: Option<i64>,
        pub stdout: String,
        pub stderr: String,
    }

    enum Request {
        Ctl(Vec<String>),
        Stop,
        Start,
        IsRunning,
        Logs,
    }

    type Reply = Result<Output, String>;

    /// A handle on the container's thread.
    pub(super) struct Container {
        /// Where the published ports are (127.0.0.1 for a local engine).
        pub host: String,
        requests: Option<mpsc::Sender<(Request, mpsc::Sender<Reply>)>>,
        thread: Option<JoinHandle<()>>,
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    async fn launch(spec: Spec) -> Result<(ContainerAsync<GenericImage>, String), String> {
        let rabbitmq = RabbitMq::default();
        let mut request = GenericImage::new(rabbitmq.name(), rabbitmq.tag())
            .with_wait_for(WaitFor::message_on_stdout("Server startup complete"))
            .with_hostname(spec.hostname)
            .with_mapped_port(spec.port, 5672.tcp())
            .with_copy_to(
                CopyTargetOptions::new("/etc/rabbitmq/rabbitmq.conf").with_mode(0o644),
                spec.conf.into_bytes(),
            )
            .with_startup_timeout(Duration::from_secs(120));
        if let Some(tls_port) = spec.tls_port {
            request = request.with_mapped_port(tls_port, 5671.tcp());
        }
        for path in spec.copies {
            request = request.with_copy_to(path.display().to_string(), path);
        }
        let container = request.start().await.map_err(|e| e.to_string())?;
        let host = match container.get_host().await.map_err(|e| e.to_string())? {
            host if host.to_string() == "localhost" => "127.0.0.1".to_string(),
            host => host.to_string(),
        };
        Ok((container, host))
    }

    async fn ctl(container: &ContainerAsync<GenericImage>, args: Vec<String>) -> Reply {
        let mut cmd = vec!["rabbitmqctl".to_string()];
        cmd.extend(args);
        let mut exec = container
            .exec(ExecCommand::new(cmd))
            .await
            .map_err(|e| e.to_string())?;
        let stdout = exec.stdout_to_vec().await.map_err(|e| e.to_string())?;
        let stderr = exec.stderr_to_vec().await.map_err(|e| e.to_string())?;
        // The output ends when the command exits; its exit code may be recorded a moment
        // later.
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            let code = exec.exit_code().await.map_err(|e| e.to_string())?;
            if code.is_some() || Instant::now() > deadline {
                break code;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(Output {
            code,
            stdout: text(&stdout),
            stderr: text(&stderr),
        })
    }

    async fn serve(container: &ContainerAsync<GenericImage>, request: Request) -> Reply {
        let done = |result: Result<(), String>| {
            result.map(|()| Output {
                code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
            })
        };
        match request {
            Request::Ctl(args) => ctl(container, args).await,
            // RabbitMQ shuts down cleanly on SIGTERM; give it a minute before SIGKILL.
            Request::Stop => done(
                container
                    .stop_with_timeout(Some(60))
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Request::Start => done(container.start().await.map_err(|e| e.to_string())),
            Request::IsRunning => {
                let running = container.is_running().await.map_err(|e| e.to_string())?;
                Ok(Output {
                    code: Some(if running { 0 } else { 1 }),
                    stdout: String::new(),
                    stderr: String::new(),
                })
            }
            Request::Logs => {
                let stdout = container.stdout_to_vec().await.unwrap_or_default();
                let stderr = container.stderr_to_vec().await.unwrap_or_default();
                Ok(Output {
                    code: Some(0),
                    stdout: text(&stdout),
                    stderr: text(&stderr),
                })
            }
        }
    }

    impl Container {
        /// Creates and starts the container, and returns once RabbitMQ has logged its
        /// startup (the caller still waits for AMQP and `await_startup`).
        pub fn create(spec: Spec) -> Result<Container, String> {
            let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
            let (requests, inbox) = mpsc::channel::<(Request, mpsc::Sender<Reply>)>();
            let thread = std::thread::Builder::new()
                .name("rabbitmq-node-container".into())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let container = match rt.block_on(launch(spec)) {
                        Ok((container, host)) => {
                            let _ = ready_tx.send(Ok(host));
                            container
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    // Serve requests until the handle is dropped, then remove the container.
                    for (request, reply) in inbox {
                        let _ = reply.send(rt.block_on(serve(&container, request)));
                    }
                    let _ = rt.block_on(container.rm());
                })
                .map_err(|e| e.to_string())?;
            let host = ready_rx
                .recv()
                .map_err(|_| "the container's thread died".to_string())??;
            Ok(Container {
                host,
                requests: Some(requests),
                thread: Some(thread),
            })
        }

        fn call(&self, request: Request) -> Reply {
            let (reply_tx, reply_rx) = mpsc::channel();
            self.requests
                .as_ref()
                .ok_or("the container is gone")?
                .send((request, reply_tx))
                .map_err(|_| "the container's thread died".to_string())?;
            reply_rx
                .recv()
                .map_err(|_| "the container's thread died".to_string())?
        }

        /// Runs `rabbitmqctl args…` in the container.
        pub fn ctl(&self, args: &[&str]) -> Reply {
            self.call(Request::Ctl(args.iter().map(|a| a.to_string()).collect()))
        }

        /// Stops the container (its data stays).
        pub fn stop(&self) -> Result<(), String> {
            self.call(Request::Stop).map(drop)
        }

        /// Starts the stopped container again, with the same port mappings.
        pub fn start(&self) -> Result<(), String> {
            self.call(Request::Start).map(drop)
        }

        /// Whether the container is running.
        pub fn is_running(&self) -> Result<bool, String> {
            self.call(Request::IsRunning).map(|out| out.code == Some(0))
        }

        /// The container's standard output and error, every start.
        pub fn logs(&self) -> String {
            match self.call(Request::Logs) {
                Ok(out) => format!("{}{}", out.stdout, out.stderr),
                Err(e) => format!("(no container logs: {e})\n"),
            }
        }
    }

    impl Drop for Container {
        fn drop(&mut self) {
            // Closing the channel ends the thread's loop, which removes the container.
            self.requests = None;
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}
