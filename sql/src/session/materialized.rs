//! Materialized views: `CREATE MATERIALIZED VIEW` and the queries answered from their
//! current contents.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use sluice_engine::StreamDef;
use sluice_engine::catalog::ColumnSource;

use super::{Outcome, Session};
use crate::hints::query_hints;
use crate::statement;
use crate::{Result, SqlError};

impl Session {
    /// `CREATE MATERIALIZED VIEW name AS query`: a changelog stream `name` that the query
    /// writes, of which the engine keeps the current contents.
    pub(super) fn create_materialized_view(
        &mut self,
        name: &str,
        create: &ast::CreateView,
        statement: &ast::Statement,
    ) -> Result<Outcome> {
        if self.exists(name) {
            if create.if_not_exists {
                return Ok(Outcome::Unchanged(format!("'{name}' already exists")));
            }
            return Err(self.already_exists(name));
        }
        let hints = query_hints(statement)?;
        let plan = self.plan(ast::Statement::Query(create.query.clone()))?;
        let (graph, warnings, _) = self.build_graph(&plan, hints)?;
        let schema = graph.schema();
        let mut names = BTreeSet::new();
        if let Some(field) = schema.fields().iter().find(|f| !names.insert(f.name())) {
            return Err(SqlError::Invalid(format!(
                "materialized view '{name}' has two columns named '{}': give them distinct \
                 names (AS ...)",
                field.name()
            )));
        }
        self.engine.create_stream(StreamDef {
            name: name.to_string(),
            schema: schema.clone(),
            physical_schema: schema.clone(),
            layout: (0..schema.fields().len())
                .map(ColumnSource::Physical)
                .collect(),
            event_time: None,
            primary_key: Vec::new(),
            options: Vec::new(),
            changelog: true,
        })?;
        self.engine.keep_snapshot(name)?;
        match self.register(name, name, graph, warnings, Some(name)) {
            Ok(query) => {
                self.materialized.insert(
                    name.to_string(),
                    crate::match_recognize::restore_match_recognize(&create.query.to_string()),
                );
                Ok(Outcome::Materialized(query))
            }
            Err(error) => {
                self.engine.drop_stream(name)?;
                Err(error)
            }
        }
    }

    /// A query that reads only materialized views runs once over their current contents.
    pub(super) fn snapshot_query(&self, statement: &ast::Statement) -> Result<Option<RecordBatch>> {
        let mut relations = BTreeSet::new();
        let _ = ast::visit_relations(statement, |relation| {
            if let Ok(name) = statement::object_name(relation) {
                relations.insert(name);
            }
            ControlFlow::<()>::Continue(())
        });
        if relations.is_empty() || !relations.iter().all(|r| self.materialized.contains_key(r)) {
            return Ok(None);
        }
        let context = SessionContext::new_with_state(self.state.clone());
        for name in &relations {
            if let Some(rows) = self.engine.snapshot(name)? {
                let table = MemTable::try_new(rows.schema(), vec![vec![rows]])?;
                context.deregister_table(name.as_str())?;
                context.register_table(name.as_str(), Arc::new(table))?;
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(sluice_engine::EngineError::from)?;
        let statement = DFStatement::Statement(Box::new(statement.clone()));
        let (schema, batches) = runtime.block_on(async {
            let plan = context.state().statement_to_plan(statement).await?;
            let frame = context.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            Ok::<_, SqlError>((schema, frame.collect().await?))
        })?;
        Ok(Some(concat_batches(&schema, &batches)?))
    }
}
