//! Pattern matching throughput: `MATCH_RECOGNIZE` over generated tickers and card payments.
//!
//! `cargo run --release -p sluice-benches --bin cep_bench -- v|fraud|flink-v|prev-v [EVENTS]`
//!
//! (a) `v`: prices of 1 000 symbols (random walks, 100 000 prices per second of event time)
//! through the V-shape pattern `A B+ C`. (b) `fraud`: payments on 100 000 cards (100 000 per
//! second) through a five-step pattern with `WITHIN INTERVAL '10' MINUTE EMIT TIMEOUTS`.
//! (c) `flink-v`: Nexmark bids (100 000 per second, by auction) through Flink's documented
//! V shape, whose conditions read the match (`LAST(PRICE_DOWN.price, 1)`); (d) `prev-v`: the
//! same shape written with `PREV`.
//! Batches of 8192 rows. Prints events/s over the engine's time only (generation excluded),
//! result rows, and the resident set size at each tenth of the run and at its peak.

use std::process::ExitCode;

use sluice_benches::nexmark::{BID_DDL, BidGenerator, FLINK_V_SHAPE, PREV_V_SHAPE};
use sluice_benches::ticker::{
    CARD_FRAUD, PAYMENTS_DDL, PaymentGenerator, TICKER_DDL, TickerGenerator, V_SHAPE,
};
use sluice_benches::{count_argument, feed_and_report, main_of, session_with};

const BATCH_ROWS: usize = 8192;

fn main() -> ExitCode {
    main_of("cep_bench", run)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    let events = count_argument(args.next(), 10_000_000)?;
    let (ddl, query, stream) = match mode.as_deref() {
        Some("v") => (TICKER_DDL, V_SHAPE, "ticker"),
        Some("fraud") => (PAYMENTS_DDL, CARD_FRAUD, "payments"),
        Some("flink-v") => (BID_DDL, FLINK_V_SHAPE, "bid"),
        Some("prev-v") => (BID_DDL, PREV_V_SHAPE, "bid"),
        _ => return Err("usage: cep_bench v|fraud|flink-v|prev-v [EVENTS]".into()),
    };
    let (mut session, _) = session_with(&[ddl], query)?;
    let mut ticker = TickerGenerator::new(7, 1_000, 100_000);
    let mut payments = PaymentGenerator::new(7, 100_000, 100_000);
    let mut bids = BidGenerator::new(7, 100_000);
    feed_and_report(&mut session, stream, events, BATCH_ROWS, |rows| {
        let batch = match stream {
            "ticker" => ticker.batch(rows),
            "payments" => payments.batch(rows),
            _ => bids.batch(rows),
        };
        batch.map_err(|e| e.to_string())
    })
}
