//! The three-node cluster of `support/cluster.rs` does what the stream journal's tests need
//! of it: a replicated stream survives the SIGKILL of its leader's machine, takes
//! confirmed publishes again on a surviving node, and has all three members back once the
//! killed node is restarted; and nothing of the cluster (processes, epmd registrations,
//! files) outlives it.
//!
//! It starts its own nodes from the local RabbitMQ installation (it never touches the
//! shared broker) and prints its timings (`cargo test --test cluster_smoke -- --nocapture`).
//! It takes 30 to 55 s on a two-core machine, about 20 s of which is the three nodes' boot.

#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use cluster::Cluster;

const QUEUE: &str = "smoke.journal";

/// A channel in confirm mode on a new connection to `url`.
async fn confirm_channel(url: &str) -> Result<(Connection, Channel), lapin::Error> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok((conn, ch))
}

/// Publishes `body` to the stream through the default exchange; whether it was confirmed.
async fn publish(ch: &Channel, body: &str) -> Result<bool, lapin::Error> {
    let confirm = ch
        .basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    Ok(confirm == Confirmation::Ack(None))
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A cluster may be moved to another thread (`spawn_blocking`, a thread of the test's own).
#[allow(dead_code)]
fn a_cluster_is_send() {
    fn send<T: Send>() {}
    send::<Cluster>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_survives_the_loss_of_its_leaders_node() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start("smoke", 3);
    let started = t0.elapsed();
    let names: Vec<String> = (0..cluster.len()).map(|i| cluster.node_name(i)).collect();
    println!(
        "3 nodes booted and clustered in {}: {names:?}",
        secs(started)
    );
    for i in 0..3 {
        assert!(cluster.is_running(i), "node {i}");
    }

    // The stream, declared on node 1 (not the node the others joined).
    let (conn, ch) = confirm_channel(&cluster.url(1)).await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("stream")),
    );
    args.insert("x-initial-cluster-size".into(), AMQPValue::LongInt(3));
    ch.queue_declare(
        QUEUE.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .unwrap();
    let mut confirmed: Vec<String> = Vec::new();
    for n in 0..5 {
        let body = format!("before-{n}");
        assert!(publish(&ch, &body).await.unwrap(), "{body} not confirmed");
        confirmed.push(body);
    }
    let t = Instant::now();
    let leader = poll(Duration::from_secs(30), || {
        (cluster.online_members(QUEUE) == 3)
            .then(|| cluster.leader(QUEUE))
            .flatten()
    })
    .unwrap_or_else(|| {
        panic!(
            "{QUEUE} has no leader with 3 members online: {}",
            cluster.ctl(
                0,
                &["list_queues", "name", "type", "leader", "members", "online"]
            )
        )
    });
    println!(
        "stream {QUEUE}: 5 messages confirmed, leader node {leader} ({}), 3 members online \
         (seen after {})",
        cluster.node_name(leader),
        secs(t.elapsed())
    );

    // The leader's machine dies.
    let t = Instant::now();
    cluster.kill(leader);
    let killed = t.elapsed();
    let killed_at = Instant::now();
    assert!(!cluster.is_running(leader));
    println!(
        "killed node {leader} (SIGKILL of its VM) in {}; its AMQP port refuses connections",
        secs(killed)
    );
    drop(ch);
    drop(conn); // on the dead node

    // Publish on a surviving node: the first second may refuse (406: no local replica yet,
    // or 541 closing the connection); retry.
    let survivor = (0..3).find(|&i| i != leader).unwrap();
    let mut tries = 0;
    let (conn, ch, first_ok) = loop {
        tries += 1;
        let attempt = async {
            let (conn, ch) = confirm_channel(&cluster.url(survivor)).await?;
            let ok = publish(&ch, "after-0").await?;
            Ok::<_, lapin::Error>((conn, ch, ok))
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok((conn, ch, true))) => break (conn, ch, killed_at.elapsed()),
            Ok(Ok((_, _, false))) => println!("  try {tries}: nacked"),
            Ok(Err(e)) => println!("  try {tries}: {e}"),
            Err(_) => println!("  try {tries}: no confirm within 10 s"),
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no publish confirmed on node {survivor} within 30 s of the leader's death"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    confirmed.push("after-0".into());
    println!(
        "first publish confirmed on node {survivor} {} after the kill ({tries} tries)",
        secs(first_ok)
    );
    for n in 1..5 {
        let body = format!("after-{n}");
        assert!(publish(&ch, &body).await.unwrap(), "{body} not confirmed");
        confirmed.push(body);
    }
    let new_leader = poll(Duration::from_secs(30), || {
        cluster.leader(QUEUE).filter(|&l| l != leader)
    })
    .expect("no new leader");
    assert_eq!(cluster.online_members(QUEUE), 2);
    println!(
        "new leader node {new_leader}, 2 members online ({} after the kill)",
        secs(killed_at.elapsed())
    );

    // The machine comes back.
    let t = Instant::now();
    cluster.restart(leader);
    let restarted = t.elapsed();
    assert!(cluster.is_running(leader));
    let t2 = Instant::now();
    poll(Duration::from_secs(60), || {
        (cluster.online_members(QUEUE) == 3).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{QUEUE} has not 3 members online again: {}\nlogs of node {leader}:\n{}",
            cluster.ctl(
                survivor,
                &["list_queues", "name", "leader", "members", "online"]
            ),
            cluster.logs(leader)
        )
    });
    println!(
        "restarted node {leader} in {} (running, listed by cluster_status); 3 members online \
         {} later",
        secs(restarted),
        secs(t2.elapsed())
    );

    // The restarted node's replica has every confirmed message, in order (duplicates of a
    // retried publish allowed).
    let t = Instant::now();
    let (rconn, rch) = confirm_channel(&cluster.url(leader)).await.unwrap();
    rch.basic_qos(100, BasicQosOptions { global: false })
        .await
        .unwrap();
    let mut cargs = FieldTable::default();
    cargs.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString(LongString::from("first")),
    );
    let mut consumer = rch
        .basic_consume(
            QUEUE.into(),
            "smoke-reader".into(),
            BasicConsumeOptions::default(),
            cargs,
        )
        .await
        .unwrap();
    let mut read: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while read.iter().filter(|b| b.as_str() == "after-4").count() == 0 {
        let d = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("read only {read:?} from node {leader} within 30 s"))
            .expect("the consumer ended")
            .unwrap();
        read.push(String::from_utf8_lossy(&d.data).into_owned());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    let mut dedup = read.clone();
    dedup.dedup();
    assert_eq!(dedup, confirmed, "read from the restarted node: {read:?}");
    println!(
        "read all {} messages back in order from the restarted node in {}",
        read.len(),
        secs(t.elapsed())
    );
    let _ = rconn.close(200, "OK".into()).await;
    let _ = conn.close(200, "OK".into()).await;

    // Nothing outlives the cluster.
    let dir = cluster.dir().to_owned();
    let t = Instant::now();
    drop(cluster);
    let dropped = t.elapsed();
    for name in &names {
        let left = cluster::processes_of(name);
        assert!(left.is_empty(), "processes of {name} left: {left:?}");
        let short = name.split('@').next().unwrap();
        assert!(
            !cluster::epmd_names().iter().any(|n| n == short),
            "{name} is still registered in epmd"
        );
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
    println!(
        "dropped in {}: no process, epmd registration or file left; total {}",
        secs(dropped),
        secs(t0.elapsed())
    );
}
