//! What the calling role may read, from the catalogs: tables and views on its search_path that it
//! can SELECT from, the columns it can read, keys (declared, and virtual ones from
//! nl2sql_virtual_foreign_keys), comments, and the most common values of low-cardinality text
//! columns (from pg_stats, which itself hides what the role may not see, including tables under
//! row-level security). Nothing else reaches the prompt.

use crate::errors::{Nl2sqlError, Result};
use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use crate::own_tables::table;
use nl2sql_engine::Schema;
use pgrx::prelude::*;
use pgrx::{JsonB, PgList};

/// Text columns with at most this many distinct values get their frequent values listed.
const LOW_CARDINALITY: i32 = 50;
/// How many of those values are listed.
const FREQUENT_VALUES: i32 = 20;

const CATALOG_QUERY: &str = include_str!("catalog.sql");

/// The schemas of the caller's search_path, in order, read before our own SQL pins it.
fn callers_search_path(include_implicit: bool) -> Vec<String> {
    // SAFETY: namespace lookups on the backend's thread; the list and names are palloc'd in the
    // current memory context.
    unsafe {
        PgList::<std::ffi::c_void>::from_pg(pg_sys::fetch_search_path(include_implicit))
            .iter_oid()
            .filter_map(|namespace| {
                let name = pg_sys::get_namespace_name(namespace);
                (!name.is_null()).then(|| std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned())
            })
            .collect()
    }
}

/// The schema the calling role may read.
pub fn readable_schema() -> Result<Schema> {
    let (explicit, with_implicit) = (callers_search_path(false), callers_search_path(true));
    let query = CATALOG_QUERY.replace("@virtual_foreign_keys@", &table("nl2sql_virtual_foreign_keys"));
    let json = with_settings(&[PINNED_SEARCH_PATH], || {
        Spi::get_one_with_args::<JsonB>(
            &query,
            &[LOW_CARDINALITY.into(), FREQUENT_VALUES.into(), explicit.into(), with_implicit.into()],
        )
    })
    .map_err(|e| Nl2sqlError::internal("reading the catalogs", e))?
    .map(|j| j.0)
    .unwrap_or_default();
    serde_json::from_value(json).map_err(|e| Nl2sqlError::internal("reading the catalogs' shape", e))
}

/// The readable schema, for a question; an error if the role can read nothing at all.
pub fn schema_for_question() -> Result<Schema> {
    let schema = readable_schema()?;
    if schema.tables.is_empty() {
        return Err(Nl2sqlError::new(
            pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "there are no tables or views on your search_path that you may read",
        )
        .hint("Create or load a table (e.g. SELECT nl2sql_load_csv('/path/file.csv', 'sales')), GRANT SELECT on one, or SET search_path to the schema that holds your data."));
    }
    Ok(schema)
}
