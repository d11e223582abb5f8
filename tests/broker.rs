//! The test broker helper itself: a vhost per test, users, closing connections.
//!
//! Needs RabbitMQ with its management plugin, found as `support/broker.rs` says:
//! `HANDOFF_TEST_AMQP_URL`, else a local broker at 127.0.0.1:5672, else a container.

#[path = "support/broker.rs"]
mod broker;

use std::time::{Duration, Instant};

use broker::Broker;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vhost_carries_messages_with_confirms() {
    let broker = Broker::new("a_vhost_carries_messages_with_confirms");
    assert!(broker.vhost().starts_with("t-a_vhost_carries"));
    let conn = connect(&broker.url()).await;
    assert_eq!(conn.status().vhost().as_str(), broker.vhost());
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                format!("m{i}").as_bytes(),
                BasicProperties::default().with_message_id(format!("id{i}").into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        assert_eq!(confirm.take_message(), None);
    }
    for i in 0..3 {
        let msg = ch
            .basic_get("q".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(msg.delivery.data, format!("m{i}").as_bytes());
        assert_eq!(
            msg.delivery
                .properties
                .message_id()
                .as_ref()
                .unwrap()
                .as_str(),
            format!("id{i}")
        );
    }
    assert!(
        ch.basic_get("q".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none()
    );
    conn.close(200, "OK".into()).await.unwrap();
}

/// A plain test (no runtime of its own around the helper): a user with tags connects to
/// its vhost and may send its own name as user-id.
#[test]
fn a_user_connects_to_its_vhost() {
    let broker = Broker::new("a_user_connects_to_its_vhost");
    let (name, url) = broker.add_user("bop", &["impersonator"]);
    assert_eq!(name, format!("{}.bop", broker.vhost()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = connect(&url).await;
        assert_eq!(conn.status().username(), name);
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            "q".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let confirm = ch
            .basic_publish(
                "".into(),
                "q".into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default().with_user_id(name.clone().into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        let msg = ch
            .basic_get("q".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(
            msg.delivery.properties.user_id().as_ref().unwrap().as_str(),
            name
        );
        conn.close(200, "OK".into()).await.unwrap();
    });
    // Users of another vhost's broker do not leak into this one: a second broker's user
    // has another name.
    let other = Broker::new("a_user_connects_to_its_vhost");
    assert_ne!(other.vhost(), broker.vhost());
    assert_ne!(other.add_user("bop", &[]).0, name);
}

#[tokio::test(flavor = "multi_thread")]
async fn close_connections_closes_a_live_connection() {
    let broker = Broker::new("close_connections_closes_a_live_connection");
    let conn = connect(&broker.url()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert!(conn.status().connected());
    let closed = broker.close_connections(1);
    assert_eq!(closed, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Closing first, then closed (or errored: lapin reports a close it did not ask for).
    while !(conn.status().closed() || conn.status().errored()) {
        assert!(
            Instant::now() < deadline,
            "the connection is still {:?} after the broker closed it",
            conn.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!conn.status().connected());
    assert!(
        ch.queue_declare(
            "q2".into(),
            QueueDeclareOptions::default(),
            FieldTable::default()
        )
        .await
        .is_err()
    );
}

/// The same, from a current-thread tokio test: the helper's blocking calls must not
/// need the caller's runtime.
#[tokio::test]
async fn the_helper_works_in_a_current_thread_runtime() {
    let broker = Broker::new("the_helper_works_in_a_current_thread_runtime");
    let conn = connect(&broker.url()).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        "q".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    // Management stats lag: poll for the ready count.
    let deadline = Instant::now() + Duration::from_secs(15);
    while broker.messages_ready("q") != 1 {
        assert!(Instant::now() < deadline, "messages_ready never reached 1");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(broker.close_connections(1), 1);
}

/// A free port on 127.0.0.1 with nothing listening (free when asked).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Nothing at the AMQP address: the discovery moves on (to a container), it does not fail.
#[test]
fn discovery_moves_on_when_nothing_answers_amqp() {
    let amqp = format!("127.0.0.1:{}", closed_port());
    let mgmt = format!("http://guest:guest@127.0.0.1:{}", closed_port());
    assert_eq!(broker::probe_local(&amqp, &mgmt), Ok(false));
}

/// AMQP answers but the management API does not: the discovery fails and says how to
/// enable the plugin, without the password, instead of falling back to a container.
#[test]
fn discovery_asks_for_the_management_plugin_when_only_amqp_answers() {
    let amqp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let amqp = amqp.local_addr().unwrap().to_string();
    let mgmt = format!("http://guest:s3cret-mgmt@127.0.0.1:{}", closed_port());
    let e = broker::probe_local(&amqp, &mgmt).unwrap_err();
    assert!(
        e.contains("rabbitmq-plugins enable rabbitmq_management"),
        "{e}"
    );
    assert!(!e.contains("s3cret-mgmt"), "{e}");
}

/// AMQP and the management API answer: the broker is used, after a `GET /api/overview`
/// that carries the URL's user and password.
#[test]
fn discovery_uses_a_broker_whose_management_api_answers() {
    use std::io::{BufRead, BufReader, Write};
    let amqp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let amqp = amqp.local_addr().unwrap().to_string();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mgmt = format!("http://guest:guest@{}", http.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = http.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            head.push(line.trim().to_string());
        }
        let body = "{}";
        write!(
            &stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head
    });
    assert_eq!(broker::probe_local(&amqp, &mgmt), Ok(true));
    let head = server.join().unwrap();
    assert_eq!(head[0], "GET /api/overview HTTP/1.1", "{head:?}");
    // guest:guest in base64.
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Basic Z3Vlc3Q6Z3Vlc3Q=")),
        "{head:?}"
    );
}
