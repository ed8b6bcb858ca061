//! `CREATE TABLE | STREAM`: from the parsed statement to a checked [`StreamDef`].

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::planner::ContextProvider;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::planner::{PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast;
use sluice_engine::catalog::ColumnSource;
use sluice_engine::limits::MAX_PARTITIONS;
use sluice_engine::types::sql_type_name;
use sluice_engine::{ComputedColumn, EventTime, StreamDef};

use crate::statement::{ColumnKind, CreateStream};
use crate::types::arrow_type;
use crate::{Result, SqlError};

/// Checks `create` and builds the stream it declares.
pub fn stream_def(
    create: &CreateStream,
    state: &SessionState,
    context: &impl ContextProvider,
) -> Result<StreamDef> {
    let invalid = |message: String| SqlError::Invalid(format!("{}: {message}", create.name));
    let mut seen = HashSet::new();
    for column in &create.columns {
        if !seen.insert(column.name.as_str()) {
            return Err(invalid(format!(
                "column '{}' is declared twice",
                column.name
            )));
        }
    }
    if create.columns.is_empty() {
        return Err(invalid("a stream needs at least one column".into()));
    }

    let mut physical_fields = Vec::new();
    for column in &create.columns {
        if let ColumnKind::Physical {
            data_type,
            not_null,
        } = &column.kind
        {
            let data_type = arrow_type(data_type, &column.name)?;
            // Key columns are implicitly NOT NULL, as in Flink.
            let nullable = !not_null && !create.primary_key.contains(&column.name);
            physical_fields.push(Field::new(&column.name, data_type, nullable));
        }
    }
    let physical_schema: SchemaRef = Arc::new(Schema::new(physical_fields));

    let mut fields = Vec::new();
    let mut layout = Vec::new();
    let mut physical_index = 0;
    for column in &create.columns {
        match &column.kind {
            ColumnKind::Physical { .. } => {
                fields.push(physical_schema.field(physical_index).clone());
                layout.push(ColumnSource::Physical(physical_index));
                physical_index += 1;
            }
            ColumnKind::Computed(sql) => {
                let expression = plan_expression(sql, &physical_schema, state, context)
                    .map_err(|e| invalid(format!("computed column '{}': {e}", column.name)))?;
                let data_type = expression.data_type(&physical_schema)?;
                let nullable = expression.nullable(&physical_schema)?;
                fields.push(Field::new(&column.name, data_type, nullable));
                layout.push(ColumnSource::Computed(ComputedColumn {
                    name: column.name.clone(),
                    expression,
                    sql: sql.to_string(),
                }));
            }
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let event_time = match &create.watermark {
        None => None,
        Some(watermark) => Some(
            event_time(
                &watermark.column,
                &watermark.expression,
                &schema,
                state,
                context,
            )
            .map_err(|e| match e {
                SqlError::Invalid(message) => invalid(message),
                other => other,
            })?,
        ),
    };

    for key in &create.primary_key {
        if schema.index_of(key).is_err() {
            return Err(invalid(format!(
                "PRIMARY KEY column '{key}' is not a column"
            )));
        }
    }

    for (key, value) in &create.options {
        if DURATION_OPTIONS.iter().any(|o| o.eq_ignore_ascii_case(key)) {
            sluice_engine::time::parse_duration(value)
                .map_err(|e| invalid(format!("option '{key}': {e}")))?;
        }
    }

    check_partitioning(&create.options, &schema)?;

    let mut def = StreamDef {
        name: create.name.clone(),
        schema,
        physical_schema,
        layout,
        event_time,
        primary_key: create.primary_key.clone(),
        options: create.options.clone(),
        changelog: false,
    };
    // Kafka tables take Flink's value formats (checked when the topic is read); other
    // connectors' names are taken as written and the stream is fed by publishes and files.
    let kafka = def
        .option("connector")
        .is_some_and(|c| c.eq_ignore_ascii_case("kafka") || c.eq_ignore_ascii_case("upsert-kafka"));
    if let Some(format) = def.option("format")
        && !def.is_debezium()
        && !(kafka && ["json", "csv", "raw"].contains(&format.to_ascii_lowercase().as_str()))
    {
        return Err(invalid(if kafka {
            format!(
                "option 'format' = '{format}': the formats of a Kafka table are 'json', \
                 'csv', 'debezium-json' and 'raw'"
            )
        } else {
            format!(
                "option 'format' = '{format}': the formats are 'debezium-json' (Debezium \
                 change events), or none for CSV and JSON lines files"
            )
        }));
    }
    def.changelog = def.is_debezium() && !def.is_table();
    Ok(def)
}

/// Checks `'partitions'` (a count from 1 to [`MAX_PARTITIONS`]), `'errors.tolerance'`
/// (`none` or `all`) and `'key'` (a column).
fn check_partitioning(options: &[(String, String)], schema: &SchemaRef) -> Result<()> {
    let option = |name: &str| {
        options
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    if let Some(text) = option("partitions") {
        match text.parse::<usize>() {
            Ok(count) if (1..=MAX_PARTITIONS).contains(&count) => {}
            _ => {
                return Err(SqlError::Invalid(format!(
                    "option 'partitions' = '{text}': a stream has from 1 to {MAX_PARTITIONS} \
                     partitions"
                )));
            }
        }
    }
    if let Some(tolerance) = option("errors.tolerance")
        && !["none", "all"].contains(&tolerance.to_ascii_lowercase().as_str())
    {
        return Err(SqlError::Invalid(format!(
            "option 'errors.tolerance' = '{tolerance}': 'none' (a publish with an event that \
             does not fit fails whole) or 'all' (such events are skipped and kept apart)"
        )));
    }
    if let Some(key) = option("key")
        && schema.index_of(key).is_err()
    {
        return Err(SqlError::Invalid(format!(
            "option 'key' = '{key}': there is no such column"
        )));
    }
    Ok(())
}

/// `WITH` options whose value is a duration such as `'5 s'`.
pub const DURATION_OPTIONS: [&str; 2] = ["allowed-lateness", "idle-timeout"];

fn event_time(
    column: &str,
    sql: &ast::Expr,
    schema: &SchemaRef,
    state: &SessionState,
    context: &impl ContextProvider,
) -> Result<EventTime> {
    let index = schema.index_of(column).map_err(|_| {
        SqlError::Invalid(format!("WATERMARK FOR '{column}': there is no such column"))
    })?;
    let column_type = schema.field(index).data_type();
    if !matches!(column_type, DataType::Timestamp(_, _)) {
        return Err(SqlError::Invalid(format!(
            "WATERMARK FOR '{column}': the column is {}, not TIMESTAMP or TIMESTAMP_LTZ",
            sql_type_name(column_type)
        )));
    }
    let watermark = plan_expression(sql, schema, state, context)
        .map_err(|e| SqlError::Invalid(format!("WATERMARK expression {sql}: {e}")))?;
    let watermark_type = watermark.data_type(schema)?;
    if !matches!(watermark_type, DataType::Timestamp(_, _)) {
        return Err(SqlError::Invalid(format!(
            "WATERMARK expression {sql} is {}, not a timestamp",
            sql_type_name(&watermark_type)
        )));
    }
    Ok(EventTime {
        column: index,
        watermark,
        watermark_sql: sql.to_string(),
    })
}

/// Plans a SQL expression over the columns of `schema`.
fn plan_expression(
    sql: &ast::Expr,
    schema: &SchemaRef,
    state: &SessionState,
    context: &impl ContextProvider,
) -> Result<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let planner = SqlToRel::new(context);
    let logical = planner.sql_to_expr(sql.clone(), &df_schema, &mut PlannerContext::new())?;
    Ok(state.create_physical_expr(logical, &df_schema)?)
}
