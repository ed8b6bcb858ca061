//! Deterministic Nexmark-style bid and auction generators.
//!
//! Bids follow the shape of the Nexmark benchmark's `bid` stream (auction, bidder, price,
//! channel, url, date_time, extra): most bids go to a small set of hot auctions and come from
//! hot bidders, prices are skewed towards small amounts, and event time advances at a fixed
//! rate with bounded disorder. The same seed always gives the same bids, batch by batch.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::Xorshift;

/// The DDL of the `bid` stream, with a watermark 4 seconds behind the largest time seen.
pub const BID_DDL: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT,
  channel STRING, url STRING, date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)";

/// Flink's documented V shape (a fall, then a rise, each price compared with the last fall
/// through `LAST(PRICE_DOWN.price, 1)`), over bids by auction.
pub const FLINK_V_SHAPE: &str = "SELECT * FROM bid MATCH_RECOGNIZE (
  PARTITION BY auction ORDER BY date_time
  MEASURES START_ROW.date_time AS start_t, LAST(PRICE_DOWN.date_time) AS bottom_t,
    LAST(PRICE_UP.date_time) AS end_t
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO LAST PRICE_UP
  PATTERN (START_ROW PRICE_DOWN+ PRICE_UP)
  DEFINE
    PRICE_DOWN AS (LAST(PRICE_DOWN.price, 1) IS NULL AND PRICE_DOWN.price < START_ROW.price)
      OR PRICE_DOWN.price < LAST(PRICE_DOWN.price, 1),
    PRICE_UP AS PRICE_UP.price > LAST(PRICE_DOWN.price, 1))";

/// The same shape written with `PREV` (each price against the row before it).
pub const PREV_V_SHAPE: &str = "SELECT * FROM bid MATCH_RECOGNIZE (
  PARTITION BY auction ORDER BY date_time
  MEASURES START_ROW.date_time AS start_t, LAST(PRICE_DOWN.date_time) AS bottom_t,
    LAST(PRICE_UP.date_time) AS end_t
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO LAST PRICE_UP
  PATTERN (START_ROW PRICE_DOWN+ PRICE_UP)
  DEFINE
    PRICE_DOWN AS PRICE_DOWN.price < PREV(PRICE_DOWN.price),
    PRICE_UP AS PRICE_UP.price > PREV(PRICE_UP.price))";

const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const HOT_AUCTIONS: u64 = 100;
const AUCTIONS: u64 = 100_000;
const HOT_BIDDERS: u64 = 1_000;
const BIDDERS: u64 = 1_000_000;
/// Event time starts at 2024-01-01 00:00:00 UTC.
const START_MILLIS: i64 = 1_704_067_200_000;

pub fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

/// Generates bids in batches.
pub struct BidGenerator {
    random: Xorshift,
    next_event: u64,
    events_per_second: u64,
    urls: Vec<String>,
}

impl BidGenerator {
    /// Bids at `events_per_second` of event time, from `seed`.
    pub fn new(seed: u64, events_per_second: u64) -> Self {
        let urls = (0..CHANNELS.len() * 4)
            .map(|i| format!("https://www.nexmark.com/item.htm?query=1&channel_id={i}"))
            .collect();
        BidGenerator {
            random: Xorshift(seed.max(1)),
            next_event: 0,
            events_per_second: events_per_second.max(1),
            urls,
        }
    }

    /// The next `rows` bids.
    pub fn batch(&mut self, rows: usize) -> Result<RecordBatch, ArrowError> {
        let mut auction = Vec::with_capacity(rows);
        let mut bidder = Vec::with_capacity(rows);
        let mut price = Vec::with_capacity(rows);
        let mut channel = Vec::with_capacity(rows);
        let mut url = Vec::with_capacity(rows);
        let mut date_time = Vec::with_capacity(rows);
        let mut extra = Vec::with_capacity(rows);
        for _ in 0..rows {
            let r = self.random.draw();
            let event = self.next_event;
            self.next_event += 1;
            auction.push(if r % 100 < 80 {
                (r >> 8) % HOT_AUCTIONS
            } else {
                HOT_AUCTIONS + (r >> 8) % AUCTIONS
            } as i64);
            let s = self.random.draw();
            bidder.push(if s % 100 < 80 {
                (s >> 8) % HOT_BIDDERS
            } else {
                HOT_BIDDERS + (s >> 8) % BIDDERS
            } as i64);
            // Small prices are common, large ones rare: 1 .. about 10^6 cents.
            let digits = (s >> 32) % 6 + 1;
            price.push(((s >> 40) % 10u64.pow(digits as u32)) as i64 + 1);
            let c = (r >> 40) as usize % CHANNELS.len();
            channel.push(CHANNELS[c]);
            url.push((r >> 44) as usize % self.urls.len());
            let on_time = START_MILLIS + (event * 1000 / self.events_per_second) as i64;
            // Up to 2 s of disorder, inside the 4 s watermark bound.
            date_time.push(on_time - ((r >> 50) % 2000) as i64);
            extra.push((r >> 56) as usize % 8);
        }
        let extras: Vec<String> = (0..8).map(|n| "x".repeat(n * 4)).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(auction)),
            Arc::new(Int64Array::from(bidder)),
            Arc::new(Int64Array::from(price)),
            Arc::new(StringArray::from(channel)),
            Arc::new(StringArray::from_iter_values(
                url.iter().map(|u| self.urls[*u].as_str()),
            )),
            Arc::new(TimestampMillisecondArray::from(date_time)),
            Arc::new(StringArray::from_iter_values(
                extra.iter().map(|e| extras[*e].as_str()),
            )),
        ];
        RecordBatch::try_new(bid_schema(), columns)
    }
}

/// The DDL of the `auction` stream, with the same watermark bound as `bid`.
pub const AUCTION_DDL: &str = "CREATE TABLE auction (id BIGINT, seller BIGINT, category BIGINT,
  date_time TIMESTAMP(3), WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)";

pub fn auction_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]))
}

/// Auctions opened one after another, and bids on the ones opened recently: the workload of
/// an interval join of bids with their auction.
pub struct AuctionBidGenerator {
    random: Xorshift,
    next_auction: u64,
    next_bid: u64,
    auctions_per_second: u64,
    bids_per_auction: u64,
    /// Bids go to one of this many most recent auctions.
    live_auctions: u64,
}

impl AuctionBidGenerator {
    pub fn new(
        seed: u64,
        auctions_per_second: u64,
        bids_per_auction: u64,
        live_auctions: u64,
    ) -> Self {
        AuctionBidGenerator {
            random: Xorshift(seed.max(1)),
            next_auction: 0,
            next_bid: 0,
            auctions_per_second: auctions_per_second.max(1),
            bids_per_auction: bids_per_auction.max(1),
            live_auctions: live_auctions.max(1),
        }
    }

    fn time_of_auction(&self, auction: u64) -> i64 {
        START_MILLIS + (auction * 1000 / self.auctions_per_second) as i64
    }

    /// The next `auctions` auctions, and the bids that come with them, in the same span of
    /// event time (bids in the bid schema, with channel, url and extra left empty).
    pub fn next(&mut self, auctions: usize) -> Result<(RecordBatch, RecordBatch), ArrowError> {
        let first = self.next_auction;
        self.next_auction += auctions as u64;
        let ids: Vec<i64> = (first..self.next_auction).map(|id| id as i64).collect();
        let mut sellers = Vec::with_capacity(auctions);
        let mut categories = Vec::with_capacity(auctions);
        for _ in 0..auctions {
            let r = self.random.draw();
            sellers.push((r % 100_000) as i64);
            categories.push((r >> 20) as i64 % 20);
        }
        let times: Vec<i64> = (first..self.next_auction)
            .map(|id| self.time_of_auction(id))
            .collect();
        let auction_batch = RecordBatch::try_new(
            auction_schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Int64Array::from(sellers)),
                Arc::new(Int64Array::from(categories)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )?;

        let bids = auctions as u64 * self.bids_per_auction;
        let mut auction_ids = Vec::with_capacity(bids as usize);
        let mut bidders = Vec::with_capacity(bids as usize);
        let mut prices = Vec::with_capacity(bids as usize);
        let mut bid_times = Vec::with_capacity(bids as usize);
        for n in 0..bids {
            let r = self.random.draw();
            // A bid at this point of the span, on an auction opened at most `live` before.
            let now = first + n / self.bids_per_auction;
            let back = r % self.live_auctions.min(now + 1);
            auction_ids.push((now - back) as i64);
            bidders.push(((r >> 24) % 1_000_000) as i64);
            prices.push(((r >> 40) % 10_000) as i64 + 1);
            bid_times.push(self.time_of_auction(now) + ((r >> 50) % 100) as i64);
        }
        self.next_bid += bids;
        let empty = StringArray::from(vec![None::<&str>; bids as usize]);
        let bid_batch = RecordBatch::try_new(
            bid_schema(),
            vec![
                Arc::new(Int64Array::from(auction_ids)),
                Arc::new(Int64Array::from(bidders)),
                Arc::new(Int64Array::from(prices)),
                Arc::new(empty.clone()),
                Arc::new(empty.clone()),
                Arc::new(TimestampMillisecondArray::from(bid_times)),
                Arc::new(empty),
            ],
        )?;
        Ok((auction_batch, bid_batch))
    }
}

/// The DDL of the `person` table: people keyed by id, whose rows may be updated.
pub const PERSON_DDL: &str = "CREATE TABLE person (id BIGINT, name STRING, city STRING,
  state STRING, date_time TIMESTAMP(3), PRIMARY KEY (id) NOT ENFORCED)";

/// Nexmark's query 3: who is selling in category 10 in Oregon, Idaho or California.
pub const Q3: &str = "SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')";

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 8] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie",
];
const LAST_NAMES: [&str; 8] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones",
];

pub fn person_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]))
}

/// People and the auctions they open, in Nexmark's proportions (3 auctions per new person):
/// each batch registers new people, moves some earlier ones to another city (an update of
/// the `person` table), and opens auctions by recent sellers in categories 10 to 14.
pub struct PersonAuctionGenerator {
    random: Xorshift,
    next_person: u64,
    next_auction: u64,
    /// Percent of person rows that update an earlier person.
    update_percent: u64,
}

impl PersonAuctionGenerator {
    pub fn new(seed: u64, update_percent: u64) -> Self {
        PersonAuctionGenerator {
            random: Xorshift(seed.max(1)),
            next_person: 0,
            next_auction: 0,
            update_percent,
        }
    }

    /// `persons` person rows (new or updated) and three auctions per new person.
    pub fn next(&mut self, persons: usize) -> Result<(RecordBatch, RecordBatch), ArrowError> {
        let (mut ids, mut names, mut cities, mut states, mut times) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut new_people = 0;
        for _ in 0..persons {
            let r = self.random.draw();
            let id = if self.next_person > 0 && r % 100 < self.update_percent {
                (r >> 8) % self.next_person
            } else {
                new_people += 1;
                self.next_person += 1;
                self.next_person - 1
            };
            ids.push(id as i64);
            let first = FIRST_NAMES[(id % 8) as usize];
            let last = LAST_NAMES[(id / 8 % 8) as usize];
            names.push(format!("{first} {last}"));
            let city = (r >> 16) as usize % US_CITIES.len();
            cities.push(US_CITIES[city]);
            states.push(US_STATES[(r >> 24) as usize % US_STATES.len()]);
            times.push(START_MILLIS + self.next_person as i64 * 10);
        }
        let person_batch = RecordBatch::try_new(
            person_schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(cities)),
                Arc::new(StringArray::from(states)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )?;
        let auctions = new_people * 3;
        let (mut ids, mut sellers, mut categories, mut times) = (vec![], vec![], vec![], vec![]);
        for _ in 0..auctions {
            let r = self.random.draw();
            // Most sellers registered recently; some long ago.
            let window = if r % 10 < 9 { 1_000 } else { self.next_person };
            let back = (r >> 8) % window.clamp(1, self.next_person.max(1));
            ids.push(self.next_auction as i64);
            sellers.push(self.next_person.saturating_sub(1 + back) as i64);
            categories.push(10 + ((r >> 32) % 5) as i64);
            times.push(START_MILLIS + self.next_auction as i64 * 3);
            self.next_auction += 1;
        }
        let auction_batch = RecordBatch::try_new(
            auction_schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Int64Array::from(sellers)),
                Arc::new(Int64Array::from(categories)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ],
        )?;
        Ok((person_batch, auction_batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bids() -> Result<(), ArrowError> {
        let a = BidGenerator::new(42, 10_000).batch(1000)?;
        let b = BidGenerator::new(42, 10_000).batch(1000)?;
        assert_eq!(a, b);
        assert_eq!(a.num_rows(), 1000);
        let c = BidGenerator::new(43, 10_000).batch(1000)?;
        assert_ne!(a, c);
        Ok(())
    }
}
