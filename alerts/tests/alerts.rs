//! The alert index against DataFusion: for thousands of random alerts (comparisons, ranges,
//! `IN`, `LIKE`, `IS NULL`, functions and arithmetic, under `AND`, `OR` and `NOT`) and random
//! rows with NULLs (and NaN areas), the (row, alert) pairs the index fires must be exactly those where
//! DataFusion evaluates the alert's condition to TRUE.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::prelude::SessionContext;
use sluice_alerts::{AlertIndex, compile, compile_coerced};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

mod common;

use common::Random;

const CITIES: [&str; 4] = ["Seoul", "Busan", "Lisbon", "Porto"];
const DISTRICTS: [&str; 5] = ["Mapo", "Gangnam", "Alfama", "Foz", "Belém"];
const TITLES: [&str; 5] = [
    "Sunny flat",
    "Sunny house",
    "Quiet flat",
    "Sun",
    "Loft by the river",
];

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("district", DataType::Utf8, true),
        Field::new("rooms", DataType::Int32, true),
        Field::new("price", DataType::Int64, true),
        Field::new("area", DataType::Float64, true),
        Field::new("title", DataType::Utf8, true),
        Field::new("garden", DataType::Boolean, true),
    ]))
}

/// `count` random rows; one value in `null_one_in` is NULL (none when it is 0).
fn rows(random: &mut Random, count: usize, null_one_in: u64) -> Result<RecordBatch> {
    let null = |random: &mut Random| null_one_in > 0 && random.below(null_one_in) == 0;
    let mut city = Vec::new();
    let mut district = Vec::new();
    let mut rooms = Vec::new();
    let mut price = Vec::new();
    let mut area = Vec::new();
    let mut title = Vec::new();
    let mut garden = Vec::new();
    for _ in 0..count {
        city.push((!null(random)).then(|| random.pick(&CITIES).to_string()));
        district.push((!null(random)).then(|| random.pick(&DISTRICTS).to_string()));
        rooms.push((!null(random)).then(|| random.below(6) as i32));
        price.push((!null(random)).then(|| 100_000 * random.below(10) as i64));
        area.push((!null(random)).then(|| match random.below(20) {
            0 => f64::NAN,
            _ => 20.0 + random.below(20) as f64 * 4.5,
        }));
        title.push((!null(random)).then(|| random.pick(&TITLES).to_string()));
        garden.push((!null(random)).then(|| random.below(2) == 0));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(city)),
        Arc::new(StringArray::from(district)),
        Arc::new(Int32Array::from(rooms)),
        Arc::new(Int64Array::from(price)),
        Arc::new(Float64Array::from(area)),
        Arc::new(StringArray::from(title)),
        Arc::new(BooleanArray::from(garden)),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

fn atom(random: &mut Random) -> String {
    let op = ["=", "<>", "<", "<=", ">", ">="][random.below(6) as usize];
    match random.below(19) {
        0 => format!("city = '{}'", random.pick(&CITIES)),
        1 => format!("city {op} '{}'", random.pick(&CITIES)),
        2 => format!("rooms {op} {}", random.below(6)),
        3 => format!("{} {op} rooms", random.below(6)),
        4 => format!("price {op} {}", 100_000 * random.below(10)),
        5 => format!("area {op} {}", 20.0 + random.below(20) as f64 * 4.5),
        6 => format!(
            "area {}BETWEEN {} AND {}",
            if random.below(3) == 0 { "NOT " } else { "" },
            20 + random.below(40),
            40 + random.below(60)
        ),
        7 => format!(
            "district {}IN ('{}', '{}')",
            if random.below(3) == 0 { "NOT " } else { "" },
            random.pick(&DISTRICTS),
            random.pick(&DISTRICTS)
        ),
        8 => format!(
            "rooms IN ({}, {}, {})",
            random.below(6),
            random.below(6),
            random.below(6)
        ),
        9 => format!(
            "title LIKE '{}%'",
            random.pick(&["Sun", "Sunny ", "Quiet", "", "Lo"])
        ),
        10 => format!(
            "title {}LIKE '%flat%'",
            if random.below(2) == 0 { "NOT " } else { "" }
        ),
        11 => "garden".to_string(),
        12 => format!(
            "{} IS {}NULL",
            random.pick(&["price", "rooms", "city", "garden"]),
            if random.below(2) == 0 { "NOT " } else { "" }
        ),
        13 => format!("price / 1000 {op} {}", 100 * random.below(10)),
        14 => format!("upper(city) = '{}'", random.pick(&CITIES).to_uppercase()),
        15 => format!("rooms {op} NULL"),
        16 => format!("price {op} 1000 * {}", 100 * random.below(10)),
        17 => format!(
            "(area {op} 10.0 + {}) AND city = 'Lis' || 'bon'",
            random.below(90)
        ),
        _ => format!("price {op} {}.5", 100_000 * random.below(10)),
    }
}

fn condition(random: &mut Random, depth: u32) -> String {
    if depth == 0 || random.below(3) == 0 {
        return atom(random);
    }
    match random.below(5) {
        0 => format!("NOT ({})", condition(random, depth - 1)),
        1 | 2 => format!(
            "({}) OR ({})",
            condition(random, depth - 1),
            condition(random, depth - 1)
        ),
        _ => format!(
            "({}) AND ({})",
            condition(random, depth - 1),
            condition(random, depth - 1)
        ),
    }
}

/// `sql` planned against `schema`, with its types coerced.
fn plan(context: &SessionContext, sql: &str, schema: &DFSchema) -> Result<Expr> {
    let expr = context.parse_sql_expr(sql, schema)?;
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .build(),
    );
    Ok(simplifier.coerce(expr, schema)?)
}

#[test]
fn the_index_fires_exactly_the_alerts_datafusion_finds_true() -> Result<()> {
    let schema = schema();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let context = SessionContext::new();
    let mut random = Random(0x5eed_a1e7);
    // Batches with NULLs, and without (where partitions' rows are ordered by a bounded
    // number column and alerts' bounds are bisected).
    let batches: Vec<RecordBatch> = [7, 7, 7, 0, 0]
        .into_iter()
        .map(|null_one_in| rows(&mut random, 300, null_one_in))
        .collect::<Result<_>>()?;
    let mut index = AlertIndex::new();
    let mut alerts = Vec::new();
    for _ in 0..3_000 {
        let sql = condition(&mut random, 3);
        let expr = plan(&context, &sql, &df_schema)?;
        let physical = create_physical_expr(
            &expr,
            &df_schema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )?;
        // Half the alerts compiled as they are, half with their constants folded when
        // that leaves less to DataFusion, as the session compiles them.
        let compiled = if alerts.len() % 2 == 0 {
            compile_coerced(expr.clone(), &schema)?
        } else {
            compile(&expr, &schema)?
        };
        let id = index.insert(compiled);
        alerts.push((id, sql, physical));
    }
    // Two in three alerts go (so the index is rebuilt): it keeps answering for those
    // still registered.
    for (id, _, _) in alerts
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, a)| a)
    {
        assert!(index.remove(*id));
    }
    let kept: Vec<_> = alerts.iter().step_by(3).collect();
    let mut fired_total = 0;
    let mut fired_per_alert: HashMap<u32, u64> = HashMap::new();
    for batch in &batches {
        let fired: Vec<(usize, u32)> = index.matches(batch)?.pairs().collect();
        let mut expected = Vec::new();
        for (id, _, physical) in &kept {
            let values = physical.evaluate(batch)?.into_array(batch.num_rows())?;
            let values = values
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or("a condition that is not boolean")?;
            for row in 0..batch.num_rows() {
                if values.is_valid(row) && values.value(row) {
                    expected.push((row, *id));
                }
            }
        }
        expected.sort_unstable();
        if fired != expected {
            let missing: Vec<_> = expected
                .iter()
                .filter(|e| !fired.contains(e))
                .take(3)
                .collect();
            let extra: Vec<_> = fired
                .iter()
                .filter(|f| !expected.contains(f))
                .take(3)
                .collect();
            let name = |id: &u32| {
                alerts
                    .iter()
                    .find(|a| a.0 == *id)
                    .map_or(String::new(), |a| a.1.clone())
            };
            let missing: Vec<String> = missing
                .iter()
                .map(|(r, id)| format!("row {r}: {}", name(id)))
                .collect();
            let extra: Vec<String> = extra
                .iter()
                .map(|(r, id)| format!("row {r}: {}", name(id)))
                .collect();
            return Err(format!("missing {missing:?}, extra {extra:?}").into());
        }
        fired_total += fired.len();
        for (_, id) in &fired {
            *fired_per_alert.entry(*id).or_default() += 1;
        }
    }
    // Each alert counts the rows it fired on, once per row.
    for (id, _, _) in &kept {
        let expected = fired_per_alert.get(id).copied().unwrap_or(0);
        assert_eq!(index.fired(*id), expected, "alert {id}");
    }
    // The test means something only if alerts fire, and not all of them always.
    let pairs = kept.len() * batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    assert!(
        fired_total > pairs / 50 && fired_total < pairs / 2,
        "{fired_total} of {pairs}"
    );
    Ok(())
}
