//! Verified examples: nl2sql_add_example(question, sql) stores a question with SQL that passes
//! the same check generated SQL must pass, as the role that adds it; the most similar examples
//! whose tables the caller may read go into the prompt as earlier turns. The table
//! nl2sql_examples lists them (its row-level security shows each role the examples of tables it
//! may read); a corrected answer stored this way is not wrong twice.

use crate::errors::{Nl2sqlError, Result};
use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use crate::own_tables::table;
use crate::provenance::AllowedSchemas;
use crate::statement::{self, StatementFailure};
use crate::subtransaction::catch_pg_error;
use crate::{gucs, linker};
use nl2sql_engine::{Example, Question};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// How close (cosine similarity of the questions) an example must be to be shown.
const MIN_SIMILARITY: f32 = 0.6;

/// Checks `sql` as the caller and stores it with `question`; the example's id.
pub fn add(question: &str, sql: &str) -> Result<i64> {
    let question = Question::parse(question)?;
    let sql = sql.trim().trim_end_matches(';').trim();
    let allowed = AllowedSchemas::new(&gucs::allowed_function_schemas());
    let tables = match statement::plan_tables(sql, &allowed) {
        Ok(tables) => tables,
        Err(StatementFailure::Refused(reason)) => {
            return Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION, format!("the example's SQL is refused: {reason}"))
                .hint("An example must pass the check generated SQL passes: one read-only SELECT over tables you may read."))
        }
        Err(StatementFailure::Failed(e)) => {
            return Err(Nl2sqlError { message: format!("the example's SQL does not plan: {}", e.message), ..e })
        }
        Err(StatementFailure::TimedOut) => unreachable!("planning has no timeout"),
    };
    let insert = format!("INSERT INTO {} (question, sql, tables) VALUES ($1, $2, $3::pg_catalog.oid[]::pg_catalog.regclass[]) RETURNING id", table("nl2sql_examples"));
    let oids: Vec<i64> = tables.iter().map(|t| i64::from(t.to_u32())).collect();
    let inserted = catch_pg_error(
        std::panic::AssertUnwindSafe(|| {
            with_settings(&[PINNED_SEARCH_PATH], || {
                Spi::get_one_with_args::<i64>(&insert, &[question.as_str().into(), sql.into(), oids.clone().into()])
            })
        }),
        |_| false,
    );
    match inserted {
        Ok(id) => id.map_err(|e| Nl2sqlError::internal("storing the example", e))?.ok_or_else(|| Nl2sqlError::internal("storing the example", "no id")),
        Err(e) if e.code == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE => {
            Err(e.hint("The owner of the extension grants INSERT ON nl2sql_examples to the roles that curate examples."))
        }
        Err(e) => Err(e),
    }
}

/// The examples most similar to `question` that the caller may see, most similar first.
pub fn similar(question: &Question) -> Result<Vec<Example>> {
    let wanted = gucs::examples();
    if wanted == 0 {
        return Ok(Vec::new());
    }
    let all: Vec<Example> = with_settings(&[PINNED_SEARCH_PATH], || {
        Spi::connect(|client| {
            client
                .select(&format!("SELECT question, sql FROM {} ORDER BY id", table("nl2sql_examples")), None, &[])?
                .map(|row| Ok(Example { question: row.get(1)?.unwrap_or_default(), sql: row.get(2)?.unwrap_or_default() }))
                .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
        })
    })
    .map_err(|e| Nl2sqlError::internal("reading the examples", e))?;
    let questions: Vec<String> = all.iter().map(|e| e.question.clone()).collect();
    let chosen = linker::with_linker(|linker| linker.most_similar(question.as_str(), &questions, wanted, MIN_SIMILARITY))??;
    Ok(chosen.into_iter().map(|i| all[i].clone()).collect())
}
