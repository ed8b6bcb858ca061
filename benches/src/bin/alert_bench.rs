//! Search on streams: listings matched against N registered alerts, through the alert
//! index and by evaluating every alert on every listing (the same compiled conditions).
//!
//!   alert_bench ALERTS [EVENTS]
//!
//! Alerts have the shape people write: 2 to 5 conjuncts over 8 columns (a city, one to three
//! of its 40 districts, a kind, rooms, a price band, an area range, a title prefix, a
//! garden), one in five with an OR of two cities. Each is planned from SQL text as a user's would be. Prints the
//! registration time, the memory the alerts take, and events per second for both ways
//! (the second on a sample, as it is slow).

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
use sluice_benches::{Xorshift, count_argument, main_of, process_memory_kib};
use sluice_cep::alerts::{AlertIndex, compile};

const CITIES: [&str; 12] = [
    "Seoul", "Busan", "Incheon", "Daegu", "Lisbon", "Porto", "Berlin", "Munich", "Hamburg",
    "Austin", "Denver", "Boston",
];
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
/// Districts per city.
const DISTRICTS: u64 = 40;
const BATCH: usize = 4096;

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

fn pick<'a>(random: &mut Xorshift, items: &[&'a str]) -> &'a str {
    items[(random.draw() % items.len() as u64) as usize]
}

fn district(random: &mut Xorshift, city: &str) -> String {
    format!("{city}-{}", random.draw() % DISTRICTS)
}

/// Conjuncts people add to a city, and how often (out of 23) each is picked.
const WEIGHTS: [(u64, u64); 7] = [(0, 8), (1, 4), (2, 2), (3, 5), (4, 2), (5, 1), (6, 1)];

fn alert(random: &mut Xorshift) -> String {
    let city = pick(random, &CITIES);
    let mut conjuncts = vec![if random.draw().is_multiple_of(5) {
        format!("(city = '{city}' OR city = '{}')", pick(random, &CITIES))
    } else {
        format!("city = '{city}'")
    }];
    let extra = 1 + random.draw() % 4;
    let mut options: Vec<(u64, u64)> = WEIGHTS.to_vec();
    for _ in 0..extra {
        let total: u64 = options.iter().map(|(_, w)| w).sum();
        let mut draw = random.draw() % total;
        let at = options
            .iter()
            .position(|(_, w)| {
                let hit = draw < *w;
                draw = draw.saturating_sub(*w);
                hit
            })
            .unwrap_or(0);
        let conjunct = match options.swap_remove(at).0 {
            0 => {
                let districts: Vec<String> = (0..1 + random.draw() % 3)
                    .map(|_| format!("'{}'", district(random, city)))
                    .collect();
                format!("district IN ({})", districts.join(", "))
            }
            1 => format!("kind = '{}'", pick(random, &KINDS)),
            2 => format!("rooms >= {}", 1 + random.draw() % 4),
            3 => {
                // A budget: from about 20% below it to the budget.
                let budget = 150_000 + 25_000 * (random.draw() % 40);
                format!("price BETWEEN {} AND {budget}", budget / 5 * 4)
            }
            4 => {
                let low = 30 + random.draw() % 60;
                format!("area BETWEEN {low} AND {}", low + 20 + random.draw() % 60)
            }
            5 => format!("title LIKE '{}%'", pick(random, &WORDS)),
            _ => "garden".to_string(),
        };
        conjuncts.push(conjunct);
    }
    conjuncts.join(" AND ")
}

fn listings(random: &mut Xorshift, count: usize) -> Result<RecordBatch, String> {
    let mut city = Vec::with_capacity(count);
    let mut district_column = Vec::with_capacity(count);
    let mut kind = Vec::with_capacity(count);
    let mut rooms = Vec::with_capacity(count);
    let mut price = Vec::with_capacity(count);
    let mut area = Vec::with_capacity(count);
    let mut title = Vec::with_capacity(count);
    let mut garden = Vec::with_capacity(count);
    for _ in 0..count {
        let c = pick(random, &CITIES);
        city.push(c.to_string());
        district_column.push(district(random, c));
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

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let alerts = count_argument(args.next(), 100_000)? as usize;
    let events = count_argument(args.next(), 200_000)? as usize;
    let schema = schema();
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
    let context = SessionContext::new();
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(df_schema.clone()))
            .build(),
    );
    let mut random = Xorshift(0xa1e7_5eed);
    let texts: Vec<String> = (0..alerts).map(|_| alert(&mut random)).collect();
    let batches: Vec<RecordBatch> = (0..events.div_ceil(BATCH))
        .map(|_| listings(&mut random, BATCH))
        .collect::<Result<_, _>>()?;
    let before = process_memory_kib("VmRSS:");
    let started = Instant::now();
    let mut index = AlertIndex::new();
    for text in &texts {
        let expr = context
            .parse_sql_expr(text, &df_schema)
            .and_then(|e| simplifier.coerce(e, &df_schema))
            .map_err(|e| format!("{text}: {e}"))?;
        index.insert(compile(&expr, &schema).map_err(|e| e.to_string())?);
    }
    let registration = started.elapsed().as_secs_f64();
    let memory = process_memory_kib("VmRSS:").saturating_sub(before);
    println!("alerts: {alerts}");
    println!(
        "registration: {registration:.2} s ({:.1} µs per alert)",
        registration * 1e6 / alerts as f64
    );
    println!(
        "memory: {:.0} bytes per alert (RSS growth)",
        memory as f64 * 1024.0 / alerts as f64
    );

    let started = Instant::now();
    let mut fired = 0usize;
    let mut rows = 0usize;
    for batch in &batches {
        fired += index.matches(batch).map_err(|e| e.to_string())?.len();
        rows += batch.num_rows();
    }
    let indexed = rows as f64 / started.elapsed().as_secs_f64();
    println!(
        "indexed: {indexed:.0} events/s, {rows} events, {fired} firings ({:.2} per event)",
        fired as f64 / rows as f64
    );

    // Every alert on every row, on a sample of at most about two seconds' work.
    let mut naive_rows = 0usize;
    let mut naive_seconds = 0.0;
    let mut naive_fired = 0usize;
    for batch in &batches {
        let sample = batch.slice(0, 256);
        let timer = Instant::now();
        let every = index
            .matches_without_index(&sample)
            .map_err(|e| e.to_string())?;
        naive_seconds += timer.elapsed().as_secs_f64();
        if every != index.matches(&sample).map_err(|e| e.to_string())? {
            return Err("the index and evaluating every alert disagree".into());
        }
        naive_fired += every.len();
        naive_rows += sample.num_rows();
        if naive_seconds > 2.0 {
            break;
        }
    }
    let naive = naive_rows as f64 / naive_seconds;
    println!("every alert: {naive:.0} events/s ({naive_rows} events, {naive_fired} firings)");
    println!("speed-up: {:.0}x", indexed / naive);
    Ok(())
}

fn main() -> std::process::ExitCode {
    main_of("alert_bench", run)
}
