//! RabbitMQ plumbing of the live service: connecting, declaring the topology, and the
//! properties of the messages it publishes.
//!
//! The topology here is the one shipped in `deploy/rabbitmq/definitions.json`; a test
//! checks that the two agree.

use handoff_core::authz::Readers;
use handoff_core::model::EventType;
use lapin::options::{
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::edge::reason::DeadLetterReason;
use crate::live::config;

/// The content type of every message in and out (ICD section 1).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// Header naming why an inbound message was dead-lettered (a reason code).
pub(crate) const REASON_HEADER: &str = "x-handoff-reason";
/// Header with the specific explanation behind the reason code.
pub(crate) const DETAIL_HEADER: &str = "x-handoff-detail";
/// Header with the `user-id` the dead-lettered message was published with, if any.
pub(crate) const USER_HEADER: &str = "x-handoff-user-id";
/// Header on a dead letter recomputed from the journal after a crash or restart: the
/// AMQP user it came with is not journaled, so this names the agency that sends such an
/// event (`authz::usual_sender`) instead, and [`RECOVERED_HEADER`] says so.
pub(crate) const AGENCY_HEADER: &str = "x-handoff-agency";
/// Header (`true`) on a dead letter recomputed from the journal rather than taken from
/// the delivery itself: its body is the journaled event (with `handoffreceived`).
pub(crate) const RECOVERED_HEADER: &str = "x-handoff-recovered";

/// Opens a connection named `name` (the name shows in RabbitMQ's management UI). With an
/// `amqps://` URL the connection uses TLS with `tls`: its CA trusted besides the platform's
/// roots, and its client certificate presented when the broker asks for one.
pub async fn connect(
    url: &str,
    tls: &config::TlsMaterial,
    name: &str,
) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_with_config(url, properties, tls.0.clone(), runtime).await
}

/// The TLS error behind a failed connection, when it is one: the broker's certificate is
/// not trusted, the broker refused or required a client certificate, or the port does not
/// speak TLS. Reconnecting cannot mend any of these.
pub(crate) fn tls_failure(e: &lapin::Error) -> Option<&rustls::Error> {
    let lapin::ErrorKind::IOError(io) = e.kind() else {
        return None;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = io.get_ref().map(|e| e as _);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        source = e.source();
    }
    None
}

/// A channel with publisher confirms turned on.
pub async fn confirmed_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// A channel for consuming, with at most `prefetch` unacknowledged deliveries.
pub async fn consuming_channel(conn: &Connection, prefetch: u16) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    Ok(ch)
}

/// Where an agency is told: its queue is this prefix and its name (`agency.bop`,
/// `agency.ice`, `agency.<jurisdiction_id>`), as deploy/rabbitmq/definitions.json and
/// deploy/rabbitmq/add-jurisdiction.py make them.
pub(crate) const AGENCY_QUEUE_PREFIX: &str = "agency.";

/// Keeps of `configured` the agencies whose queue exists, and names the others. A passive
/// declaration needs no permission; the broker answers one for a missing queue by
/// closing the channel with 404, so a fresh channel follows each miss.
pub(crate) async fn existing_readers(
    conn: &Connection,
    configured: &Readers,
) -> lapin::Result<(Readers, Vec<String>)> {
    let mut ch = conn.create_channel().await?;
    let mut missing = Vec::new();
    for name in configured.names() {
        let queue = format!("{AGENCY_QUEUE_PREFIX}{name}");
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match ch
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404) =>
            {
                missing.push(name.to_owned());
                ch = conn.create_channel().await?;
            }
            Err(e) => return Err(e),
        }
    }
    let _ = ch.close(200, "checked".into()).await;
    let mut found = configured.clone();
    found.retain(|n| !missing.iter().any(|m| m == n));
    Ok((found, missing))
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn table(entries: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    t
}

/// Declares exchanges, queues and bindings (idempotent: RabbitMQ accepts a declaration
/// equal to what exists, and refuses one that differs, which is then a start-up error).
pub async fn declare_topology(ch: &Channel, c: &config::Amqp) -> lapin::Result<()> {
    let queue_type = c.queue_type.as_str();
    let queue = |name: &str, extra: &[(&str, &str)]| {
        let mut args = vec![("x-queue-type", queue_type)];
        args.extend_from_slice(extra);
        let name: ShortString = name.into();
        let args = table(&args);
        async move {
            ch.queue_declare(
                name,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await
        }
    };
    let bind = |q: &str, x: &str, key: &str| {
        ch.queue_bind(
            q.into(),
            x.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
    };

    ch.exchange_declare(
        c.dead_letter_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable(),
        FieldTable::default(),
    )
    .await?;
    queue(&c.dead_letter_queue, &[]).await?;
    // `#`, not one binding per `DeadLetterReason`: RabbitMQ itself dead-letters to this
    // exchange too (the inbound queue's `x-dead-letter-exchange`), with the event type
    // as routing key, and those messages must not be dropped either.
    bind(&c.dead_letter_queue, &c.dead_letter_exchange, "#").await?;

    ch.exchange_declare(
        c.unrouted_exchange.as_str().into(),
        ExchangeKind::Fanout,
        durable(),
        FieldTable::default(),
    )
    .await?;
    queue(&c.unrouted_queue, &[]).await?;
    bind(&c.unrouted_queue, &c.unrouted_exchange, "").await?;

    ch.exchange_declare(
        c.decisions_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable(),
        table(&[("alternate-exchange", &c.unrouted_exchange)]),
    )
    .await?;

    ch.exchange_declare(
        c.events_exchange.as_str().into(),
        ExchangeKind::Topic,
        durable(),
        FieldTable::default(),
    )
    .await?;
    queue(
        &c.queue,
        &[("x-dead-letter-exchange", c.dead_letter_exchange.as_str())],
    )
    .await?;
    for t in EventType::NAMES {
        bind(&c.queue, &c.events_exchange, t).await?;
    }
    Ok(())
}

/// The header RabbitMQ routes by besides the routing key, and removes before delivery
/// (sender-selected distribution): an array of long strings, case-sensitive.
pub(crate) const BCC_HEADER: &str = "BCC";

/// Properties of a published decision: persistent, typed, and identified by the
/// decision id so that consumers can deduplicate a republished decision; and a `BCC`
/// header of its parties' keys (ICD section 4), so that one publish reaches each party's
/// queue and no party sees who else was told.
pub(crate) fn decision_properties(
    id: &str,
    decision_type: &str,
    parties: &[String],
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if !parties.is_empty() {
        let keys: Vec<AMQPValue> = parties
            .iter()
            .map(|k| AMQPValue::LongString(LongString::from(k.as_str())))
            .collect();
        headers.insert(BCC_HEADER.into(), AMQPValue::FieldArray(keys.into()));
    }
    BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(id.into())
        .with_type(decision_type.into())
        .with_app_id("handoff".into())
        .with_headers(headers)
}

/// The header of a decision parked for its parties that have no queue: their keys.
pub(crate) const UNREACHED_HEADER: &str = "x-handoff-unreached";

/// Properties of a decision's copy parked in the unrouted exchange for the parties that
/// have no queue: a decision's own, with those parties' keys in [`UNREACHED_HEADER`]
/// instead of the `BCC` (so that the operator who reads it knows whom to tell).
pub(crate) fn unreached_properties(
    id: &str,
    decision_type: &str,
    unreached: &[&str],
) -> BasicProperties {
    let keys: Vec<AMQPValue> = unreached
        .iter()
        .map(|k| AMQPValue::LongString(LongString::from(*k)))
        .collect();
    let mut headers = FieldTable::default();
    headers.insert(UNREACHED_HEADER.into(), AMQPValue::FieldArray(keys.into()));
    decision_properties(id, decision_type, &[]).with_headers(headers)
}

/// Properties of a dead-lettered message: the original headers and identifying
/// properties, persistent, with the reason, its explanation and the original user-id
/// added as headers.
pub(crate) fn dead_letter_properties(
    original: &BasicProperties,
    reason: DeadLetterReason,
    detail: &str,
) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason.as_str())),
    );
    // Headers are bounded; a schema message is short, but never let one grow a header.
    let detail: String = detail.chars().take(1000).collect();
    headers.insert(
        DETAIL_HEADER.into(),
        AMQPValue::LongString(LongString::from(detail)),
    );
    // The original user-id is kept as a header: RabbitMQ refuses a user-id other than the
    // service's own on what the service publishes.
    if let Some(user) = original.user_id() {
        headers.insert(
            USER_HEADER.into(),
            AMQPValue::LongString(LongString::from(user.as_str())),
        );
    }
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(v) = original.content_type() {
        props = props.with_content_type(v.clone());
    }
    if let Some(v) = original.message_id() {
        props = props.with_message_id(v.clone());
    }
    if let Some(v) = original.kind() {
        props = props.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        props = props.with_app_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        props = props.with_timestamp(*v);
    }
    props
}

/// Properties of a dead letter recomputed from the journal (a rules' refusal whose dead
/// letter was not confirmed before a crash): persistent, with the reason, its explanation,
/// the agency that sends such an event, and `x-handoff-recovered: true`. There is no
/// `x-handoff-user-id`: the journal does not record the AMQP user, and the header must not
/// claim a sender nobody saw.
pub(crate) fn recovered_dead_letter_properties(
    reason: DeadLetterReason,
    detail: &str,
    agency: &str,
    message_id: &str,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason.as_str())),
    );
    let detail: String = detail.chars().take(1000).collect();
    headers.insert(
        DETAIL_HEADER.into(),
        AMQPValue::LongString(LongString::from(detail)),
    );
    headers.insert(
        AGENCY_HEADER.into(),
        AMQPValue::LongString(LongString::from(agency)),
    );
    headers.insert(RECOVERED_HEADER.into(), AMQPValue::Boolean(true));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(CONTENT_TYPE.into())
        .with_message_id(message_id.into())
        .with_headers(headers)
}
