//! What the DataFusion SQL planner sees: sluice's streams and views as tables, and the
//! session's functions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::catalog::empty::EmptyTable;
use datafusion::catalog::view::ViewTable;
use datafusion::common::{TableReference, plan_datafusion_err};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};

use crate::view::View;

/// A [`ContextProvider`] over the streams and views of one moment of the catalog.
pub struct PlanningContext<'a> {
    state: Cow<'a, SessionState>,
    tables: HashMap<String, Arc<dyn TableSource>>,
}

impl<'a> PlanningContext<'a> {
    pub fn new<'v>(
        state: &'a SessionState,
        streams: impl Iterator<Item = &'v sluice_engine::StreamDef>,
        views: impl Iterator<Item = &'v View>,
    ) -> Self {
        let mut tables: HashMap<String, Arc<dyn TableSource>> = HashMap::new();
        for stream in streams {
            let table: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(stream.schema.clone()));
            tables.insert(stream.name.clone(), provider_as_source(table));
        }
        for view in views {
            let table: Arc<dyn TableProvider> =
                Arc::new(ViewTable::new(view.plan.clone(), Some(view.sql.clone())));
            tables.insert(view.name.clone(), provider_as_source(table));
        }
        PlanningContext {
            state: Cow::Borrowed(state),
            tables,
        }
    }

    /// The same context with its own copy of the session's state, for planning apart from
    /// the session.
    pub fn into_owned(self) -> PlanningContext<'static> {
        PlanningContext {
            state: Cow::Owned(self.state.into_owned()),
            tables: self.tables,
        }
    }
}

impl ContextProvider for PlanningContext<'_> {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        if name.schema().is_some() {
            return Err(plan_datafusion_err!(
                "'{name}': qualified names are not supported"
            ));
        }
        self.tables
            .get(name.table())
            .cloned()
            .ok_or_else(|| plan_datafusion_err!("unknown stream or view '{}'", name.table()))
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<datafusion::logical_expr::Expr>,
    ) -> Result<Arc<dyn TableSource>> {
        let input = |table: &str| {
            let source = self.get_table_source(TableReference::bare(table))?;
            crate::window_tvf::scan(table, source)
        };
        if name == crate::match_recognize::MATCH_RECOGNIZE_FUNCTION {
            return crate::match_recognize::plan::match_recognize_source(&args, self, input);
        }
        crate::window_tvf::window_tvf_source(name, &args, input)
            .unwrap_or_else(|| Err(plan_datafusion_err!("unknown table function '{name}'")))
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.state.scalar_functions().get(name).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.state.higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state
            .higher_order_functions()
            .keys()
            .cloned()
            .collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}
