//! The console over a log (`handoff console LOG`), through its HTTP interface: nothing
//! without the credential, every page with it. The live service's console serves the same
//! pages (tested in the browser by `tools/console-e2e`).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/serve.rs"]
mod serve;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn handoff() -> Command {
    Command::new(serve::BIN)
}

/// A console over `log` on a free port; killed when dropped.
struct Console {
    child: Child,
    addr: SocketAddr,
    credential: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn console(log: &str) -> Console {
    let (credential, hash) = serve::console_credential();
    let mut child = handoff()
        .args(["console", log, "--listen", "127.0.0.1:0"])
        .env("HANDOFF_CONSOLE_CREDENTIAL_HASH", hash)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the console printed its address")
            .unwrap();
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so the console never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Console {
        child,
        addr,
        credential,
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request on its own connection.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Answer {
    match cookie {
        Some(c) => request(addr, "GET", path, &[("Cookie", c)], ""),
        None => request(addr, "GET", path, &[], ""),
    }
}

fn login(addr: SocketAddr, credential: &str) -> Answer {
    request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("credential={credential}"),
    )
}

/// The session cookie of a successful login, as `name=value`.
fn session(c: &Console) -> String {
    let a = login(c.addr, &c.credential);
    assert_eq!(a.status, 303, "{}", a.head);
    a.header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

const PAGES: [&str; 6] = [
    "/",
    "/person/P-170001",
    "/person?id=P-170001",
    "/reports/ddor",
    "/reports/capacity?from=2017-01-28T00:00:00Z&to=2017-02-04T00:00:00Z",
    "/nonexistent-but-guarded",
];

#[test]
fn a_request_without_the_credential_gets_401_and_learns_nothing() {
    let c = console("samples/week.jsonl");
    let log = std::fs::read_to_string("samples/week.jsonl").unwrap();
    for path in PAGES {
        for headers in [
            vec![],
            vec![("Cookie", "handoff_console=00000000000000000000000000000000")],
            vec![("Authorization", "Bearer not-the-credential")],
        ] {
            let a = request(c.addr, "GET", path, &headers, "");
            if path == "/nonexistent-but-guarded" {
                assert_eq!(a.status, 404, "{path}");
                continue;
            }
            assert_eq!(a.status, 401, "{path} {headers:?}");
            assert!(
                a.body.contains("name=\"credential\""),
                "{path}: the login form"
            );
            // Not one person id, facility or jurisdiction of the log is in the answer.
            for word in log
                .split('"')
                .filter(|w| w.starts_with("P-") || w.contains("county") || w.starts_with("fci-"))
            {
                assert!(!a.body.contains(word), "{path} revealed {word}");
                assert!(!a.head.contains(word), "{path} revealed {word} in a header");
            }
        }
    }
    let wrong = login(c.addr, "not-the-credential");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.body.contains("not the configured credential"));
}

#[test]
fn with_the_credential_every_page_is_served() {
    let c = console("samples/week.jsonl");
    let cookie = session(&c);

    let board = get(c.addr, "/", Some(&cookie));
    assert_eq!(board.status, 200);
    for section in [
        "id=\"holds\"",
        "id=\"offers\"",
        "id=\"decisions\"",
        "id=\"dead-letters\"",
        "id=\"capacity\"",
        "id=\"role\"",
    ] {
        assert!(board.body.contains(section), "the board has {section}");
    }
    assert!(board.body.contains("offline: a log replayed for audit"));
    assert_eq!(board.header("cache-control"), Some("no-store"));
    assert!(
        board
            .header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );

    let person = get(c.addr, "/person/P-170001", Some(&cookie));
    assert_eq!(person.status, 200);
    assert!(person.body.contains("Person P-170001"));
    assert!(person.body.contains("R1.2"), "the timeline names the rule");
    assert!(person.body.contains("party.ice"), "and who was told");

    let found = get(c.addr, "/person?id=p-170001", Some(&cookie));
    assert_eq!(found.status, 303);
    assert_eq!(found.header("location"), Some("/person/P-170001"));

    let nobody = get(c.addr, "/person/P-999999", Some(&cookie));
    assert_eq!(nobody.status, 404);
    assert!(nobody.body.contains("does not appear in the log"));

    let ddor = get(
        c.addr,
        "/reports/ddor?from=2017-01-28T00:00:00Z&to=2017-02-04T00:00:00Z",
        Some(&cookie),
    );
    assert_eq!(ddor.status, 200);
    assert!(ddor.body.contains("Declined Detainer Outcome Report"));
    assert!(ddor.body.contains("<nav class=\"console\">"));

    let capacity = get(c.addr, "/reports/capacity", Some(&cookie));
    assert_eq!(capacity.status, 200, "the default window");
    assert!(capacity.body.contains("2017-0"), "the window's days");

    let bad = get(c.addr, "/reports/ddor?from=yesterday", Some(&cookie));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("RFC 3339"));

    // The credential itself works for scripts.
    let bearer = request(
        c.addr,
        "GET",
        "/",
        &[("Authorization", &format!("Bearer {}", c.credential))],
        "",
    );
    assert_eq!(bearer.status, 200);

    let out = request(c.addr, "POST", "/logout", &[("Cookie", &cookie)], "");
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        get(c.addr, "/", Some(&cookie)).status,
        401,
        "the session ended"
    );
}

#[test]
fn the_console_refuses_to_start_without_a_credential() {
    let out = handoff()
        .args(["console", "samples/week.jsonl", "--listen", "127.0.0.1:0"])
        .env_remove("HANDOFF_CONSOLE_CREDENTIAL_HASH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("console.credential_hash"), "{err}");
    assert!(err.contains("--hash-credential"), "{err}");
}

#[test]
fn a_short_credential_is_refused() {
    let mut child = handoff()
        .args(["console", "--hash-credential"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
