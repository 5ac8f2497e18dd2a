//! nl2sql_glossary(term, meaning): the terms of this database and what they mean, shown to the
//! model after the schema. Stored in the table nl2sql_glossary (readable by everyone; changing
//! it takes INSERT/UPDATE/DELETE there, the owner's by default).

use crate::errors::{Nl2sqlError, Result};
use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use crate::own_tables::table;
use crate::subtransaction::catch_pg_error;
use nl2sql_engine::GlossaryEntry;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Sets `term` to mean `meaning`; a NULL meaning removes the term.
pub fn set(term: &str, meaning: Option<&str>) -> Result<()> {
    let term = term.trim();
    if term.is_empty() {
        return Err(Nl2sqlError::invalid_input("the term is empty").hint("SELECT nl2sql_glossary('revenue', 'sum of price over all sales');"));
    }
    let glossary = table("nl2sql_glossary");
    let sql = match meaning.map(str::trim) {
        Some("") => return Err(Nl2sqlError::invalid_input("the meaning is empty").hint("Pass NULL to remove the term.")),
        Some(_) => format!("INSERT INTO {glossary} (term, meaning) VALUES ($1, $2) ON CONFLICT (term) DO UPDATE SET meaning = EXCLUDED.meaning"),
        None => format!("DELETE FROM {glossary} WHERE term = $1"),
    };
    let arguments: Vec<pgrx::datum::DatumWithOid> = match meaning {
        Some(meaning) => vec![term.into(), meaning.trim().into()],
        None => vec![term.into()],
    };
    let changed = catch_pg_error(
        std::panic::AssertUnwindSafe(|| with_settings(&[PINNED_SEARCH_PATH], || Spi::run_with_args(&sql, &arguments))),
        |_| false,
    );
    match changed {
        Ok(result) => result.map_err(|e| Nl2sqlError::internal("changing the glossary", e)),
        Err(e) if e.code == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE => Err(e.hint(
            "The owner of the extension grants INSERT, UPDATE, DELETE ON nl2sql_glossary to the roles that curate the glossary.",
        )),
        Err(e) => Err(e),
    }
}

/// The glossary, by term.
pub fn entries() -> Result<Vec<GlossaryEntry>> {
    with_settings(&[PINNED_SEARCH_PATH], || {
        Spi::connect(|client| {
            let rows = client.select(&format!("SELECT term, meaning FROM {} ORDER BY term", table("nl2sql_glossary")), None, &[])?;
            let mut entries = Vec::new();
            for row in rows {
                entries.push(GlossaryEntry { term: row.get::<String>(1)?.unwrap_or_default(), meaning: row.get::<String>(2)?.unwrap_or_default() });
            }
            Ok::<_, pgrx::spi::Error>(entries)
        })
    })
    .map_err(|e| Nl2sqlError::internal("reading the glossary", e))
}
