//! Writing records to a topic, and creating topics: what a Kafka sink builds on.
//!
//! [`TopicWriter::send`] queues a record with the client (waiting while the client's queue
//! is full, so a slow broker slows the writer rather than growing memory) and
//! [`TopicWriter::flush`] returns once every queued record is acknowledged, or fails with the
//! first delivery error.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::{KafkaError, Result};

/// How long creating a topic or flushing may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One record to write.
#[derive(Debug, Clone, Copy)]
pub struct OutRecord<'a> {
    /// The partition, or `None` for the client's partitioner (by key).
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Milliseconds since 1970; `None` for the time of sending.
    pub timestamp: Option<i64>,
    /// Header names and values.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A producer for records to topics of one cluster.
pub struct TopicWriter {
    producer: BaseProducer,
    servers: String,
}

impl TopicWriter {
    /// A writer to the cluster at `servers`, with further client settings `client`.
    pub fn open(servers: &str, client: &[(String, String)]) -> Result<Self> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", servers);
        for (key, value) in client {
            config.set(key, value);
        }
        let producer: BaseProducer = config.create().map_err(|e| {
            KafkaError::Client(format!("cannot create a Kafka producer for {servers}: {e}"))
        })?;
        Ok(TopicWriter {
            producer,
            servers: servers.to_string(),
        })
    }

    /// Queues `record` for `topic`.
    pub fn send(&self, topic: &str, record: OutRecord<'_>) -> Result<()> {
        let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(partition) = record.partition {
            out = out.partition(partition);
        }
        if let Some(key) = record.key {
            out = out.key(key);
        }
        if let Some(value) = record.value {
            out = out.payload(value);
        }
        if let Some(timestamp) = record.timestamp {
            out = out.timestamp(timestamp);
        }
        if !record.headers.is_empty() {
            let headers =
                record
                    .headers
                    .iter()
                    .fold(OwnedHeaders::new(), |headers, (key, value)| {
                        headers.insert(Header {
                            key,
                            value: Some(*value),
                        })
                    });
            out = out.headers(headers);
        }
        loop {
            match self.producer.send(out) {
                Ok(()) => return Ok(()),
                Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Serve delivery reports until the client has room.
                    self.producer.poll(Duration::from_millis(10));
                    out = back;
                }
                Err((error, _)) => {
                    return Err(KafkaError::Client(format!(
                        "cannot write to topic '{topic}' on {}: {error}",
                        self.servers
                    )));
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self) -> Result<()> {
        self.producer.flush(TIMEOUT).map_err(|e| {
            KafkaError::Client(format!(
                "records to {} were not acknowledged within {} s: {e}",
                self.servers,
                TIMEOUT.as_secs()
            ))
        })
    }
}

/// Creates `topic` with `partitions` partitions on the cluster at `servers` (an existing
/// topic is left as it is).
pub fn create_topic(servers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .map_err(|e| KafkaError::Client(format!("cannot reach Kafka at {servers}: {e}")))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new], &options))
        .map_err(|e| KafkaError::Client(format!("cannot create topic '{topic}': {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::Client(format!(
                    "cannot create topic '{name}': {code}"
                )));
            }
        }
    }
    Ok(())
}
