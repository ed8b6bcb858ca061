//! Deterministic ticker and card-payment generators for the pattern benchmarks.
//!
//! Ticker: prices of many symbols, each a random walk, one price per event in turn over the
//! symbols at a fixed event rate. Payments: charges on many cards, mostly everyday amounts,
//! some tiny test charges and some large ones, in one of a few countries.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::Xorshift;

/// Event time starts at 2024-01-01 00:00:00 UTC.
const START_MILLIS: i64 = 1_704_067_200_000;

pub const TICKER_DDL: &str = "CREATE TABLE ticker (symbol STRING, price BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)";

/// The V shape: a fall of one or more prices, then a rise.
pub const V_SHAPE: &str = "SELECT * FROM ticker MATCH_RECOGNIZE (
  PARTITION BY symbol ORDER BY ts
  MEASURES A.ts AS start_t, LAST(B.ts) AS bottom_t, LAST(C.ts) AS end_t, MIN(B.price) AS bottom
  AFTER MATCH SKIP TO LAST C
  PATTERN (A B+ C)
  DEFINE B AS B.price < PREV(B.price), C AS C.price > PREV(C.price))";

pub const PAYMENTS_DDL: &str = "CREATE TABLE payments (card STRING, amount BIGINT,
  country STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)";

/// Card fraud in five steps within ten minutes: two test charges, a medium purchase, then two
/// large ones, the last from another country.
pub const CARD_FRAUD: &str = "SELECT * FROM payments MATCH_RECOGNIZE (
  PARTITION BY card ORDER BY ts
  MEASURES FIRST(T1.ts) AS first_t, LAST(L2.ts) AS last_t, SUM(L1.amount) + SUM(L2.amount) AS taken
  PATTERN (T1 T2 M L1 L2) WITHIN INTERVAL '10' MINUTE EMIT TIMEOUTS
  DEFINE T1 AS T1.amount < 5, T2 AS T2.amount < 5, M AS M.amount BETWEEN 20 AND 200,
    L1 AS L1.amount > 500, L2 AS L2.amount > 500 AND L2.country <> PREV(L2.country))";

const COUNTRIES: [&str; 4] = ["KR", "US", "DE", "BR"];

pub fn ticker_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, true),
        Field::new("price", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

pub struct TickerGenerator {
    random: Xorshift,
    symbols: Vec<String>,
    prices: Vec<i64>,
    next_event: u64,
    events_per_second: u64,
}

impl TickerGenerator {
    pub fn new(seed: u64, symbols: usize, events_per_second: u64) -> Self {
        TickerGenerator {
            random: Xorshift(seed.max(1)),
            symbols: (0..symbols).map(|i| format!("S{i:04}")).collect(),
            prices: vec![1_000; symbols],
            next_event: 0,
            events_per_second: events_per_second.max(1),
        }
    }

    pub fn batch(&mut self, rows: usize) -> Result<RecordBatch, ArrowError> {
        let (mut symbols, mut prices, mut times) = (vec![], vec![], vec![]);
        for _ in 0..rows {
            let symbol = (self.next_event % self.symbols.len() as u64) as usize;
            let step = (self.random.draw() % 21) as i64 - 10;
            self.prices[symbol] = (self.prices[symbol] + step).max(1);
            symbols.push(self.symbols[symbol].as_str());
            prices.push(self.prices[symbol]);
            times.push(START_MILLIS + (self.next_event * 1000 / self.events_per_second) as i64);
            self.next_event += 1;
        }
        RecordBatch::try_new(
            ticker_schema(),
            vec![
                Arc::new(StringArray::from(symbols)),
                Arc::new(Int64Array::from(prices)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )
    }
}

pub fn payments_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("card", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]))
}

pub struct PaymentGenerator {
    random: Xorshift,
    cards: Vec<String>,
    next_event: u64,
    events_per_second: u64,
}

impl PaymentGenerator {
    pub fn new(seed: u64, cards: usize, events_per_second: u64) -> Self {
        PaymentGenerator {
            random: Xorshift(seed.max(1)),
            cards: (0..cards).map(|i| format!("C{i:06}")).collect(),
            next_event: 0,
            events_per_second: events_per_second.max(1),
        }
    }

    pub fn batch(&mut self, rows: usize) -> Result<RecordBatch, ArrowError> {
        let (mut cards, mut amounts, mut countries, mut times) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rows {
            let r = self.random.draw();
            cards.push(self.cards[(r % self.cards.len() as u64) as usize].as_str());
            amounts.push(match (r >> 24) % 10 {
                0..=2 => ((r >> 32) % 5) as i64,
                3..=7 => 20 + ((r >> 32) % 180) as i64,
                _ => 500 + ((r >> 32) % 2_000) as i64,
            });
            countries.push(COUNTRIES[((r >> 48) % 16).min(3) as usize]);
            times.push(START_MILLIS + (self.next_event * 1000 / self.events_per_second) as i64);
            self.next_event += 1;
        }
        RecordBatch::try_new(
            payments_schema(),
            vec![
                Arc::new(StringArray::from(cards)),
                Arc::new(Int64Array::from(amounts)),
                Arc::new(StringArray::from(countries)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )
    }
}
