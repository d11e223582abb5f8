//! Test support: a RabbitMQ cluster of the test's own (three nodes in practice), for tests of
//! what survives the loss of a machine: a node's Erlang VM killed with SIGKILL, then started
//! again.
//!
//! Include it with `#[path = "support/cluster.rs"] mod cluster;`.
//!
//! The nodes are the machine's own RabbitMQ installation (found as `support/node.rs` finds
//! it: `HANDOFF_TEST_RABBITMQ_BIN`, else `/usr/lib/rabbitmq/bin`, else the `PATH`) started
//! `n` times under node names of their own (`handoff-<test>-<pid>-<k>-<i>@localhost`), each
//! with its own AMQP port, distribution port (on 127.0.0.1), data and log directories under
//! one scratch directory, and one Erlang cookie for all (in the scratch directory's `home/`,
//! the nodes' and `rabbitmqctl`'s `HOME`). They boot at once and cluster as they boot
//! (classic config peer discovery, each node's configuration listing all of them; a lock
//! among them lets only one start the cluster); any node that did not end up in node 0's
//! cluster is then joined to it with `stop_app`, `reset`, `join_cluster`, `start_app`.
//! There is no Docker fallback: without an installation [`Cluster::start`] panics and says
//! so. The machine's own broker (`rabbit@localhost`) is never touched.
//!
//! Each node runs with `loopback_users = none` (`guest`/`guest` is every node's admin), no
//! plugins, and `+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none`, so that three nodes boot
//! quickly on two cores and do not spin when idle. `rabbitmq-server` is started with
//! `RUNNING_UNDER_SYSTEMD=true`, which makes the script `exec` the VM instead of running it
//! as a child: the test's child process *is* `beam.smp`, and [`Cluster::kill`] kills the VM
//! itself, not a wrapper script (its pid is checked against the node's pid file, and
//! `os:getpid()` is asked when they disagree).
//!
//! Every call blocks (plain `std`, no tokio runtime of its own), so it may be called from a
//! plain `#[test]` and from inside a tokio test alike (use a multi-threaded runtime there,
//! as a call may block its thread for seconds). A test process runs one cluster at a time:
//! [`Cluster::start`] waits while another test's cluster exists. Dropping the cluster kills every node with
//! SIGKILL, waits until their processes (the VM and its `erl_child_setup`/`inet_gethost`
//! helpers) and their epmd registrations are gone, and removes the scratch directory (kept,
//! and named on standard error, when the test is panicking, until a later test process
//! starts a cluster). A test process killed before it could drop its cluster leaves the
//! nodes running: the next [`Cluster::start`] on the machine kills them (each node's
//! environment names the test process that started it) and removes their directory.

#![allow(dead_code)]

#[path = "node.rs"]
mod node;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use node::free_port;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Erlang VM flags for several nodes on few cores: one scheduler each, no busy waiting.
const ERL_ARGS: &str = "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none \
                        -kernel inet_dist_use_interface {127,0,0,1}";

/// How long a node may take to boot (three at once on two shared cores).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// A RabbitMQ cluster of the test's own. Dropping it kills every node and removes its files.
pub struct Cluster {
    env: Env,
    nodes: Vec<Member>,
    /// One cluster at a time in a test process (released after `drop` has killed the nodes).
    _turn: Turn,
}

/// Whether a cluster of this test process exists: tests run on parallel threads, and two
/// clusters at once (six VMs on a two-core machine) would make both slow and their timings
/// meaningless.
static BUSY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

/// A cluster's turn: taken by [`Cluster::start`], given back when dropped. (Not a
/// `MutexGuard`, so that a `Cluster` stays `Send`.)
struct Turn;

impl Turn {
    fn take() -> Turn {
        // A test that panicked holding the lock poisons it; the flag is still right.
        let mut busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        while *busy {
            busy = FREED.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(|p| p.into_inner()) = false;
        FREED.notify_one();
    }
}

/// Where things are: what every `rabbitmq-server` and `rabbitmqctl` of the cluster needs.
struct Env {
    /// The scratch directory: `home/` (the cookie) and one `node-<i>/` per node.
    root: PathBuf,
    /// The installation's `bin` directory.
    bin: PathBuf,
}

/// One node of the cluster.
struct Member {
    /// `handoff-…-<i>@localhost`.
    name: String,
    /// The plain AMQP port (127.0.0.1).
    port: u16,
    /// The Erlang distribution port (127.0.0.1), the same at every start.
    dist_port: u16,
    /// Its data, logs and configuration.
    dir: PathBuf,
    /// `rabbitmq-server`, which has `exec`ed the VM: the VM itself.
    child: Option<Child>,
    /// The VM's OS pid, once the node has booted.
    vm_pid: Option<u32>,
    /// How many times it was started (one console log file per start).
    starts: u32,
    /// The VM's child processes when it was killed (`erl_child_setup`, `inet_gethost`).
    helpers: Vec<(u32, String)>,
}

impl Cluster {
    /// Starts `n` nodes named after `test`, clusters them and returns when all of them run
    /// and node 0's `cluster_status` lists every one as running.
    ///
    /// Waits first until no other cluster of this test process exists (one at a time: a test
    /// that holds a cluster and starts another one waits for ever).
    pub fn start(test: &str, n: usize) -> Cluster {
        assert!(n >= 1, "a cluster of {n} nodes");
        let turn = Turn::take();
        reap_orphans();
        let bin = node::installation()
            .filter(|b| b.join("rabbitmq-server").exists() && b.join("rabbitmqctl").exists())
            .unwrap_or_else(|| {
                panic!(
                    "support/cluster.rs starts RabbitMQ nodes from the local installation, and \
                     found none: install RabbitMQ (the Debian package puts it in \
                     /usr/lib/rabbitmq/bin) or set HANDOFF_TEST_RABBITMQ_BIN to the directory \
                     holding rabbitmq-server and rabbitmqctl (there is no Docker fallback)"
                )
            });
        let k = COUNTER.fetch_add(1, Ordering::Relaxed);
        let clean: String = test
            .chars()
            .map(|c| if c == '_' { '-' } else { c })
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(24)
            .collect();
        let pid = std::process::id();
        let root = std::env::temp_dir().join(format!("handoff-cluster-{clean}-{pid}-{k}"));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        write_cookie(&home.join(".erlang.cookie"), &cookie());
        // An empty environment file, so that Debian's /etc/rabbitmq/rabbitmq-env.conf (which
        // forces NODENAME=rabbit@localhost) applies to no node and no rabbitmqctl of ours.
        std::fs::write(root.join("env.conf"), "").unwrap();

        let mut cluster = Cluster {
            env: Env { root, bin },
            nodes: Vec::with_capacity(n),
            _turn: turn,
        };
        let names: Vec<String> = (0..n)
            .map(|i| format!("handoff-{clean}-{pid}-{k}-{i}@localhost"))
            .collect();
        // Classic config peer discovery: every node knows every other at its first boot. Few,
        // short retries: the node that takes the lock first tries to join the others (none is
        // ready yet) before it starts the cluster, 10 x 500 ms by default.
        let peers: String = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                format!(
                    "cluster_formation.classic_config.nodes.{} = {name}\n",
                    j + 1
                )
            })
            .collect();
        for (i, name) in names.into_iter().enumerate() {
            let dir = cluster.env.root.join(format!("node-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let port = free_port();
            let mut dist_port = free_port();
            while dist_port == port {
                dist_port = free_port();
            }
            std::fs::write(
                dir.join("rabbitmq.conf"),
                format!(
                    "listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n\
                     cluster_formation.peer_discovery_backend = classic_config\n{peers}\
                     cluster_formation.discovery_retry_limit = 2\n\
                     cluster_formation.discovery_retry_interval = 200\n"
                ),
            )
            .unwrap();
            std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
            cluster.nodes.push(Member {
                name,
                port,
                dist_port,
                dir,
                child: None,
                vm_pid: None,
                starts: 0,
                helpers: Vec::new(),
            });
        }
        // Boot them all at once (a panic from here on drops `cluster`, which kills them).
        for i in 0..n {
            cluster.nodes[i].spawn(&cluster.env);
        }
        cluster.await_booted(&(0..n).collect::<Vec<_>>());
        // Whoever peer discovery left out of node 0's cluster joins it by hand.
        let seed = cluster.nodes[0].name.clone();
        let running = cluster.running_nodes(0).unwrap_or_else(|e| panic!("{e}"));
        let left_out: Vec<usize> = (1..n)
            .filter(|&i| !running.contains(&cluster.nodes[i].name))
            .collect();
        for &i in &left_out {
            eprintln!(
                "cluster.rs: node {i} did not join node 0 at boot; joining it by hand (node 0's \
                 running nodes: {running:?})"
            );
            cluster.ctl(i, &["stop_app"]);
            cluster.ctl(i, &["reset"]);
            cluster.ctl(i, &["join_cluster", &seed]);
            cluster.ctl(i, &["start_app"]);
        }
        for &i in &left_out {
            cluster.await_listed_as_running(i);
        }
        cluster
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.nodes[i].port)
    }

    /// Node `i`'s AMQP port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Node `i`'s Erlang node name, `handoff-…@localhost`.
    pub fn node_name(&self, i: usize) -> String {
        self.nodes[i].name.clone()
    }

    /// The scratch directory holding every node's data and logs.
    pub fn dir(&self) -> &Path {
        &self.env.root
    }

    /// Runs `rabbitmqctl -n <node i> args…` and returns its standard output; panics with its
    /// output on failure.
    pub fn ctl(&self, i: usize, args: &[&str]) -> String {
        match self.try_ctl(i, args) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// `rabbitmqctl -n <node i> args…`: its standard output, or its status and output.
    fn try_ctl(&self, i: usize, args: &[&str]) -> Result<String, String> {
        self.env.ctl(&self.nodes[i].name, args)
    }

    /// Kills node `i`'s Erlang VM with SIGKILL, the loss of a machine: no clean shutdown, no
    /// goodbye to its peers or clients. Returns once the VM and its helper processes are
    /// gone and its AMQP port refuses connections.
    pub fn kill(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_some(),
            "node {i} ({}) is not running",
            self.nodes[i].name
        );
        let name = self.nodes[i].name.clone();
        let port = self.nodes[i].port;
        self.nodes[i].kill_vm();
        self.nodes[i].reap(Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "node {i} ({name}) was killed and its AMQP port {port} still accepts connections"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `i` again after [`kill`](Self::kill), with the same name, data, ports and
    /// cookie; returns when it runs and another running node's `cluster_status` lists it as
    /// running.
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_none(),
            "node {i} ({}) is still running: kill it first",
            self.nodes[i].name
        );
        self.nodes[i].spawn(&self.env);
        self.await_booted(&[i]);
        self.await_listed_as_running(i);
    }

    /// Whether node `i`'s VM is alive and its AMQP port accepts connections.
    pub fn is_running(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        node.child.is_some()
            && node.vm_pid.is_some_and(alive)
            && TcpStream::connect(("127.0.0.1", node.port)).is_ok()
    }

    /// The index of the node that leads queue `queue` in vhost `/`, as a running node's
    /// `rabbitmqctl list_queues name leader` says; `None` when no running node answers, the
    /// queue does not exist or has no leader (yet), or the leader is not one of ours.
    pub fn leader(&self, queue: &str) -> Option<usize> {
        let row = self.queue_row(queue)?;
        let leader = row.get("leader")?.as_str()?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// How many members of queue `queue` in vhost `/` are online (`list_queues name online`
    /// asked of a running node); 0 when no running node answers or there is no such queue.
    pub fn online_members(&self, queue: &str) -> usize {
        self.queue_row(queue)
            .and_then(|row| row.get("online").and_then(|o| o.as_array()).map(Vec::len))
            .unwrap_or(0)
    }

    /// The `list_queues name leader members online` row of `queue` (vhost `/`), from the
    /// first running node that answers.
    fn queue_row(&self, queue: &str) -> Option<serde_json::Value> {
        let args = [
            "list_queues",
            "-p",
            "/",
            "name",
            "leader",
            "members",
            "online",
            "--formatter",
            "json",
            "--quiet",
            "--timeout",
            "15",
        ];
        for i in (0..self.len()).filter(|&i| self.is_running(i)) {
            let Ok(out) = self.try_ctl(i, &args) else {
                continue;
            };
            let Ok(serde_json::Value::Array(rows)) = serde_json::from_str(out.trim()) else {
                continue;
            };
            return rows.into_iter().find(|r| r["name"] == queue);
        }
        None
    }

    /// Node `i`'s console output (every start) and log files, for failure messages.
    pub fn logs(&self, i: usize) -> String {
        self.nodes[i].logs()
    }

    /// Waits until nodes `which` listen and have booted, and learns their VMs' pids; panics
    /// with a node's logs if it exits or does not boot in time. The nodes are awaited side by
    /// side (each `rabbitmqctl` takes a second of CPU to start).
    fn await_booted(&mut self, which: &[usize]) {
        let env = &self.env;
        let errors: Vec<String> = std::thread::scope(|s| {
            let waits: Vec<_> = self
                .nodes
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| which.contains(i))
                .map(|(i, node)| {
                    s.spawn(move || node.await_booted(env).map_err(|e| format!("node {i}: {e}")))
                })
                .collect();
            waits
                .into_iter()
                .filter_map(|w| match w.join() {
                    Ok(result) => result.err(),
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        if !errors.is_empty() {
            panic!("{}", errors.join("\n\n"));
        }
    }

    /// The running nodes in node `j`'s `cluster_status`.
    fn running_nodes(&self, j: usize) -> Result<Vec<String>, String> {
        let out = self.try_ctl(j, &["cluster_status", "--formatter", "json", "--quiet"])?;
        let status: serde_json::Value = serde_json::from_str(out.trim())
            .map_err(|e| format!("cluster_status of node {j} is no JSON ({e}): {out}"))?;
        Ok(status["running_nodes"]
            .as_array()
            .ok_or_else(|| format!("cluster_status of node {j} has no running_nodes: {out}"))?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect())
    }

    /// Waits until a running node other than `i` lists node `i` among its running nodes.
    fn await_listed_as_running(&self, i: usize) {
        let name = &self.nodes[i].name;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::from("(no other node running)");
        loop {
            // Ask the first other node that answers.
            for j in (0..self.len()).filter(|&j| j != i && self.is_running(j)) {
                match self.running_nodes(j) {
                    Ok(running) if running.contains(name) => return,
                    Ok(running) => {
                        last = format!("node {j}'s running nodes: {running:?}");
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            if self.len() == 1 {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "no other node lists node {i} ({name}) as running within 60 s; last \
                     answer: {last}\nits logs:\n{}",
                    self.logs(i)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Env {
    /// Runs `rabbitmqctl -n <node> args…`: its standard output, or its status and output.
    fn ctl(&self, node: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(self.bin.join("rabbitmqctl"))
            .env("HOME", self.root.join("home"))
            .env("RABBITMQ_CONF_ENV_FILE", self.root.join("env.conf"))
            .arg("-n")
            .arg(node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "rabbitmqctl -n {node} {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Member {
    /// Starts the node's `rabbitmq-server` (which becomes the VM), console to a file.
    fn spawn(&mut self, env: &Env) {
        assert!(self.child.is_none());
        self.starts += 1;
        self.vm_pid = None;
        let _ = std::fs::remove_file(self.dir.join("pid"));
        let console =
            std::fs::File::create(self.dir.join(format!("console-{}.log", self.starts))).unwrap();
        let d = &self.dir;
        let server = env.bin.join("rabbitmq-server");
        let child = Command::new(&server)
            .env("HOME", env.root.join("home"))
            .env("RABBITMQ_CONF_ENV_FILE", env.root.join("env.conf"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", ERL_ARGS)
            // Whose node this is, for reap_orphans().
            .env(OWNER_VAR, std::process::id().to_string())
            // `exec` the VM rather than run it as the script's child (and no systemd here).
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        self.child = Some(child);
    }

    /// Waits until the node listens and `rabbitmqctl await_startup` succeeds, then learns its
    /// VM's pid. An error (with the node's logs) if it exits or does not listen in time.
    fn await_booted(&mut self, env: &Env) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "RabbitMQ node {} exited with {status} while booting:\n{}",
                    self.name,
                    self.logs()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "RabbitMQ node {} did not listen within {} s:\n{}",
                    self.name,
                    BOOT_TIMEOUT.as_secs(),
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        env.ctl(&self.name, &["await_startup"])
            .map_err(|e| format!("{e}\n{}", self.logs()))?;
        // With RUNNING_UNDER_SYSTEMD the script execs erl, erl execs erlexec and erlexec
        // execs beam.smp: the child is the VM, and the pid file (written by the VM) says so.
        // Should that ever change, ask the VM, and kill() kills what it says.
        let child = self.child.as_ref().unwrap().id();
        let from_file: Option<u32> = std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let pid = if from_file == Some(child) {
            child
        } else {
            let out = env.ctl(&self.name, &["eval", "os:getpid()."])?;
            let pid: u32 = out
                .trim()
                .trim_matches('"')
                .parse()
                .map_err(|e| format!("os:getpid() of {} said {out:?}: {e}", self.name))?;
            eprintln!(
                "cluster.rs: {}'s VM is pid {pid} (pid file: {from_file:?}), not \
                 rabbitmq-server's pid {child}",
                self.name
            );
            pid
        };
        self.vm_pid = Some(pid);
        Ok(())
    }

    /// The node's console output (every start) and log files.
    fn logs(&self) -> String {
        let mut out = String::new();
        for s in 1..=self.starts {
            let path = self.dir.join(format!("console-{s}.log"));
            out.push_str(&format!("==> {} <==\n", path.display()));
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("log"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for path in files.into_iter().filter(|p| p.is_file()) {
            out.push_str(&format!("==> {} <==\n", path.display()));
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).unwrap_or_default(),
            ));
        }
        out
    }

    /// Sends SIGKILL to the VM (and to `rabbitmq-server` if that is another process), having
    /// noted the VM's helper processes first (they are orphans once it is dead). Does not
    /// wait.
    fn kill_vm(&mut self) {
        let vm = self.vm_pid.or(self.child.as_ref().map(|c| c.id()));
        self.helpers = vm.map(descendants).unwrap_or_default();
        if let Some(pid) = self.vm_pid
            && self.child.as_ref().is_some_and(|c| c.id() != pid)
        {
            sigkill(pid);
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }

    /// Waits (up to `limit`) until the killed VM is reaped and its helper processes
    /// (`erl_child_setup`, `inet_gethost`) are gone, killing any helper that outlives it.
    fn reap(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let helpers = std::mem::take(&mut self.helpers);
        if let Some(mut child) = self.child.take() {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("cluster.rs: {} did not exit after SIGKILL", self.name);
            }
        }
        if let Some(pid) = self.vm_pid
            && alive(pid)
        {
            // The VM was not our child process: its own parent reaps it.
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // The helpers exit when their pipe from the VM closes; a moment's grace, then SIGKILL.
        let grace = Instant::now() + Duration::from_secs(2);
        for (pid, comm) in &helpers {
            while still(*pid, comm) && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(10));
            }
            if still(*pid, comm) {
                sigkill(*pid);
            }
        }
        self.vm_pid = None;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL all at once (the data is thrown away: nothing to shut down cleanly), then
        // wait for each.
        for node in &mut self.nodes {
            node.kill_vm();
        }
        for node in &mut self.nodes {
            node.reap(Duration::from_secs(10));
        }
        // A dead VM's epmd registration goes with its connection to epmd; make sure.
        let names: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.name.split('@').next().unwrap().to_owned())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<String> = epmd_names()
                .into_iter()
                .filter(|n| names.contains(n))
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("cluster.rs: still registered in epmd after their VMs died: {left:?}");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if std::thread::panicking() {
            eprintln!(
                "cluster.rs: the nodes' data and logs are kept in {} (until a later test \
                 process starts a cluster)",
                self.env.root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.env.root);
        }
    }
}

/// The environment variable naming the test process that started a node.
const OWNER_VAR: &str = "HANDOFF_TEST_CLUSTER_OWNER";

/// Kills the nodes of clusters whose test process died without dropping them (killed, or
/// stopped by Ctrl-C): every process with `HANDOFF_TEST_CLUSTER_OWNER=<pid>` in its
/// environment, `<pid>` no longer alive. Nodes of live test processes, and every process
/// not started by this module, are left alone. Then removes the scratch directories
/// (`handoff-cluster-<test>-<pid>-<k>` in the temporary directory) of dead test processes.
fn reap_orphans() {
    let prefix = format!("{OWNER_VAR}=");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let owner = environ.split(|b| *b == 0).find_map(|var| {
            std::str::from_utf8(var)
                .ok()?
                .strip_prefix(prefix.as_str())?
                .parse::<u32>()
                .ok()
        });
        if let Some(owner) = owner
            && owner != std::process::id()
            && !alive(owner)
            && alive(pid)
        {
            eprintln!("cluster.rs: killing pid {pid}, a node left behind by test process {owner}");
            sigkill(pid);
        }
    }
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("handoff-cluster-") else {
            continue;
        };
        let owner = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(owner) = owner
            && owner != std::process::id()
            && !alive(owner)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh Erlang cookie (20 capital letters).
fn cookie() -> String {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ ((std::process::id() as u64) << 32)
        ^ COUNTER
            .load(Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..20)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'A' + (x % 26) as u8) as char
        })
        .collect()
}

/// Writes the cookie file, readable by its owner only (Erlang refuses it otherwise).
fn write_cookie(path: &Path, cookie: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(cookie.as_bytes()).unwrap();
}

/// `(state, parent pid, command name)` of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u32, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid, comm))
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _, _)| state != 'Z' && state != 'X')
}

/// Whether the process `pid` is still the live process named `comm` (not a reused pid).
fn still(pid: u32, comm: &str) -> bool {
    stat(pid).is_some_and(|(state, _, c)| state != 'Z' && state != 'X' && c == comm)
}

/// Every live descendant of `pid`, with its command name.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let procs: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| {
                    let (state, ppid, comm) = stat(p)?;
                    (state != 'Z').then_some((p, ppid, comm))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<(u32, String)> = Vec::new();
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        for (p, ppid, comm) in &procs {
            if *ppid == parent && !out.iter().any(|(q, _)| q == p) {
                out.push((*p, comm.clone()));
                parents.push(*p);
            }
        }
    }
    out
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The node names (without `@host`) registered in this machine's epmd (127.0.0.1:4369),
/// asked with epmd's NAMES request; empty when epmd does not answer.
pub fn epmd_names() -> Vec<String> {
    let Ok(mut s) =
        TcpStream::connect_timeout(&"127.0.0.1:4369".parse().unwrap(), Duration::from_secs(2))
    else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // A request: 2-byte length, then NAMES_REQ (110). The answer: epmd's port (4 bytes), then
    // lines "name <name> at port <port>", until epmd closes the connection.
    if s.write_all(&[0, 1, 110]).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    if buf.len() < 4 {
        return Vec::new();
    }
    String::from_utf8_lossy(&buf[4..])
        .lines()
        .filter_map(|l| l.strip_prefix("name ")?.split(" at port ").next())
        .map(str::to_owned)
        .collect()
}

/// Every live process on this machine started for node `node_name` (its environment holds
/// `RABBITMQ_NODENAME=<node_name>`: the VM and its helpers), for tests checking that a
/// dropped cluster left nothing running. (The VM's command line does not name the node.)
pub fn processes_of(node_name: &str) -> Vec<(u32, String)> {
    let needle = format!("RABBITMQ_NODENAME={node_name}");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != std::process::id())
                .filter_map(|p| {
                    let (state, _, comm) = stat(p)?;
                    let environ = std::fs::read(format!("/proc/{p}/environ")).ok()?;
                    (state != 'Z'
                        && environ
                            .split(|b| *b == 0)
                            .any(|var| var == needle.as_bytes()))
                    .then_some((p, comm))
                })
                .collect()
        })
        .unwrap_or_default()
}
