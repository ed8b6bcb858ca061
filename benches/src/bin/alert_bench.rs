//! Search on streams: listings matched against N registered alerts, through the alert
//! index and by evaluating every alert on every listing (the same compiled conditions).
//!
//!   alert_bench ALERTS [EVENTS] [BATCH]
//!
//! Alerts have the shape people write (see [`alert`]): 2 to 7 conjuncts over 8 columns,
//! equalities, `IN`, ranges, a prefix, a boolean, one in ten with an OR. They are registered
//! through SQL, as one request of `CREATE ALERT` statements, and run by the engine's alert
//! query over batches of BATCH listings (4 096 unless given). Prints the registration
//! time (and how long of it holds the session, as a server's publishes would wait), the
//! memory the alerts take, events per second through the engine, and, for the
//! same conditions in a bare index, events per second through the index and testing every
//! alert on every row (on a sample, as it is slow): each alert on a whole batch at once,
//! and each row on its own, every alert on it. Also times `SHOW ALERTS` and dropping one
//! request's worth of alerts.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::SessionContext;
use sluice_alerts::{AlertIndex, Unindexed, compile_coerced};
use sluice_benches::{Xorshift, count_argument, main_of, process_memory_kib};
use sluice_sql::{Session, parse_statements};

/// Cities listings are in; each has `DISTRICTS` districts.
const CITIES: u64 = 60;
const DISTRICTS: u64 = 40;
const KINDS: [&str; 3] = ["flat", "house", "studio"];
const WORDS: [&str; 8] = [
    "Sunny",
    "Quiet",
    "Bright",
    "Cosy",
    "Modern",
    "Spacious",
    "Renovated",
    "Charming",
];
const LISTINGS: &str = "listings";
/// Alerts per registration request: about 600 KB of SQL, under the server's 1 MiB lines.
const ALERTS_PER_REQUEST: usize = 5_000;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("district", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, true),
        Field::new("rooms", DataType::Int32, true),
        Field::new("price", DataType::Int64, true),
        Field::new("area", DataType::Float64, true),
        Field::new("title", DataType::Utf8, true),
        Field::new("garden", DataType::Boolean, true),
    ]))
}

const CREATE_STREAM: &str = "CREATE STREAM listings (city STRING, district STRING, \
    kind STRING, rooms INT, price BIGINT, area DOUBLE, title STRING, garden BOOLEAN)";

fn pick<'a>(random: &mut Xorshift, items: &[&'a str]) -> &'a str {
    items[(random.draw() % items.len() as u64) as usize]
}

fn city(random: &mut Xorshift) -> String {
    format!("city{:02}", random.draw() % CITIES)
}

fn district(random: &mut Xorshift, city: &str) -> String {
    format!("{city}-{}", random.draw() % DISTRICTS)
}

/// An alert as someone looking for a home writes it: a city (one in ten: either of two),
/// usually a budget, and a few of: districts, kind, rooms, area, a word the title starts
/// with, a garden. 2 to 7 conjuncts.
fn alert(random: &mut Xorshift) -> String {
    let home = city(random);
    let mut conjuncts = vec![if random.draw().is_multiple_of(10) {
        format!("(city = '{home}' OR city = '{}')", city(random))
    } else {
        format!("city = '{home}'")
    }];
    let mut maybe = |percent: u64, conjunct: &mut dyn FnMut(&mut Xorshift) -> String| {
        if random.draw() % 100 < percent {
            conjuncts.push(conjunct(random));
        }
    };
    maybe(90, &mut |random| {
        // A budget: from about 20% below it to the budget.
        let budget = 150_000 + 25_000 * (random.draw() % 40);
        format!("price BETWEEN {} AND {budget}", budget / 5 * 4)
    });
    maybe(50, &mut |random| {
        let districts: Vec<String> = (0..1 + random.draw() % 3)
            .map(|_| format!("'{}'", district(random, &home)))
            .collect();
        format!("district IN ({})", districts.join(", "))
    });
    maybe(40, &mut |random| {
        format!("kind = '{}'", pick(random, &KINDS))
    });
    maybe(40, &mut |random| {
        format!("rooms >= {}", 1 + random.draw() % 4)
    });
    maybe(25, &mut |random| {
        let low = 30 + random.draw() % 60;
        format!("area BETWEEN {low} AND {}", low + 20 + random.draw() % 60)
    });
    maybe(10, &mut |random| {
        format!("title LIKE '{}%'", pick(random, &WORDS))
    });
    maybe(10, &mut |_| "garden".to_string());
    conjuncts.join(" AND ")
}

fn listings(random: &mut Xorshift, count: usize) -> Result<RecordBatch, String> {
    let city_of = city;
    let mut city = Vec::with_capacity(count);
    let mut district_column = Vec::with_capacity(count);
    let mut kind = Vec::with_capacity(count);
    let mut rooms = Vec::with_capacity(count);
    let mut price = Vec::with_capacity(count);
    let mut area = Vec::with_capacity(count);
    let mut title = Vec::with_capacity(count);
    let mut garden = Vec::with_capacity(count);
    for _ in 0..count {
        let c = city_of(random);
        district_column.push(district(random, &c));
        kind.push(pick(random, &KINDS).to_string());
        let r = 1 + (random.draw() % 5) as i32;
        rooms.push(r);
        let a = 20.0 + f64::from(r) * 15.0 + (random.draw() % 30) as f64;
        area.push(a);
        price.push(((a * (2_000 + random.draw() % 6_000) as f64) as i64 / 1000) * 1000);
        title.push(format!(
            "{} {} in {c}",
            pick(random, &WORDS),
            kind.last().map_or("", |k| k)
        ));
        city.push(c);
        garden.push(random.draw().is_multiple_of(4));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(city)),
        Arc::new(StringArray::from(district_column)),
        Arc::new(StringArray::from(kind)),
        Arc::new(Int32Array::from(rooms)),
        Arc::new(Int64Array::from(price)),
        Arc::new(Float64Array::from(area)),
        Arc::new(StringArray::from(title)),
        Arc::new(BooleanArray::from(garden)),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())
}

/// Events per second matching samples of `batches` (their first 256 rows) by testing every
/// alert `how`, for about two seconds, checked against the index; with the events and
/// firings seen.
fn unindexed(
    index: &mut AlertIndex,
    batches: &[RecordBatch],
    how: Unindexed,
) -> Result<(f64, usize, usize), String> {
    let mut rows = 0usize;
    let mut seconds = 0.0;
    let mut fired = 0usize;
    for batch in batches {
        let sample = batch.slice(0, batch.num_rows().min(256));
        let timer = Instant::now();
        let every = index
            .matches_without_index(&sample, how)
            .map_err(|e| e.to_string())?;
        seconds += timer.elapsed().as_secs_f64();
        if every != index.matches(&sample).map_err(|e| e.to_string())? {
            return Err("the index and evaluating every alert disagree".into());
        }
        fired += every.len();
        rows += sample.num_rows();
        if seconds > 2.0 {
            break;
        }
    }
    Ok((rows as f64 / seconds, rows, fired))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let alerts = count_argument(args.next(), 100_000)? as usize;
    let events = count_argument(args.next(), 200_000)? as usize;
    let batch_size = count_argument(args.next(), 4096)?.max(1) as usize;
    let schema = schema();
    let mut random = Xorshift(0xa1e7_5eed);
    let texts: Vec<String> = (0..alerts).map(|_| alert(&mut random)).collect();
    let batches: Vec<RecordBatch> = (0..events.div_ceil(batch_size))
        .map(|_| listings(&mut random, batch_size))
        .collect::<Result<_, _>>()?;

    // Through SQL, as a client registers them: requests of CREATE ALERT statements, each
    // under the server's default line limit.
    let mut session = Session::new();
    session.engine_mut().stop_retaining_history();
    session
        .execute_sql(CREATE_STREAM)
        .map_err(|e| e.to_string())?;
    let requests: Vec<String> = texts
        .chunks(ALERTS_PER_REQUEST)
        .enumerate()
        .map(|(chunk, texts)| {
            texts
                .iter()
                .enumerate()
                .map(|(n, text)| {
                    let n = chunk * ALERTS_PER_REQUEST + n;
                    format!("CREATE ALERT a{n} ON listings WHERE {text};\n")
                })
                .collect()
        })
        .collect();
    // As the server does: each request parsed and compiled apart from the session, checked
    // and applied on it, so only checking and applying hold the session.
    let before = process_memory_kib("VmRSS:");
    let started = Instant::now();
    let mut holding = 0.0;
    let mut longest = 0.0f64;
    for request in &requests {
        let statements = parse_statements(request).map_err(|e| e.to_string())?;
        let timer = Instant::now();
        let group = session.alert_group(statements);
        let group = group.map_err(|e| e.to_string())?;
        let mut held = timer.elapsed().as_secs_f64();
        let compiled = group.compile();
        let timer = Instant::now();
        session
            .apply_alert_group(&group, compiled)
            .map_err(|e| e.to_string())?;
        held += timer.elapsed().as_secs_f64();
        // A server frees the statements apart from the session too.
        drop(group);
        holding += held;
        longest = longest.max(held);
    }
    let registration = started.elapsed().as_secs_f64();
    let memory = process_memory_kib("VmRSS:").saturating_sub(before);
    drop(requests);
    println!("alerts: {alerts}");
    println!(
        "registration (SQL, {ALERTS_PER_REQUEST} per request): {registration:.2} s \
         ({:.1} µs per alert)",
        registration * 1e6 / alerts as f64
    );
    println!(
        "  of it holding the session (checking, applying): {holding:.2} s, at most {:.0} ms \
         per request of {ALERTS_PER_REQUEST}",
        longest * 1e3
    );
    println!(
        "memory: {:.0} bytes per alert (RSS growth)",
        memory as f64 * 1024.0 / alerts as f64
    );

    // Listing every alert holds the session too.
    let timer = Instant::now();
    session
        .execute_sql("SHOW ALERTS")
        .map_err(|e| e.to_string())?;
    println!("SHOW ALERTS: {:.0} ms", timer.elapsed().as_secs_f64() * 1e3);

    // The query running the alerts, batch by batch: firings made and drained.
    let started = Instant::now();
    let mut fired = 0usize;
    let mut rows = 0usize;
    for batch in &batches {
        session
            .engine_mut()
            .append(LISTINGS, batch)
            .map_err(|e| e.to_string())?;
        for (_, results) in session.engine_mut().drain_results() {
            fired += results.iter().map(|r| r.num_rows()).sum::<usize>();
        }
        rows += batch.num_rows();
    }
    let through_engine = rows as f64 / started.elapsed().as_secs_f64();
    println!(
        "engine: {through_engine:.0} events/s, {rows} events, {fired} firings ({:.2} per event)",
        fired as f64 / rows as f64
    );
    // Dropping a request's worth of alerts, as a server would: held for all of it.
    let dropped = ALERTS_PER_REQUEST.min(alerts);
    let drops: String = (0..dropped)
        .map(|n| format!("DROP ALERT a{n};\n"))
        .collect();
    let statements = parse_statements(&drops).map_err(|e| e.to_string())?;
    let timer = Instant::now();
    let group = session.alert_group(statements).map_err(|e| e.to_string())?;
    let compiled = group.compile();
    session
        .apply_alert_group(&group, compiled)
        .map_err(|e| e.to_string())?;
    println!(
        "dropping {dropped} alerts in one request: {:.0} ms",
        timer.elapsed().as_secs_f64() * 1e3
    );
    drop(session);

    // The same conditions in a bare index, to compare with evaluating every one.
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
    let context = SessionContext::new();
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(df_schema.clone()))
            .build(),
    );
    let mut index = AlertIndex::new();
    for text in &texts {
        let expr = context
            .parse_sql_expr(text, &df_schema)
            .and_then(|e| simplifier.coerce(e, &df_schema))
            .map_err(|e| format!("{text}: {e}"))?;
        let compiled = compile_coerced(expr, &schema);
        index.insert(compiled.map_err(|e| e.to_string())?);
    }
    let started = Instant::now();
    let mut fired = 0usize;
    let mut rows = 0usize;
    for batch in &batches {
        fired += index.matches(batch).map_err(|e| e.to_string())?.len();
        rows += batch.num_rows();
    }
    let indexed = rows as f64 / started.elapsed().as_secs_f64();
    println!(
        "index alone: {indexed:.0} events/s, {rows} events, {fired} firings ({:.2} per event)",
        fired as f64 / rows as f64
    );

    // Every alert on every row, on samples of at most about two seconds' work each: each
    // alert on a whole sample at once, then each row on its own.
    let mut every = Vec::new();
    for how in [Unindexed::WholeBatch, Unindexed::RowByRow] {
        let (naive, naive_rows, naive_fired) = unindexed(&mut index, &batches, how)?;
        println!(
            "every alert ({}): {naive:.0} events/s ({naive_rows} events, {naive_fired} firings)",
            match how {
                Unindexed::WholeBatch => "a batch at a time",
                Unindexed::RowByRow => "row by row",
            }
        );
        every.push(naive);
    }
    println!(
        "speed-up of the engine: {:.0}x over every alert a batch at a time, {:.0}x over row by row",
        through_engine / every[0],
        through_engine / every[1]
    );

    Ok(())
}

fn main() -> std::process::ExitCode {
    main_of("alert_bench", run)
}
