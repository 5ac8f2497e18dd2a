//! The extension's own tables (objects.sql): examples, glossary, value index and virtual foreign
//! keys. The SQL that reads and writes them runs under the pinned search path, which does not
//! hold the extension's schema, so they are always named with it.

use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use pgrx::Spi;

pgrx::extension_sql_file!("objects.sql", name = "own_tables");

/// The extension's schema, quoted.
const SCHEMA_QUERY: &str = "SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e
                            JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'nl2sql'";

/// `name`, one of the extension's tables, qualified with the extension's schema and quoted.
pub fn table(name: &str) -> String {
    let schema = with_settings(&[PINNED_SEARCH_PATH], || Spi::get_one::<String>(SCHEMA_QUERY))
        .ok()
        .flatten()
        .unwrap_or_else(|| "public".to_owned());
    format!("{schema}.{}", nl2sql_engine::schema::quote_ident(name))
}
