//! The value index (nl2sql_value_index): distinct values of low-cardinality text columns, so a
//! question that names a value ("papers on Machine Learning") leads the model to its column.
//!
//! nl2sql_index_values() builds it as the extension's owner (SECURITY DEFINER: it must read every
//! table to index it); a question builds it when there is none, or when the tables and text
//! columns it was built from changed (a new table, a dropped column). What a
//! caller reads of it is filtered by the table's row-level security policy: values of columns it
//! may read, of tables where no row security applies to it.

use crate::errors::{Nl2sqlError, Result};
use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use crate::own_tables::table;
use crate::subtransaction::catch_pg_error;
use nl2sql_engine::Schema;
use pgrx::prelude::*;

/// A column with more distinct values than this is not indexed (names of people, free text).
const MAX_DISTINCT: i64 = 1000;
/// Longer values are not names of things.
const MAX_VALUE_CHARS: i32 = 100;
/// Values named by one question that are shown to the model.
const MAX_MENTIONED: usize = 10;

/// Text columns of the database's user tables: (table oid, qualified table name, attnum, column).
const TEXT_COLUMNS: &str = "
SELECT c.oid::bigint, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), a.attnum::int, pg_catalog.quote_ident(a.attname)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition AND t.typcategory = 'S'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 3";

/// The tables and text columns the index is built from, as one text: what ensure_built compares.
fn columns_fingerprint() -> String {
    format!("SELECT pg_catalog.md5(pg_catalog.string_agg(q.oid || ':' || q.attnum, ',')) FROM ({TEXT_COLUMNS}) q(oid, name, attnum, attname)")
}

/// Rebuilds the index; the number of values it holds.
pub fn build() -> Result<i64> {
    with_settings(&[PINNED_SEARCH_PATH], || {
        let (index, state) = (table("nl2sql_value_index"), table("nl2sql_value_index_state"));
        Spi::connect_mut(|client| {
            client.update(&format!("DELETE FROM {index}"), None, &[])?;
            let columns: Vec<(i64, String, i32, String)> = client
                .select(TEXT_COLUMNS, None, &[])?
                .map(|row| Ok((row.get(1)?.unwrap_or(0), row.get(2)?.unwrap_or_default(), row.get(3)?.unwrap_or(0), row.get(4)?.unwrap_or_default())))
                .collect::<std::result::Result<_, pgrx::spi::Error>>()?;
            for (relation, table_name, attnum, column) in columns {
                pg_sys::check_for_interrupts!();
                // One more than the limit: a column that has it is not indexed at all.
                let sql = format!(
                    "INSERT INTO {index} (relation, attnum, value)
                     SELECT {relation}::pg_catalog.oid::pg_catalog.regclass, {attnum}, v FROM (
                         SELECT DISTINCT {column}::pg_catalog.text AS v FROM {table_name}
                         WHERE {column} IS NOT NULL AND pg_catalog.length({column}::pg_catalog.text) <= {MAX_VALUE_CHARS}
                         LIMIT {limit}) distinct_values
                     WHERE (SELECT pg_catalog.count(*) FROM (SELECT DISTINCT {column} FROM {table_name} LIMIT {limit}) d) <= {MAX_DISTINCT}",
                    limit = MAX_DISTINCT + 1
                );
                client.update(&sql, None, &[])?;
            }
            client.update(&format!("DELETE FROM {state}"), None, &[])?;
            client.update(&format!("INSERT INTO {state} SELECT pg_catalog.now(), coalesce(({}), '')", columns_fingerprint()), None, &[])?;
            client.select(&format!("SELECT pg_catalog.count(*) FROM {index}"), None, &[])?.first().get_one::<i64>().map(Option::unwrap_or_default)
        })
    })
    .map_err(|e| Nl2sqlError::internal("building the value index", e))
}

/// Builds the index if there is none, or if the tables and columns it was built from changed; a
/// failure (a read-only transaction, a standby) leaves the question to be answered without it.
pub fn ensure_built() {
    let current = with_settings(&[PINNED_SEARCH_PATH], || {
        Spi::get_one::<bool>(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE columns = coalesce(({}), ''))",
            table("nl2sql_value_index_state"),
            columns_fingerprint()
        ))
    });
    if let Ok(Some(false)) = current {
        // One session builds it at a time. The builder's writes show only when its question ends,
        // and a second builder would wait on its row locks for all that time (a whole generation):
        // the others go on with the index as it was.
        let turn = Spi::get_one::<bool>("SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('nl2sql.value_index'))");
        if let Ok(Some(true)) = turn {
            let _ = catch_pg_error(|| Spi::get_one::<i64>(&format!("SELECT {}()", table("nl2sql_index_values"))), |_| false);
        }
    }
}

/// Marks in `schema` the values the question names, among those the caller may see.
pub fn mark_mentioned(schema: &mut Schema, question: &str) -> Result<()> {
    let rows: Vec<((String, String), String)> = with_settings(&[PINNED_SEARCH_PATH], || {
        Spi::connect(|client| {
            let sql = format!(
                "SELECT c.relname::pg_catalog.text, a.attname::pg_catalog.text, v.value FROM {} v
                 JOIN pg_catalog.pg_class c ON c.oid = v.relation
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = v.relation AND a.attnum = v.attnum",
                table("nl2sql_value_index")
            );
            client
                .select(&sql, None, &[])?
                .map(|row| Ok(((row.get(1)?.unwrap_or_default(), row.get(2)?.unwrap_or_default()), row.get(3)?.unwrap_or_default())))
                .collect::<std::result::Result<_, pgrx::spi::Error>>()
        })
    })
    .map_err(|e| Nl2sqlError::internal("reading the value index", e))?;
    for ((relation, column), value) in nl2sql_engine::values::mentioned(question, &rows, MAX_MENTIONED) {
        let target = schema.tables.iter_mut().filter(|t| &t.name == relation).flat_map(|t| t.columns.iter_mut()).find(|c| &c.name == column);
        if let Some(target) = target {
            target.mentioned_values.push(value.clone());
        }
    }
    Ok(())
}
