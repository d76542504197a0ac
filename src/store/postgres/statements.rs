//! Statements prepared on one connection, by their SQL text. The driver
//! prepares a `&str` statement afresh every time it runs: a round trip more,
//! and the server parsing and planning it again (more of the server's time
//! than running it, for the store's one-row statements). Prepared once per
//! connection, each later run is a single round trip that binds and executes.
//!
//! Named statements belong to their connection and outlive its
//! transactions, rolled back or not; they go with the connection when it is
//! dropped. A statement that failed is forgotten, so one the server no
//! longer knows or can no longer plan the same way (another node's schema
//! step in between) is prepared again on its next run. The store's SQL
//! texts are a fixed set, apart from the audit filters' combinations: the
//! map is cleared if it ever reaches [`Statements::MAX`].

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// Distinct statements kept on one connection at most.
    pub const MAX: usize = 256;

    /// `sql`'s rows, run on `on` (this connection, or a transaction of it).
    pub fn query(
        &mut self,
        on: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(on, sql)?;
        self.forget_if_failed(sql, on.query(&statement, params))
    }

    /// How many rows `sql` changed, run on `on`.
    pub fn execute(
        &mut self,
        on: &mut impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.prepared(on, sql)?;
        self.forget_if_failed(sql, on.execute(&statement, params))
    }

    fn prepared(&mut self, on: &mut impl GenericClient, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = on.prepare(sql)?;
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn forget_if_failed<T>(&mut self, sql: &str, answer: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if answer.is_err() {
            self.0.remove(sql);
        }
        answer
    }
}
