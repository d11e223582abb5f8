//! TLS to RabbitMQ, and secrets kept out of everything handoff prints.
//!
//! Each test that needs a broker starts a RabbitMQ node of its own (`support/node.rs`) with
//! a TLS listener that requires client certificates (`verify_peer`,
//! `fail_if_no_peer_cert`). The certificates are made here with rcgen: a test CA, the
//! broker's certificate for `localhost` and `127.0.0.1`, a client certificate, and a second,
//! "rogue" CA with a client certificate of its own that the broker does not trust.
//!
//! Every password in these tests is distinctive, and every line of output (service logs in
//! text and JSON, at debug level; `publish` errors; `--help`) is checked for the passwords
//! and for any PEM material of the certificates and keys.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/node.rs"]
mod node;
#[path = "support/serve.rs"]
mod serve;

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use node::Node;
use serve::{BIN, Serve, Watch};

/// The service's password: it must never be printed.
const SERVICE_PASSWORD: &str = "Svc-Pw-q7X2-distinct";
/// The publisher's password: it must never be printed either.
const PUBLISHER_PASSWORD: &str = "Bop-Pw-k9W4-distinct";
/// A wrong password, as an operator might mistype it: it must not be printed even then.
const WRONG_PASSWORD: &str = "Wrong-Pw-z3R8-distinct";

/// Environment variables for a child process.
type Env = Vec<(String, String)>;

/// The CN of the client certificate, as the broker reports its peer.
const CLIENT_CN: &str = "handoff-test-client";

// ---------------------------------------------------------------------------------------
// The test PKI.

/// Certificates and keys in PEM, written to a directory of the test's own.
struct Pki {
    dir: PathBuf,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate signed by `issuer` and its key, both in PEM.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("handoff-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |file: &str, text: &str| std::fs::write(dir.join(file), text).unwrap();

        let ca = new_ca("handoff test CA");
        write("ca.pem", &ca.pem());
        let (cert, key) = leaf(
            &ca,
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write("server.pem", &cert);
        write("server-key.pem", &key);
        let (cert, key) = leaf(&ca, &[], CLIENT_CN, ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", &cert);
        write("client-key.pem", &key);

        let rogue = new_ca("rogue CA");
        write("rogue-ca.pem", &rogue.pem());
        let (cert, key) = leaf(&rogue, &[], CLIENT_CN, ExtendedKeyUsagePurpose::ClientAuth);
        write("rogue-client.pem", &cert);
        write("rogue-client-key.pem", &key);
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// The broker's TLS listener: only clients with a certificate of the test CA.
    fn rabbitmq_conf(&self) -> String {
        format!(
            "listeners.ssl.default = 127.0.0.1:{{tls_port}}\n\
             ssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\n\
             ssl_options.keyfile = {}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n",
            self.path("ca.pem"),
            self.path("server.pem"),
            self.path("server-key.pem"),
        )
    }

    /// The service's TLS environment: the test CA and the client certificate.
    fn env(&self) -> Env {
        vec![
            ("HANDOFF_AMQP_TLS_CA".into(), self.path("ca.pem")),
            ("HANDOFF_AMQP_TLS_CERT".into(), self.path("client.pem")),
            ("HANDOFF_AMQP_TLS_KEY".into(), self.path("client-key.pem")),
        ]
    }

    /// What must never be printed: every base64 line of every PEM file, and the markers.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec![
            SERVICE_PASSWORD.to_string(),
            PUBLISHER_PASSWORD.to_string(),
            WRONG_PASSWORD.to_string(),
            "PRIVATE KEY".to_string(),
            "BEGIN CERTIFICATE".to_string(),
        ];
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            out.extend(
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_owned),
            );
        }
        out
    }

    /// Panics when `output` (named `what`) holds a password or PEM material.
    fn assert_no_secrets(&self, what: &str, output: &str) {
        assert!(!output.is_empty(), "{what}: no output to check");
        for secret in self.secrets() {
            assert!(
                !output.contains(&secret),
                "{what} printed a secret ({}…):\n{output}",
                &secret[..8]
            );
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running the service to its end.

/// Runs `handoff serve` with `env` (and a journal of its own, no HTTP) until it exits, and
/// returns its status and standard error. A service still running after 60 s has hung on
/// an error it should have stopped for: it is killed and the test fails.
///
/// Reconnecting waits at most 500 ms. With TLS 1.3 a broker refuses a missing client
/// certificate after the client's side of the handshake, and the refusal (an alert) can be
/// lost to the TCP reset that follows it; the service then retries as after a dropped
/// connection, and stops at the next attempt whose alert arrives (about nine in ten here).
fn serve_until_exit(name: &str, env: &[(String, String)]) -> (ExitStatus, String) {
    let dir = serve::scratch(name);
    let log = dir.join("serve.log");
    let config = dir.join("handoff.toml");
    std::fs::write(&config, "[amqp]\nreconnect_max_ms = 500\n").unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("HANDOFF_JOURNAL", dir.join("journal.jsonl"))
        .env("HANDOFF_HTTP_LISTEN", "")
        .env("HANDOFF_QUEUE_TYPE", "classic")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name}: handoff serve still running after 60 s instead of stopping:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (status, text)
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `amqps://user:password@localhost:PORT/%2f` on the node's TLS listener.
fn amqps(node: &Node, user: &str, password: &str) -> String {
    format!(
        "amqps://{user}:{password}@localhost:{}/%2f",
        node.tls_port.unwrap()
    )
}

/// Adds `user` with `password` and full permissions on `/` of the node.
fn add_user(node: &Node, user: &str, password: &str) {
    node.ctl(&["add_user", user, password]);
    node.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
}

/// One `bop.release.scheduled`: the engine answers it with an R1.4 release.
fn release_event(id: &str, person: &str) -> String {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "urn:agency:bop:sentry",
        "type": "bop.release.scheduled",
        "time": serve::now_rfc3339(),
        "datacontenttype": "application/json",
        "subject": person,
        "data": {"person_id": person, "facility": "fci-bastrop",
                 "release_at": "2030-01-05T00:00:00Z"},
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------
// The tests.

/// The service connects over TLS with the CA and a client certificate from its
/// configuration, becomes ready, and an event published over TLS (`handoff publish`, with
/// the same files) gives its decision on `handoff.decisions`. The broker sees both
/// connections as TLS with the test client certificate. Neither run prints a password or
/// PEM material, with the service logging JSON at debug level.
#[test]
fn serve_and_publish_over_tls_with_client_certificates() {
    let pki = Pki::new("ok");
    let node = Node::start("tlsok", &pki.rabbitmq_conf());
    add_user(&node, "handoff-svc", SERVICE_PASSWORD);
    add_user(&node, "bop", PUBLISHER_PASSWORD);

    let mut extra = pki.env();
    extra.push(("HANDOFF_LOG".into(), "debug".into()));
    extra.push(("HANDOFF_QUEUE_TYPE".into(), "classic".into()));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut service = Serve::start_on(
        "tls-ok",
        &amqps(&node, "handoff-svc", SERVICE_PASSWORD),
        "bop=bop",
        &extra,
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let watch = rt.block_on(Watch::start(
        &node.url(),
        "handoff.decisions",
        "tls-test-decisions",
    ));
    let file = service.dir.join("events.jsonl");
    std::fs::write(&file, release_event("tls-ev-1", "P-7001") + "\n").unwrap();
    let published = Command::new(BIN)
        .arg("publish")
        .arg(&file)
        .arg("--url")
        .arg(amqps(&node, "bop", PUBLISHER_PASSWORD))
        .envs(pki.env())
        .output()
        .unwrap();
    let publish_err = String::from_utf8_lossy(&published.stderr).into_owned();
    assert!(published.status.success(), "publish failed: {publish_err}");

    let seen = rt.block_on(watch.until(60, "the decision of tls-ev-1", |seen| {
        seen.iter()
            .any(|s| s.body.contains("\"caused_by\":\"tls-ev-1\""))
    }));
    let decision = seen
        .iter()
        .find(|s| s.body.contains("\"caused_by\":\"tls-ev-1\""))
        .unwrap();
    assert!(
        decision.body.contains("\"rule\":\"R1.4\"") && decision.routing_key.starts_with("release."),
        "{decision:?}"
    );

    // The broker's own view: the service's connection is TLS, with the client certificate.
    let connections = node.ctl(&["list_connections", "user", "ssl", "peer_cert_subject"]);
    assert!(
        connections
            .lines()
            .any(|l| l.starts_with("handoff-svc\ttrue") && l.contains(&format!("CN={CLIENT_CN}"))),
        "{connections}"
    );

    assert!(service.terminate().success(), "{}", service.logs());
    let logs = service.logs();
    assert!(logs.contains("connected to RabbitMQ"), "{logs}");
    pki.assert_no_secrets("handoff serve (json, debug)", &logs);
    pki.assert_no_secrets("handoff publish", &publish_err);
    let _ = std::fs::remove_dir_all(&service.dir);
}

/// Each TLS failure stops the service with a clear error and exit status 1, rather than
/// retrying forever: no client certificate when the broker requires one, a CA that did not
/// sign the broker's certificate, a client certificate of a CA the broker does not trust,
/// and an amqps:// URL on the plain port. A wrong password is not a TLS failure: the
/// service warns and retries (until SIGTERM), naming the refusal but not the password.
/// No output, in text or JSON, at debug level, holds a password or PEM material.
#[test]
fn tls_failures_stop_the_service_with_a_clear_error() {
    let pki = Pki::new("bad");
    let node = Node::start("tlsbad", &pki.rabbitmq_conf());
    add_user(&node, "handoff-svc", SERVICE_PASSWORD);
    let url = amqps(&node, "handoff-svc", SERVICE_PASSWORD);
    let ca = pki.path("ca.pem");
    let cases: [(&str, Env, &[&str]); 4] = [
        (
            "no client certificate",
            env(&[("HANDOFF_AMQP_URL", &url), ("HANDOFF_AMQP_TLS_CA", &ca)]),
            &["CertificateRequired"],
        ),
        (
            "a CA that did not sign the broker's certificate",
            env(&[
                ("HANDOFF_AMQP_URL", &url),
                ("HANDOFF_AMQP_TLS_CA", &pki.path("rogue-ca.pem")),
                ("HANDOFF_AMQP_TLS_CERT", &pki.path("client.pem")),
                ("HANDOFF_AMQP_TLS_KEY", &pki.path("client-key.pem")),
            ]),
            &["invalid peer certificate", "UnknownIssuer"],
        ),
        (
            "a client certificate the broker does not trust",
            env(&[
                ("HANDOFF_AMQP_URL", &url),
                ("HANDOFF_AMQP_TLS_CA", &ca),
                ("HANDOFF_AMQP_TLS_CERT", &pki.path("rogue-client.pem")),
                ("HANDOFF_AMQP_TLS_KEY", &pki.path("rogue-client-key.pem")),
            ]),
            &["received fatal alert"],
        ),
        (
            "an amqps:// URL on the plain port",
            env(&[
                (
                    "HANDOFF_AMQP_URL",
                    &format!(
                        "amqps://handoff-svc:{SERVICE_PASSWORD}@localhost:{}/%2f",
                        node.port
                    ),
                ),
                ("HANDOFF_AMQP_TLS_CA", &ca),
            ]),
            &["corrupt message"],
        ),
    ];
    for (n, (case, mut env, expected)) in cases.into_iter().enumerate() {
        let format = if n % 2 == 0 { "json" } else { "text" };
        env.push(("HANDOFF_LOG_FORMAT".into(), format.into()));
        env.push(("HANDOFF_LOG".into(), "debug".into()));
        let (status, stderr) = serve_until_exit(&format!("tls-bad-{n}"), &env);
        assert_eq!(status.code(), Some(1), "{case}: {status}\n{stderr}");
        assert!(
            stderr.contains("TLS with RabbitMQ failed"),
            "{case}: no clear error:\n{stderr}"
        );
        for word in expected {
            assert!(stderr.contains(word), "{case}: no {word:?} in:\n{stderr}");
        }
        pki.assert_no_secrets(&format!("handoff serve, {case} ({format})"), &stderr);
    }

    // A wrong password: refused by the broker after TLS, so warned about and retried.
    for format in ["text", "json"] {
        let dir = serve::scratch(&format!("tls-wrong-password-{format}"));
        let log = dir.join("serve.log");
        let mut child = Command::new(BIN)
            .arg("serve")
            .env("HANDOFF_JOURNAL", dir.join("journal.jsonl"))
            .env("HANDOFF_HTTP_LISTEN", "")
            .env(
                "HANDOFF_AMQP_URL",
                amqps(&node, "handoff-svc", WRONG_PASSWORD),
            )
            .env("HANDOFF_LOG_FORMAT", format)
            .env("HANDOFF_LOG", "debug")
            .envs(pki.env())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(60);
        while read().matches("ACCESS_REFUSED").count() < 2 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "stopped on a wrong password:\n{}",
                read()
            );
            assert!(
                Instant::now() < deadline,
                "no ACCESS_REFUSED twice in 60 s:\n{}",
                read()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        assert!(child.wait().unwrap().success(), "{}", read());
        let text = read();
        assert!(text.contains("reconnecting"), "{text}");
        pki.assert_no_secrets(&format!("handoff serve, wrong password ({format})"), &text);
        let _ = std::fs::remove_dir_all(&dir);
    }

    // `handoff publish` with the wrong password: refused, the URL shown without it.
    let scratch = serve::scratch("tls-publish-wrong");
    let file = scratch.join("events.jsonl");
    std::fs::write(&file, release_event("tls-ev-2", "P-7002") + "\n").unwrap();
    let out = Command::new(BIN)
        .arg("publish")
        .arg(&file)
        .env(
            "HANDOFF_AMQP_URL",
            amqps(&node, "handoff-svc", WRONG_PASSWORD),
        )
        .envs(pki.env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot connect to amqps://handoff-svc:***@localhost:"),
        "{stderr}"
    );
    pki.assert_no_secrets("handoff publish, wrong password", &stderr);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// TLS files that cannot be used are a configuration error (exit 2, before any connection)
/// naming the setting and the file, never its contents: a missing key file, a key file
/// holding a certificate, a certificate without its key, and TLS files with an amqp:// URL.
#[test]
fn unusable_tls_files_are_a_configuration_error_naming_the_file() {
    let pki = Pki::new("files");
    // Port 1 on loopback: nothing listens, and nothing may be tried before the files pass.
    let url = format!("amqps://handoff-svc:{SERVICE_PASSWORD}@localhost:1/%2f");
    let missing = pki.path("missing-key.pem");
    let cases: [(&str, Env, String); 4] = [
        (
            "a missing key file",
            env(&[
                ("HANDOFF_AMQP_URL", &url),
                ("HANDOFF_AMQP_TLS_CERT", &pki.path("client.pem")),
                ("HANDOFF_AMQP_TLS_KEY", &missing),
            ]),
            format!("amqp.tls.key_file: cannot read {missing}: "),
        ),
        (
            "a certificate as the key",
            env(&[
                ("HANDOFF_AMQP_URL", &url),
                ("HANDOFF_AMQP_TLS_CERT", &pki.path("client.pem")),
                ("HANDOFF_AMQP_TLS_KEY", &pki.path("client.pem")),
            ]),
            format!(
                "amqp.tls.key_file: {}: holds no PEM private key",
                pki.path("client.pem")
            ),
        ),
        (
            "a certificate without its key",
            env(&[
                ("HANDOFF_AMQP_URL", &url),
                ("HANDOFF_AMQP_TLS_CERT", &pki.path("client.pem")),
            ]),
            "cert_file and key_file go together".into(),
        ),
        (
            "TLS files with an amqp:// URL",
            env(&[
                (
                    "HANDOFF_AMQP_URL",
                    &format!("amqp://handoff-svc:{SERVICE_PASSWORD}@localhost:1/%2f"),
                ),
                ("HANDOFF_AMQP_TLS_CA", &pki.path("ca.pem")),
            ]),
            "amqp.tls: TLS files are set but the AMQP URL is amqp://, not amqps://".into(),
        ),
    ];
    for (n, (case, env, expected)) in cases.into_iter().enumerate() {
        let (status, stderr) = serve_until_exit(&format!("tls-files-{n}"), &env);
        assert_eq!(status.code(), Some(2), "{case}: {status}\n{stderr}");
        assert!(
            stderr.contains(&expected),
            "{case}: {expected:?} not in:\n{stderr}"
        );
        pki.assert_no_secrets(&format!("handoff serve, {case}"), &stderr);

        // `handoff publish` reads the same variables and refuses the same files.
        let file = pki.dir.join("events.jsonl");
        std::fs::write(&file, release_event("tls-ev-3", "P-7003") + "\n").unwrap();
        let out = Command::new(BIN)
            .arg("publish")
            .arg(&file)
            .envs(env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "publish, {case}: {stderr}");
        assert!(stderr.contains(&expected), "publish, {case}: {stderr}");
        pki.assert_no_secrets(&format!("handoff publish, {case}"), &stderr);
    }
}

/// A URL that is not one (`amqps:` without `//`, a typo) is refused at start-up, exit 2,
/// without its password: lapin's own parser quotes the whole URL, which the service used to
/// log at every reconnection attempt and `publish` used to print.
#[test]
fn a_malformed_url_is_refused_without_printing_its_password() {
    let pki = Pki::new("url");
    let url = format!("amqps:handoff-svc:{SERVICE_PASSWORD}@localhost:5671/%2f");
    let (status, stderr) = serve_until_exit("tls-bad-url", &env(&[("HANDOFF_AMQP_URL", &url)]));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("amqp.url: not an AMQP URL"), "{stderr}");
    pki.assert_no_secrets("handoff serve, malformed URL", &stderr);

    let file = pki.dir.join("events.jsonl");
    std::fs::write(&file, release_event("tls-ev-4", "P-7004") + "\n").unwrap();
    let out = Command::new(BIN)
        .arg("publish")
        .arg(&file)
        .args(["--url", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not an AMQP URL"), "{stderr}");
    pki.assert_no_secrets("handoff publish, malformed URL", &stderr);
}

/// The commands named in the `Commands:` section of a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// `--help` and `-h` of handoff and of every subcommand, at every depth, print no password
/// and no PEM material even with the URL, its password and the TLS files in the environment.
#[test]
fn help_never_prints_a_secret_from_the_environment() {
    let pki = Pki::new("help");
    let mut env = pki.env();
    env.push((
        "HANDOFF_AMQP_URL".into(),
        format!("amqps://handoff-svc:{SERVICE_PASSWORD}@localhost:5671/%2f"),
    ));
    let help = |path: &[String], flag: &str| -> String {
        let out = Command::new(BIN)
            .args(path)
            .arg(flag)
            .envs(env.clone())
            .output()
            .unwrap();
        assert!(out.status.success(), "{path:?} {flag}: {}", out.status);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        pki.assert_no_secrets(&format!("handoff {} {flag}", path.join(" ")), &text);
        text
    };
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = Vec::new();
    while let Some(path) = todo.pop() {
        let long = help(&path, "--help");
        help(&path, "-h");
        for sub in subcommands(&long) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
        seen.push(path.join(" "));
    }
    for expected in ["", "serve", "publish", "report ddor"] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected:?} not in {seen:?}"
        );
    }
    // The environment overrides for TLS are listed by name.
    let serve_help = help(&["serve".to_string()], "--help");
    for name in [
        "HANDOFF_AMQP_TLS_CA",
        "HANDOFF_AMQP_TLS_CERT",
        "HANDOFF_AMQP_TLS_KEY",
    ] {
        assert!(serve_help.contains(name), "{name} not in:\n{serve_help}");
    }
}
