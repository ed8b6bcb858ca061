//! `GROUPING SETS`, `ROLLUP` and `CUBE` over windows: the distinct grouping keys and each
//! set as positions in them, and the projection that pads one set's aggregation output to
//! the full output (NULL keys and the grouping id).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, GroupingSet};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};

use crate::{Result, SqlError};

/// One grouping set: positions in the distinct grouping keys.
pub(super) type KeySet = Vec<usize>;

/// What an aggregation groups by.
pub(super) struct Grouping {
    /// The distinct grouping keys.
    pub(super) keys: Vec<Expr>,
    /// For `GROUPING SETS`, `ROLLUP` or `CUBE`, each set as positions in `keys`.
    pub(super) sets: Option<Vec<KeySet>>,
}

/// The distinct grouping keys of `group_expr` and, for `GROUPING SETS`, `ROLLUP` or `CUBE`,
/// each set as positions in those keys.
pub(super) fn grouping_sets(group_expr: &[Expr]) -> Result<Grouping> {
    let [Expr::GroupingSet(grouping)] = group_expr else {
        if group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
            return Err(SqlError::Unsupported(
                "this mix of grouping sets and keys".into(),
            ));
        }
        return Ok(Grouping {
            keys: group_expr.to_vec(),
            sets: None,
        });
    };
    let keys: Vec<Expr> = grouping.distinct_expr().into_iter().cloned().collect();
    let position = |e: &Expr| keys.iter().position(|k| k == e).unwrap_or_default();
    let count = keys.len();
    let sets = match grouping {
        GroupingSet::Rollup(_) => (0..=count).rev().map(|n| (0..n).collect()).collect(),
        GroupingSet::Cube(_) => (0..1usize << count)
            .rev()
            .map(|mask| {
                (0..count)
                    .filter(|k| mask & (1 << (count - 1 - k)) != 0)
                    .collect()
            })
            .collect(),
        GroupingSet::GroupingSets(sets) => sets
            .iter()
            .map(|set| set.iter().map(position).collect())
            .collect(),
    };
    Ok(Grouping {
        keys,
        sets: Some(sets),
    })
}

/// Expressions over one grouping set's aggregation output (its keys, then the aggregates)
/// that give the full output: every key (NULL where the set lacks it), the grouping id, and
/// the aggregates. The grouping id follows DataFusion: one bit per key, the first key highest,
/// set where the key is not grouped; duplicates of a set carry their ordinal above those bits.
pub(super) fn pad_grouping_set(
    set: &[usize],
    keys: usize,
    duplicate: usize,
    schema: &SchemaRef,
) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    let mut expressions: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(schema.fields().len());
    for key in 0..keys {
        expressions.push(match set.iter().position(|k| *k == key) {
            Some(column) => Arc::new(Column::new(schema.field(key).name(), column)),
            None => Arc::new(Literal::new(ScalarValue::try_from(
                schema.field(key).data_type(),
            )?)),
        });
    }
    let id = (0..keys).fold(0u64, |id, key| (id << 1) | u64::from(!set.contains(&key)));
    let id = id | ((duplicate as u64) << keys);
    let id = ScalarValue::UInt64(Some(id)).cast_to(schema.field(keys).data_type())?;
    expressions.push(Arc::new(Literal::new(id)));
    for (offset, field) in schema.fields()[keys + 1..].iter().enumerate() {
        expressions.push(Arc::new(Column::new(field.name(), set.len() + offset)));
    }
    Ok(expressions)
}
