//! Reading a Kafka table: every partition of its topic, from the startup offsets to the
//! bounded offsets (or on, for an unbounded table), in one deterministic order.
//!
//! The reader assigns itself all the topic's partitions (no group rebalances: sluice keeps
//! its own positions), each from the offset `'scan.startup.mode'` gives. Records are handed
//! on merged across partitions by (record timestamp, partition, offset), each partition in
//! offset order: a record is handed on only when every partition still being read has one
//! waiting, so the same topic contents give the same order whatever the fetches returned.
//! A bounded table's partition ends at the offset `'scan.bounded.mode'` fixed when reading
//! started; the table ends when all have.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::options::{KafkaOptions, Offsets};
use crate::{KafkaError, Result};

/// How long a request to the broker may take before the reader gives up with an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (milliseconds since 1970), when it has one.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Header names and values (a header without a value has an empty one).
    pub headers: Vec<(String, Vec<u8>)>,
}

struct PartitionRead {
    id: i32,
    /// The offset of the next record to read.
    next: i64,
    /// The bounded table's end offset for this partition (exclusive).
    end: Option<i64>,
    waiting: VecDeque<Record>,
}

impl PartitionRead {
    fn finished(&self) -> bool {
        self.waiting.is_empty() && self.end.is_some_and(|end| self.next >= end)
    }
}

/// A Kafka table's topic, read partition by partition and merged.
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    servers: String,
    /// `'properties.auto.offset.reset'` is `earliest` (or its older names).
    reset_to_earliest: bool,
    partitions: Vec<PartitionRead>,
}

impl TopicReader {
    /// Connects, finds the topic's partitions and their start (and end) offsets, and
    /// assigns them. An unreachable broker or an unknown topic is an error within
    /// [`REQUEST_TIMEOUT`].
    pub fn open(options: &KafkaOptions) -> Result<Self> {
        let mut config = ClientConfig::new();
        for (key, value) in &options.client {
            config.set(key, value);
        }
        if options.group_id.is_none() {
            // The client needs a group for offset requests even when nothing is committed.
            config.set("group.id", format!("sluice-{}", options.topic));
        }
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        let servers = options.bootstrap_servers.clone();
        let consumer: BaseConsumer = config.create().map_err(|e| {
            KafkaError::Client(format!("cannot create a Kafka consumer for {servers}: {e}"))
        })?;
        let topic = options.topic.clone();
        let metadata = consumer
            .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
            .map_err(|e| unreachable(&servers, &e))?;
        let ids: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(found) if found.error().is_none() && !found.partitions().is_empty() => {
                found.partitions().iter().map(|p| p.id()).collect()
            }
            _ => {
                return Err(KafkaError::Client(format!(
                    "topic '{topic}' does not exist on {servers}"
                )));
            }
        };
        let reset_to_earliest = options.client.iter().any(|(key, value)| {
            key.eq_ignore_ascii_case("auto.offset.reset")
                && ["earliest", "smallest", "beginning"]
                    .contains(&value.to_ascii_lowercase().as_str())
        });
        let mut reader = TopicReader {
            consumer,
            topic,
            servers,
            reset_to_earliest,
            partitions: Vec::new(),
        };
        let starts = reader.offsets(&ids, &options.startup, false)?;
        let ends = match &options.bounded {
            Some(mode) => Some(reader.offsets(&ids, mode, true)?),
            None => None,
        };
        let mut assignment = TopicPartitionList::new();
        for (index, &id) in ids.iter().enumerate() {
            let next = starts[index];
            assignment
                .add_partition_offset(&reader.topic, id, Offset::Offset(next))
                .map_err(|e| KafkaError::Client(e.to_string()))?;
            reader.partitions.push(PartitionRead {
                id,
                next,
                end: ends.as_ref().map(|ends| ends[index].max(next)),
                waiting: VecDeque::new(),
            });
        }
        reader.consumer.assign(&assignment).map_err(|e| {
            KafkaError::Client(format!("cannot read topic '{}': {e}", reader.topic))
        })?;
        Ok(reader)
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether a bounded table has been read to its end.
    pub fn finished(&self) -> bool {
        self.partitions.iter().all(PartitionRead::finished)
    }

    /// Up to `limit` records in merge order; empty once a bounded table is finished. Waits
    /// for records as long as a partition still being read has none waiting.
    pub fn next_records(&mut self, limit: usize) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        while records.len() < limit && !self.finished() {
            if self
                .partitions
                .iter()
                .any(|p| p.waiting.is_empty() && !p.finished())
            {
                self.fetch()?;
                continue;
            }
            // Every partition being read has a record waiting: the earliest goes first.
            let next = self
                .partitions
                .iter()
                .enumerate()
                .filter_map(|(index, p)| {
                    p.waiting
                        .front()
                        .map(|r| ((r.timestamp.unwrap_or(i64::MIN), p.id, r.offset), index))
                })
                .min()
                .map(|(_, index)| index);
            let Some(record) = next.and_then(|index| self.partitions[index].waiting.pop_front())
            else {
                break;
            };
            records.push(record);
        }
        Ok(records)
    }

    /// Polls the client once, queueing what comes in its partition.
    fn fetch(&mut self) -> Result<()> {
        let Some(message) = self.consumer.poll(Duration::from_millis(100)) else {
            return self.catch_up();
        };
        let message = message.map_err(|e| {
            KafkaError::Client(format!(
                "reading topic '{}' from {}: {e}",
                self.topic, self.servers
            ))
        })?;
        let Some(partition) = self
            .partitions
            .iter_mut()
            .find(|p| p.id == message.partition())
        else {
            return Ok(());
        };
        // Past a bounded end, or a record already read (a fetch may repeat one): skipped.
        if message.offset() < partition.next
            || partition.end.is_some_and(|end| message.offset() >= end)
        {
            return Ok(());
        }
        partition.next = message.offset() + 1;
        partition.waiting.push_back(Record {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        });
        Ok(())
    }

    /// With nothing more fetched: a partition whose consumer position has reached its end
    /// is finished, though offsets before the end carried no record (transaction markers,
    /// compacted records).
    fn catch_up(&mut self) -> Result<()> {
        let positions = self
            .consumer
            .position()
            .map_err(|e| KafkaError::Client(format!("reading topic '{}': {e}", self.topic)))?;
        for partition in &mut self.partitions {
            let Some(end) = partition.end else {
                continue;
            };
            if let Some(Offset::Offset(position)) = positions
                .find_partition(&self.topic, partition.id)
                .map(|element| element.offset())
                && position >= end
            {
                partition.next = partition.next.max(end);
            }
        }
        Ok(())
    }

    /// Per partition of `ids`, the offset `mode` gives for where reading starts, or (with
    /// `end`) where a bounded table ends. A partition `mode` gives none for starts at its
    /// first record (a group's uncommitted partition: as `'properties.auto.offset.reset'`
    /// says) and ends at its end.
    fn offsets(&self, ids: &[i32], mode: &Offsets, end: bool) -> Result<Vec<i64>> {
        let marks = self.watermarks(ids)?;
        let otherwise = |(low, high): (i64, i64)| if end { high } else { low };
        Ok(match mode {
            Offsets::Earliest => marks.iter().map(|(low, _)| *low).collect(),
            Offsets::Latest => marks.iter().map(|(_, high)| *high).collect(),
            Offsets::Timestamp(at) => self.offsets_at(ids, *at, &marks)?,
            Offsets::SpecificOffsets(offsets) => ids
                .iter()
                .zip(&marks)
                .map(|(id, marks)| {
                    offsets
                        .iter()
                        .find(|(partition, _)| partition == id)
                        .map_or(otherwise(*marks), |(_, offset)| *offset)
                })
                .collect(),
            Offsets::GroupOffsets => self
                .committed(ids)?
                .iter()
                .zip(&marks)
                .map(|(committed, &(low, high))| match committed {
                    Some(offset) => *offset,
                    None if end => high,
                    None => self.reset_offset(low, high),
                })
                .collect(),
        })
    }

    /// Where a partition without a committed offset starts: Kafka's
    /// `'properties.auto.offset.reset'` (`latest` unless set).
    fn reset_offset(&self, low: i64, high: i64) -> i64 {
        if self.reset_to_earliest { low } else { high }
    }

    /// Each partition's low and high watermark offsets.
    fn watermarks(&self, ids: &[i32]) -> Result<Vec<(i64, i64)>> {
        ids.iter()
            .map(|&id| {
                self.consumer
                    .fetch_watermarks(&self.topic, id, REQUEST_TIMEOUT)
                    .map_err(|e| unreachable(&self.servers, &e))
            })
            .collect()
    }

    /// Per partition, the first offset whose record time is at or after `at` (the high
    /// watermark when there is none).
    fn offsets_at(&self, ids: &[i32], at: i64, marks: &[(i64, i64)]) -> Result<Vec<i64>> {
        let mut query = TopicPartitionList::new();
        for &id in ids {
            query
                .add_partition_offset(&self.topic, id, Offset::Offset(at))
                .map_err(|e| KafkaError::Client(e.to_string()))?;
        }
        let found = self
            .consumer
            .offsets_for_times(query, REQUEST_TIMEOUT)
            .map_err(|e| unreachable(&self.servers, &e))?;
        Ok(ids
            .iter()
            .zip(marks)
            .map(|(&id, (_, high))| {
                match found
                    .find_partition(&self.topic, id)
                    .map(|element| element.offset())
                {
                    Some(Offset::Offset(offset)) if offset >= 0 => offset,
                    _ => *high,
                }
            })
            .collect())
    }

    /// Per partition, the consumer group's committed offset.
    fn committed(&self, ids: &[i32]) -> Result<Vec<Option<i64>>> {
        let mut query = TopicPartitionList::new();
        for &id in ids {
            query.add_partition(&self.topic, id);
        }
        let found = self
            .consumer
            .committed_offsets(query, REQUEST_TIMEOUT)
            .map_err(|e| unreachable(&self.servers, &e))?;
        Ok(ids
            .iter()
            .map(|&id| {
                match found
                    .find_partition(&self.topic, id)
                    .map(|element| element.offset())
                {
                    Some(Offset::Offset(offset)) if offset >= 0 => Some(offset),
                    _ => None,
                }
            })
            .collect())
    }
}

fn unreachable(servers: &str, error: &rdkafka::error::KafkaError) -> KafkaError {
    KafkaError::Client(format!(
        "Kafka at {servers} did not answer within {} s: {error}",
        REQUEST_TIMEOUT.as_secs()
    ))
}
