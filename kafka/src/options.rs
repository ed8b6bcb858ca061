//! A Kafka table's options, by Flink's names, read and checked in one place.
//!
//! `'connector'` is `'kafka'` (a topic of events, or of Debezium change events) or
//! `'upsert-kafka'` (a keyed topic read as a changelog: a record is an upsert of its key, a
//! record without a value a delete). `'properties.*'` go to the Kafka client as they are
//! (`'properties.bootstrap.servers'` is required), so SASL and SSL settings work as in Flink.
//! Option names are matched without regard to case, as the stream's other options are;
//! an unknown `scan.*`, `sink.*`, `key.*` or `value.*` option is an error, naming the ones
//! there are.

use std::time::Duration;

use sluice_engine::time::parse_duration;

use crate::{KafkaError, Result};

/// How a record's value (or key) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON object, fields matched to columns by name.
    Json,
    /// One CSV line, fields matched to columns by position.
    Csv,
    /// A Debezium change event (`before`, `after`, `op`).
    DebeziumJson,
    /// The bytes as they are, into the table's one column.
    Raw,
}

impl Format {
    fn parse(option: &str, value: &str) -> Result<Self> {
        match value.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "debezium-json" => Ok(Format::DebeziumJson),
            "raw" => Ok(Format::Raw),
            _ => Err(invalid(
                option,
                value,
                "the formats are 'json', 'csv', 'debezium-json' and 'raw'",
            )),
        }
    }
}

/// Offsets in each partition of a topic, where reading starts (`'scan.startup.mode'`) or
/// ends (`'scan.bounded.mode'`: a bounded table ends at offsets fixed when reading starts, so
/// a `sluice run` over it finishes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offsets {
    /// The partitions' first records (a start only).
    Earliest,
    /// The partitions' ends when reading starts.
    Latest,
    /// The consumer group's committed offsets (`'properties.group.id'`).
    GroupOffsets,
    /// The first record at or after this time (`'scan.*.timestamp-millis'`).
    Timestamp(i64),
    /// Per partition, an offset (`'scan.*.specific-offsets'`).
    SpecificOffsets(Vec<(i32, i64)>),
}

/// What a sink promises (`'sink.delivery-guarantee'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    None,
    AtLeastOnce,
    ExactlyOnce,
}

/// Which of the table's columns a record's value holds (`'value.fields-include'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsInclude {
    All,
    ExceptKey,
}

/// A Kafka table's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// `'connector' = 'upsert-kafka'`.
    pub upsert: bool,
    pub topic: String,
    pub bootstrap_servers: String,
    pub group_id: Option<String>,
    /// Every `'properties.*'` option without its prefix, for the client.
    pub client: Vec<(String, String)>,
    pub value_format: Format,
    pub key_format: Option<Format>,
    pub key_fields: Vec<String>,
    pub value_fields_include: FieldsInclude,
    pub startup: Offsets,
    /// Where a bounded table ends; `None` for an unbounded one.
    pub bounded: Option<Offsets>,
    /// A partition without records for this long does not hold the watermark back.
    pub idle_timeout: Option<Duration>,
    pub delivery: DeliveryGuarantee,
    pub transactional_id_prefix: Option<String>,
    /// Where records that cannot be decoded are also written.
    pub deadletter_topic: Option<String>,
}

/// The options this module reads, besides `'properties.*'`.
const KNOWN: &[&str] = &[
    "connector",
    "topic",
    "format",
    "value.format",
    "key.format",
    "key.fields",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.startup.specific-offsets",
    "scan.bounded.mode",
    "scan.bounded.timestamp-millis",
    "scan.bounded.specific-offsets",
    "scan.watermark.idle-timeout",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
    "errors.deadletter.topic",
];

/// Prefixes of options that belong to the connector: an unknown one of these is a mistake.
const OWNED_PREFIXES: &[&str] = &["scan.", "sink.", "key.", "value."];

impl KafkaOptions {
    /// The Kafka options in a table's `options`, or `None` when its connector is not Kafka.
    pub fn parse(options: &[(String, String)]) -> Result<Option<Self>> {
        let get = |name: &str| {
            options
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        };
        let upsert = match get("connector").map(str::to_ascii_lowercase).as_deref() {
            Some("kafka") => false,
            Some("upsert-kafka") => true,
            _ => return Ok(None),
        };
        for (key, _) in options {
            let lower = key.to_ascii_lowercase();
            if OWNED_PREFIXES.iter().any(|p| lower.starts_with(p))
                && !KNOWN.contains(&lower.as_str())
            {
                return Err(KafkaError::Option(format!(
                    "unknown Kafka option '{key}'; the Kafka options are {}, and \
                     'properties.*' for the client",
                    KNOWN
                        .iter()
                        .map(|k| format!("'{k}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if get("topic-pattern").is_some() {
            return Err(KafkaError::Option(
                "option 'topic-pattern' is not supported: name one topic with 'topic'".into(),
            ));
        }
        let topic = required(get("topic"), "topic")?;
        let client: Vec<(String, String)> = options
            .iter()
            .filter(|(key, _)| key.to_ascii_lowercase().starts_with("properties."))
            .map(|(key, value)| (key["properties.".len()..].to_string(), value.clone()))
            .collect();
        let property = |name: &str| {
            client
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let bootstrap_servers = required(
            property("bootstrap.servers").as_deref(),
            "properties.bootstrap.servers",
        )?;
        let group_id = property("group.id");

        let value_format = match (get("format"), get("value.format")) {
            (Some(_), Some(_)) => {
                return Err(KafkaError::Option(
                    "give 'format' or 'value.format', not both".into(),
                ));
            }
            (Some(value), None) => Format::parse("format", value)?,
            (None, Some(value)) => Format::parse("value.format", value)?,
            (None, None) => {
                return Err(KafkaError::Option(
                    "a Kafka table needs 'format' (or 'value.format'): 'json', 'csv', \
                     'debezium-json' or 'raw'"
                        .into(),
                ));
            }
        };
        let key_format = get("key.format")
            .map(|value| Format::parse("key.format", value))
            .transpose()?;
        if key_format == Some(Format::DebeziumJson) {
            return Err(invalid(
                "key.format",
                "debezium-json",
                "a key is 'json', 'csv' or 'raw'",
            ));
        }
        let key_fields: Vec<String> = get("key.fields")
            .map(|fields| {
                fields
                    .split(';')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !key_fields.is_empty() && key_format.is_none() {
            return Err(KafkaError::Option(
                "option 'key.fields' needs 'key.format'".into(),
            ));
        }
        if upsert && key_format.is_none() {
            return Err(KafkaError::Option(
                "an 'upsert-kafka' table needs 'key.format' (its PRIMARY KEY is the record key)"
                    .into(),
            ));
        }
        let value_fields_include = match get("value.fields-include")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("ALL") => FieldsInclude::All,
            Some("EXCEPT_KEY") => FieldsInclude::ExceptKey,
            Some(other) => {
                return Err(invalid(
                    "value.fields-include",
                    other,
                    "it is 'ALL' or 'EXCEPT_KEY'",
                ));
            }
        };

        let startup_given = offsets(&get, "scan.startup", STARTUP_MODES)?;
        let startup = match &startup_given {
            Some(mode) => mode.clone(),
            // upsert-kafka reads the whole topic: a key's latest value may be anywhere in it.
            None if upsert => Offsets::Earliest,
            None => Offsets::GroupOffsets,
        };
        if upsert && startup != Offsets::Earliest {
            return Err(KafkaError::Option(
                "an 'upsert-kafka' table is read from the start of its topic: leave out \
                 'scan.startup.mode'"
                    .into(),
            ));
        }
        let bounded = offsets(&get, "scan.bounded", BOUNDED_MODES)?;
        let uses_group =
            startup_given == Some(Offsets::GroupOffsets) || bounded == Some(Offsets::GroupOffsets);
        if uses_group && group_id.is_none() {
            return Err(KafkaError::Option(
                "'group-offsets' needs the consumer group: set 'properties.group.id'".into(),
            ));
        }
        let idle_timeout = get("scan.watermark.idle-timeout")
            .map(|text| {
                parse_duration(text)
                    .map(|ms| Duration::from_millis(ms.max(0) as u64))
                    .map_err(|e| invalid("scan.watermark.idle-timeout", text, &e))
            })
            .transpose()?;
        let delivery = match get("sink.delivery-guarantee")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("at-least-once") => DeliveryGuarantee::AtLeastOnce,
            Some("none") => DeliveryGuarantee::None,
            Some("exactly-once") => DeliveryGuarantee::ExactlyOnce,
            Some(other) => {
                return Err(invalid(
                    "sink.delivery-guarantee",
                    other,
                    "it is 'none', 'at-least-once' or 'exactly-once'",
                ));
            }
        };
        let transactional_id_prefix = get("sink.transactional-id-prefix").map(str::to_string);
        if delivery == DeliveryGuarantee::ExactlyOnce && transactional_id_prefix.is_none() {
            return Err(KafkaError::Option(
                "'sink.delivery-guarantee' = 'exactly-once' needs \
                 'sink.transactional-id-prefix' (unique to this query: its transactions are \
                 fenced by it)"
                    .into(),
            ));
        }
        Ok(Some(KafkaOptions {
            upsert,
            topic,
            bootstrap_servers,
            group_id,
            client,
            value_format,
            key_format,
            key_fields,
            value_fields_include,
            startup,
            bounded,
            idle_timeout,
            delivery,
            transactional_id_prefix,
            deadletter_topic: get("errors.deadletter.topic").map(str::to_string),
        }))
    }
}

/// The values of `'scan.startup.mode'`, and of `'scan.bounded.mode'`, as Flink has them.
const STARTUP_MODES: &[&str] = &[
    "earliest-offset",
    "latest-offset",
    "group-offsets",
    "timestamp",
    "specific-offsets",
];
const BOUNDED_MODES: &[&str] = &[
    "unbounded",
    "latest-offset",
    "group-offsets",
    "timestamp",
    "specific-offsets",
];

/// The offsets option `'{prefix}.mode'` names, one of `modes` (`None` when it is not given,
/// or is `unbounded`), with its `'{prefix}.timestamp-millis'` or
/// `'{prefix}.specific-offsets'`.
fn offsets<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    prefix: &str,
    modes: &[&str],
) -> Result<Option<Offsets>> {
    let option = format!("{prefix}.mode");
    let Some(mode) = get(&option).map(str::to_ascii_lowercase) else {
        return Ok(None);
    };
    if !modes.contains(&mode.as_str()) {
        let names: Vec<String> = modes.iter().map(|m| format!("'{m}'")).collect();
        return Err(invalid(
            &option,
            &mode,
            &format!("the modes are {}", names.join(", ")),
        ));
    }
    let detail = |name: &str| {
        let option = format!("{prefix}.{name}");
        (get(&option), option)
    };
    Ok(Some(match mode.as_str() {
        "earliest-offset" => Offsets::Earliest,
        "latest-offset" => Offsets::Latest,
        "group-offsets" => Offsets::GroupOffsets,
        "timestamp" => {
            let (value, option) = detail("timestamp-millis");
            Offsets::Timestamp(timestamp(value, &option)?)
        }
        "specific-offsets" => {
            let (value, option) = detail("specific-offsets");
            Offsets::SpecificOffsets(specific_offsets(value, &option)?)
        }
        _ => return Ok(None),
    }))
}

fn invalid(option: &str, value: &str, why: &str) -> KafkaError {
    KafkaError::Option(format!("option '{option}' = '{value}': {why}"))
}

fn required(value: Option<&str>, option: &str) -> Result<String> {
    match value.map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_string()),
        _ => Err(KafkaError::Option(format!(
            "a Kafka table needs option '{option}'"
        ))),
    }
}

fn timestamp(value: Option<&str>, option: &str) -> Result<i64> {
    let text = required(value, option)?;
    text.parse::<i64>().map_err(|_| {
        invalid(
            option,
            &text,
            "milliseconds since 1970-01-01 UTC, a whole number",
        )
    })
}

/// Flink's `'partition:0,offset:42;partition:1,offset:300'`.
fn specific_offsets(value: Option<&str>, option: &str) -> Result<Vec<(i32, i64)>> {
    let text = required(value, option)?;
    let bad = || {
        invalid(
            option,
            &text,
            "expected 'partition:P,offset:O' entries separated by ';'",
        )
    };
    text.split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (partition, offset) = entry.split_once(',').ok_or_else(bad)?;
            let partition = labelled(partition, "partition")
                .and_then(|text| text.parse::<i32>().ok())
                .ok_or_else(bad)?;
            let offset = labelled(offset, "offset")
                .and_then(|text| text.parse::<i64>().ok())
                .ok_or_else(bad)?;
            if partition < 0 || offset < 0 {
                return Err(bad());
            }
            Ok((partition, offset))
        })
        .collect()
}

/// The value of `name:value`.
fn labelled<'a>(part: &'a str, name: &str) -> Option<&'a str> {
    part.trim()
        .strip_prefix(name)
        .and_then(|rest| rest.trim_start().strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("connector", "kafka"),
            ("topic", "bids"),
            ("properties.bootstrap.servers", "127.0.0.1:9092"),
            ("format", "json"),
        ]
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Option<KafkaOptions>> {
        KafkaOptions::parse(&options(pairs))
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        match parse(pairs) {
            Err(error) => error.to_string(),
            Ok(parsed) => format!("parsed: {parsed:?}"),
        }
    }

    #[test]
    fn other_connectors_are_not_kafka() {
        assert_eq!(parse(&[("format", "debezium-json")]).ok(), Some(None));
        assert_eq!(parse(&[("connector", "filesystem")]).ok(), Some(None));
    }

    #[test]
    fn flinks_ddl_reads_as_written() {
        let mut pairs = base();
        pairs.extend([
            ("properties.group.id", "sluice"),
            ("properties.security.protocol", "SASL_SSL"),
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", "1700000000000"),
            ("scan.bounded.mode", "latest-offset"),
            ("scan.watermark.idle-timeout", "5 s"),
            ("key.format", "raw"),
            ("key.fields", "auction; bidder"),
            ("value.fields-include", "EXCEPT_KEY"),
        ]);
        let parsed = parse(&pairs).ok().flatten();
        let Some(parsed) = parsed else {
            panic!("{}", error(&pairs));
        };
        assert_eq!(parsed.topic, "bids");
        assert_eq!(parsed.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(parsed.group_id.as_deref(), Some("sluice"));
        assert_eq!(
            parsed.client,
            vec![
                (
                    "bootstrap.servers".to_string(),
                    "127.0.0.1:9092".to_string()
                ),
                ("group.id".to_string(), "sluice".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ]
        );
        assert_eq!(parsed.value_format, Format::Json);
        assert_eq!(parsed.key_format, Some(Format::Raw));
        assert_eq!(parsed.key_fields, vec!["auction", "bidder"]);
        assert_eq!(parsed.value_fields_include, FieldsInclude::ExceptKey);
        assert_eq!(parsed.startup, Offsets::Timestamp(1_700_000_000_000));
        assert_eq!(parsed.bounded, Some(Offsets::Latest));
        assert_eq!(parsed.idle_timeout, Some(Duration::from_secs(5)));
        assert_eq!(parsed.delivery, DeliveryGuarantee::AtLeastOnce);
    }

    #[test]
    fn specific_offsets_are_flinks_list() {
        let mut pairs = base();
        pairs.extend([
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:42;partition:1,offset:300",
            ),
        ]);
        assert_eq!(
            parse(&pairs).ok().flatten().map(|p| p.startup),
            Some(Offsets::SpecificOffsets(vec![(0, 42), (1, 300)]))
        );
        let mut bad = base();
        bad.extend([
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "0:42"),
        ]);
        assert_eq!(
            error(&bad),
            "option 'scan.startup.specific-offsets' = '0:42': expected \
             'partition:P,offset:O' entries separated by ';'"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let without = |name: &str| {
            base()
                .into_iter()
                .filter(|(k, _)| *k != name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            error(&without("topic")),
            "a Kafka table needs option 'topic'"
        );
        assert_eq!(
            error(&without("properties.bootstrap.servers")),
            "a Kafka table needs option 'properties.bootstrap.servers'"
        );
        assert!(error(&without("format")).starts_with("a Kafka table needs 'format'"));
        let mut unknown = base();
        unknown.push(("scan.startup.mod", "earliest-offset"));
        assert!(error(&unknown).starts_with("unknown Kafka option 'scan.startup.mod'; "));
        let mut mode = base();
        mode.push(("scan.startup.mode", "earliest"));
        assert!(error(&mode).starts_with("option 'scan.startup.mode' = 'earliest': the modes"));
        let mut group = base();
        group.push(("scan.startup.mode", "group-offsets"));
        assert_eq!(
            error(&group),
            "'group-offsets' needs the consumer group: set 'properties.group.id'"
        );
        let mut exactly = base();
        exactly.push(("sink.delivery-guarantee", "exactly-once"));
        assert!(error(&exactly).contains("needs 'sink.transactional-id-prefix'"));
        let mut format = base();
        format[3] = ("format", "avro");
        assert_eq!(
            error(&format),
            "option 'format' = 'avro': the formats are 'json', 'csv', 'debezium-json' and 'raw'"
        );
    }

    #[test]
    fn upsert_kafka_needs_a_key_and_reads_from_the_start() {
        let mut pairs = base();
        pairs[0] = ("connector", "upsert-kafka");
        assert!(error(&pairs).contains("needs 'key.format'"));
        pairs.push(("key.format", "json"));
        let parsed = parse(&pairs).ok().flatten();
        assert_eq!(
            parsed.map(|p| (p.upsert, p.startup)),
            Some((true, Offsets::Earliest))
        );
        pairs.push(("scan.startup.mode", "latest-offset"));
        assert!(error(&pairs).contains("read from the start of its topic"));
    }
}
