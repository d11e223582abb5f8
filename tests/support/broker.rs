//! Test support: a real RabbitMQ for integration tests, one fresh vhost per test.
//!
//! Include it with `#[path = "support/broker.rs"] mod broker;`.
//!
//! The broker is found once per test binary, the first time a test asks for it:
//!
//! 1. `HANDOFF_TEST_AMQP_URL` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`) when set, with
//!    its management API at `HANDOFF_TEST_MGMT_URL` (default: the same user, password and
//!    host, port 15672). Both must answer, or every test fails and says which did not.
//! 2. Otherwise the usual local broker, `amqp://guest:guest@127.0.0.1:5672/%2f` with its
//!    management API at `http://guest:guest@127.0.0.1:15672`, when its AMQP port accepts a
//!    TCP connection. Its management API must then answer `/api/overview`: if it does not,
//!    every test fails and says to run `rabbitmq-plugins enable rabbitmq_management`
//!    (there is no silent fallback to a container).
//! 3. Only when nothing answers at 127.0.0.1:5672, one RabbitMQ container
//!    (testcontainers-modules' management image) started for the whole test binary and
//!    removed when the process exits; this needs a Docker engine.
//!
//! The management API is needed because each test gets its own vhost and users. Which
//! broker was found is said once on standard error (not captured by the test harness), as
//! `tests: RabbitMQ at HOST:PORT (HOW)`, without its password.
//!
//! Every function here blocks (plain HTTP through `ureq`); they may be called from a plain
//! `#[test]` and from inside a tokio test, since they never touch the caller's runtime.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One test's vhost on the shared broker. Dropping it deletes the vhost (which closes its
/// connections) and the users it created.
pub struct Broker {
    base: &'static Base,
    vhost: String,
    users: Mutex<Vec<String>>,
}

/// Where the broker is, read once per test binary.
struct Base {
    /// `user:password` exactly as written in the AMQP URL (still percent-encoded).
    userinfo: String,
    /// `host:port` of AMQP.
    amqp_authority: String,
    scheme: String,
    /// The admin user, decoded.
    admin: String,
    /// `http://user:password@host:15672`, no trailing slash.
    mgmt: String,
}

static BASE: OnceLock<Result<Base, String>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn base() -> &'static Base {
    match BASE.get_or_init(find_broker) {
        Ok(base) => base,
        Err(e) => panic!("no RabbitMQ for the tests: {e}"),
    }
}

/// The usual local broker's AMQP URL and management API.
const LOCAL_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const LOCAL_MGMT_URL: &str = "http://guest:guest@127.0.0.1:15672";
const LOCAL_AMQP_ADDR: &str = "127.0.0.1:5672";

fn find_broker() -> Result<Base, String> {
    let (base, how) = discover()?;
    // Straight to the process's stderr: the harness captures `eprintln!` per test.
    let _ = writeln!(
        std::io::stderr(),
        "tests: RabbitMQ at {} ({how})",
        base.amqp_authority
    );
    Ok(base)
}

/// Finds the broker (see the module's documentation) and says how it was found.
fn discover() -> Result<(Base, &'static str), String> {
    let nonempty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = nonempty("HANDOFF_TEST_AMQP_URL") {
        let mgmt = nonempty("HANDOFF_TEST_MGMT_URL");
        let base = Base::from_urls(&url, mgmt.as_deref())?;
        let addr = base.amqp_socket_addr()?;
        if let Err(e) = tcp_answers(&addr) {
            return Err(format!(
                "HANDOFF_TEST_AMQP_URL names {}, where nothing accepts a connection ({e}); \
                 is RabbitMQ running there? Unset the variable to use a local broker at \
                 127.0.0.1:5672 (or a container)",
                base.amqp_authority
            ));
        }
        if let Err(e) = management_answers(&base.mgmt) {
            return Err(format!(
                "the management API of HANDOFF_TEST_AMQP_URL's broker, at {} ({}), does not \
                 answer /api/overview ({e}); the tests need it to make a vhost and users per \
                 test: enable it (rabbitmq-plugins enable rabbitmq_management) or set \
                 HANDOFF_TEST_MGMT_URL to where it is",
                without_userinfo(&base.mgmt),
                if mgmt.is_some() {
                    "HANDOFF_TEST_MGMT_URL"
                } else {
                    "the same host, port 15672"
                }
            ));
        }
        return Ok((base, "HANDOFF_TEST_AMQP_URL"));
    }
    if probe_local(LOCAL_AMQP_ADDR, LOCAL_MGMT_URL)? {
        let base = Base::from_urls(LOCAL_AMQP_URL, Some(LOCAL_MGMT_URL))?;
        return Ok((base, "local, found at the usual address"));
    }
    let (host, amqp, http) = container::start()?;
    let base = Base::from_urls(
        &format!("amqp://guest:guest@{host}:{amqp}/%2f"),
        Some(&format!("http://guest:guest@{host}:{http}")),
    )?;
    Ok((base, "testcontainers, started for this test binary"))
}

/// Whether a usable broker is at `amqp_addr` (a socket address) with its management API at
/// `mgmt` (`http://user:password@host:port`): `Ok(false)` when nothing accepts a TCP
/// connection there (the caller may start a container), `Ok(true)` when AMQP accepts one
/// and the management API answers, an error saying to enable the management plugin when
/// only AMQP answers.
pub(crate) fn probe_local(amqp_addr: &str, mgmt: &str) -> Result<bool, String> {
    let addr: SocketAddr = amqp_addr
        .parse()
        .map_err(|e| format!("{amqp_addr} is not a socket address: {e}"))?;
    if tcp_answers(&addr).is_err() {
        return Ok(false);
    }
    match management_answers(mgmt) {
        Ok(()) => Ok(true),
        Err(e) => Err(format!(
            "a RabbitMQ answers AMQP at {amqp_addr}, but its management API at {} does not \
             answer /api/overview as guest/guest ({e}). The tests need it to make a vhost \
             and users per test: run `rabbitmq-plugins enable rabbitmq_management`, or set \
             HANDOFF_TEST_AMQP_URL (and HANDOFF_TEST_MGMT_URL) to a broker that has it",
            without_userinfo(mgmt)
        )),
    }
}

/// Whether something accepts a TCP connection at `addr` within a second.
fn tcp_answers(addr: &SocketAddr) -> Result<(), String> {
    TcpStream::connect_timeout(addr, Duration::from_secs(1))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether `GET {mgmt}/api/overview` succeeds (as the URL's user) within 5 s.
fn management_answers(mgmt: &str) -> Result<(), String> {
    ureq::get(format!("{}/api/overview", mgmt.trim_end_matches('/')))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .call()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `scheme://host:port...` without the `user:password@` of a URL, for messages.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let hostport = rest[..end].rsplit('@').next().unwrap_or("");
            format!("{scheme}://{hostport}{}", &rest[end..])
        }
        None => url.to_string(),
    }
}

impl Base {
    fn from_urls(amqp: &str, mgmt: Option<&str>) -> Result<Base, String> {
        let (scheme, rest) = amqp
            .split_once("://")
            .ok_or_else(|| "HANDOFF_TEST_AMQP_URL is not a URL".to_string())?;
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (u.to_string(), h.to_string()),
            None => ("guest:guest".to_string(), authority.to_string()),
        };
        let admin = percent_decode(userinfo.split(':').next().unwrap_or(""));
        let mgmt = match mgmt {
            Some(m) => m.trim_end_matches('/').trim_end_matches("/api").to_string(),
            None => {
                let host = match hostport.rsplit_once(':') {
                    Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
                    _ => hostport.as_str(),
                };
                format!("http://{userinfo}@{host}:15672")
            }
        };
        Ok(Base {
            userinfo,
            amqp_authority: hostport,
            scheme: scheme.to_string(),
            admin,
            mgmt,
        })
    }

    /// The AMQP `host:port` as a socket address (the scheme's port when none is given).
    fn amqp_socket_addr(&self) -> Result<SocketAddr, String> {
        let bare_ipv6 = self.amqp_authority.ends_with(']');
        let has_port = !bare_ipv6
            && self
                .amqp_authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        let authority = if has_port {
            self.amqp_authority.clone()
        } else {
            let port = if self.scheme == "amqps" { 5671 } else { 5672 };
            format!("{}:{port}", self.amqp_authority)
        };
        authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority} resolves to no address"))
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/{path}", self.mgmt)
    }
}

impl Broker {
    /// A fresh vhost for one test, with full permissions for the admin user.
    pub fn new(test_name: &str) -> Broker {
        let base = base();
        let clean: String = test_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let vhost = format!("t-{clean}-{}-{n}", std::process::id());
        let enc = encode(&vhost);
        http_put(&base.api(&format!("vhosts/{enc}")), json!({}))
            .unwrap_or_else(|e| panic!("cannot create vhost {vhost}: {e}"));
        let broker = Broker {
            base,
            vhost,
            users: Mutex::new(Vec::new()),
        };
        broker.permit(&base.admin);
        broker
    }

    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// The AMQP URL of the admin user for this vhost.
    pub fn url(&self) -> String {
        format!(
            "{}://{}@{}/{}",
            self.base.scheme,
            self.base.userinfo,
            self.base.amqp_authority,
            encode(&self.vhost)
        )
    }

    /// Creates a user named `<vhost>.<short_name>`, whose password is its name, with these
    /// tags and full permissions on this vhost only. Returns the name and its AMQP URL.
    pub fn add_user(&self, short_name: &str, tags: &[&str]) -> (String, String) {
        let name = format!("{}.{short_name}", self.vhost);
        http_put(
            &self.base.api(&format!("users/{}", encode(&name))),
            json!({"password": name, "tags": tags.join(",")}),
        )
        .unwrap_or_else(|e| panic!("cannot create user {name}: {e}"));
        self.users.lock().unwrap().push(name.clone());
        self.permit(&name);
        let url = format!(
            "{}://{}:{}@{}/{}",
            self.base.scheme,
            encode(&name),
            encode(&name),
            self.base.amqp_authority,
            encode(&self.vhost)
        );
        (name, url)
    }

    /// Creates a user named `<vhost>.<short_name>`, whose password is its name, with these
    /// tags and exactly these permissions on this vhost: `permissions` is (configure,
    /// write, read) and each topic permission is (exchange, write, read), all regular
    /// expressions as RabbitMQ reads them. Returns the name and its AMQP URL.
    pub fn add_user_with_permissions(
        &self,
        short_name: &str,
        tags: &[&str],
        permissions: (&str, &str, &str),
        topic_permissions: &[(&str, &str, &str)],
    ) -> (String, String) {
        let name = format!("{}.{short_name}", self.vhost);
        let user = self.base.api(&format!("users/{}", encode(&name)));
        http_put(&user, json!({"password": name, "tags": tags.join(",")}))
            .unwrap_or_else(|e| panic!("cannot create user {name}: {e}"));
        self.users.lock().unwrap().push(name.clone());
        let (configure, write, read) = permissions;
        http_put(
            &self.base.api(&format!(
                "permissions/{}/{}",
                encode(&self.vhost),
                encode(&name)
            )),
            json!({"configure": configure, "write": write, "read": read}),
        )
        .unwrap_or_else(|e| panic!("cannot set the permissions of {name}: {e}"));
        for (exchange, write, read) in topic_permissions {
            http_put(
                &self.base.api(&format!(
                    "topic-permissions/{}/{}",
                    encode(&self.vhost),
                    encode(&name)
                )),
                json!({"exchange": exchange, "write": write, "read": read}),
            )
            .unwrap_or_else(|e| panic!("cannot set a topic permission of {name}: {e}"));
        }
        let url = format!(
            "{}://{}:{}@{}/{}",
            self.base.scheme,
            encode(&name),
            encode(&name),
            self.base.amqp_authority,
            encode(&self.vhost)
        );
        (name, url)
    }

    /// Imports definitions into this vhost (`POST /api/definitions/<vhost>`): exchanges,
    /// queues, bindings and policies; whatever `vhost` they name, they land in this one.
    /// Users and permissions are global and are not imported this way.
    pub fn import_definitions(&self, definitions: &Value) {
        let url = self
            .base
            .api(&format!("definitions/{}", encode(&self.vhost)));
        http_post(&url, definitions.clone())
            .unwrap_or_else(|e| panic!("cannot import definitions into {}: {e}", self.vhost));
    }

    /// The management API, `http://user:password@host:port/api`, as the admin user.
    pub fn management_api(&self) -> String {
        format!("{}/api", self.base.mgmt)
    }

    /// Imports the topology of a definitions file (exchanges, queues, bindings, policies;
    /// not its users) into this vhost, as `deploy/rabbitmq/definitions.json` lays it out.
    pub fn import_topology(&self, definitions: &Value) {
        let mut t = json!({});
        for key in ["exchanges", "queues", "bindings", "policies"] {
            let items: Vec<Value> = definitions[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    let mut x = x.clone();
                    x.as_object_mut().unwrap().remove("vhost");
                    x
                })
                .collect();
            t[key] = json!(items);
        }
        self.import_definitions(&t);
    }

    /// Closes every AMQP connection of this vhost and returns how many. Management stats
    /// lag: waits (up to 15 s) until at least `expect_at_least` connections are listed.
    pub fn close_connections(&self, expect_at_least: usize) -> usize {
        let url = self
            .base
            .api(&format!("vhosts/{}/connections", encode(&self.vhost)));
        let deadline = Instant::now() + Duration::from_secs(15);
        let names = loop {
            let names: Vec<String> = http_get(&url)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect();
            if names.len() >= expect_at_least || Instant::now() >= deadline {
                break names;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        names
            .iter()
            .filter(|name| {
                http_delete(&self.base.api(&format!("connections/{}", encode(name)))).is_ok()
            })
            .count()
    }

    /// Closes the connections of this vhost whose client named them `name` (the
    /// `connection_name` client property), waiting up to 15 s for at least one to be
    /// listed; returns how many were closed.
    pub fn close_connections_named(&self, name: &str) -> usize {
        let url = self
            .base
            .api(&format!("vhosts/{}/connections", encode(&self.vhost)));
        let deadline = Instant::now() + Duration::from_secs(15);
        let names = loop {
            let names: Vec<String> = http_get(&url)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter(|c| c["client_properties"]["connection_name"] == name)
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect();
            if !names.is_empty() || Instant::now() >= deadline {
                break names;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        names
            .iter()
            .filter(|n| http_delete(&self.base.api(&format!("connections/{}", encode(n)))).is_ok())
            .count()
    }

    /// Messages ready in a queue of this vhost, from the management stats (they lag a
    /// few seconds: for assertions, prefer consuming). 0 when not known yet.
    pub fn messages_ready(&self, queue: &str) -> u64 {
        http_get(
            &self
                .base
                .api(&format!("queues/{}/{}", encode(&self.vhost), encode(queue))),
        )
        .ok()
        .and_then(|v| v["messages_ready"].as_u64())
        .unwrap_or(0)
    }

    fn permit(&self, user: &str) {
        http_put(
            &self.base.api(&format!(
                "permissions/{}/{}",
                encode(&self.vhost),
                encode(user)
            )),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .unwrap_or_else(|e| panic!("cannot grant {user} permissions on {}: {e}", self.vhost));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = http_delete(&self.base.api(&format!("vhosts/{}", encode(&self.vhost))));
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(|e| e.into_inner()));
        for user in users {
            let _ = http_delete(&self.base.api(&format!("users/{}", encode(&user))));
        }
    }
}

// Plain blocking HTTP. ureq never touches a tokio runtime, so these are safe inside one;
// the management URL's user and password are sent as basic authentication.

fn http_get(url: &str) -> Result<Value, String> {
    ureq::get(url)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_json::<Value>()
        .map_err(|e| e.to_string())
}

fn http_put(url: &str, body: Value) -> Result<(), String> {
    ureq::put(url)
        .send_json(body)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn http_post(url: &str, body: Value) -> Result<(), String> {
    ureq::post(url)
        .send_json(body)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn http_delete(url: &str) -> Result<(), String> {
    ureq::delete(url)
        .call()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Percent-encodes everything but unreserved characters (for URL path segments and
/// userinfo).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
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

/// The one RabbitMQ container of a test binary, when no broker is given.
///
/// It lives on its own thread with its own tokio runtime (so starting it works from any
/// test, async or not), and is removed from a C `atexit` handler: statics are never
/// dropped, and testcontainers has no reaper of its own.
mod container {
    use super::*;
    use testcontainers_modules::rabbitmq::RabbitMq;
    use testcontainers_modules::testcontainers::ImageExt;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;

    static STOP: Mutex<Option<mpsc::Sender<()>>> = Mutex::new(None);
    static REMOVED: AtomicBool = AtomicBool::new(false);

    unsafe extern "C" {
        fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
    }

    /// At process exit: tell the container's thread to remove it, and wait (at most 20 s)
    /// until it has. Only futex locks, a channel send and sleeps: nothing here needs the
    /// exiting thread's thread-locals.
    extern "C" fn reap() {
        let stop = STOP.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop
            && stop.send(()).is_ok()
        {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !REMOVED.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts the container; returns its host and the host ports of AMQP and management.
    pub(super) fn start() -> Result<(String, u16, u16), String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("rabbitmq-container".into())
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
                let started = rt.block_on(async {
                    let node = RabbitMq::default()
                        .with_startup_timeout(Duration::from_secs(120))
                        .start()
                        .await
                        .map_err(|e| e.to_string())?;
                    let host = node.get_host().await.map_err(|e| e.to_string())?;
                    let amqp = node
                        .get_host_port_ipv4(5672)
                        .await
                        .map_err(|e| e.to_string())?;
                    let http = node
                        .get_host_port_ipv4(15672)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>((node, host.to_string(), amqp, http))
                });
                let node = match started {
                    Ok((node, host, amqp, http)) => {
                        let _ = ready_tx.send(Ok((host, amqp, http)));
                        node
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Wait for the process to exit (or for the sender to go away).
                let _ = stop_rx.recv();
                let _ = rt.block_on(node.rm());
                REMOVED.store(true, Ordering::Release);
            })
            .map_err(|e| e.to_string())?;
        *STOP.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop_tx);
        // SAFETY: registers a plain `extern "C" fn()` with the C library.
        unsafe {
            atexit(reap);
        }
        let (host, amqp, http) = ready_rx
            .recv()
            .map_err(|_| "the container thread died".to_string())?
            .map_err(|e| {
                format!(
                    "nothing answers at 127.0.0.1:5672 and a RabbitMQ container cannot be \
                     started ({e}): run RabbitMQ locally with its management plugin, or set \
                     HANDOFF_TEST_AMQP_URL to a broker that has it, or run a Docker engine"
                )
            })?;
        // The log line testcontainers waits for comes before the management listener is
        // always up: wait for the API too.
        let api = format!("http://guest:guest@{host}:{http}/api/overview");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(&api).is_err() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "the container's management API never answered at {api}"
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok((host, amqp, http))
    }
}
