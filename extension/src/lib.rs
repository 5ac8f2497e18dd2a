//! nl2sql: ask questions about your data in plain language, inside PostgreSQL.
//!
//! A thin shell around `nl2sql-engine`:
//! - [`api`] — the SQL functions (nl2sql, nl2sql_sql, nl2sql_prompt, explain_rows, nl2sql_answer,
//!   nl2sql_ask, nl2sql_load_csv, nl2sql_status)
//! - [`pipeline`] — generate, check, repair, run
//! - [`schema_context`] — what the calling role may read, from the catalogs
//! - [`check`] — one read-only SELECT, decided by the server's parser and analyser
//! - [`execute`] — run through SPI, read-only, with timeout and row cap
//! - [`subtransaction`] — turn a PostgreSQL ERROR into a value, rolled back
//! - [`backend_model`] — this backend's loaded model
//! - [`csv_load`], [`csv_types`] — nl2sql_load_csv and its type inference
//! - [`gucs`], [`errors`] — settings and error reporting

pgrx::pg_module_magic!();

pub mod api;
pub mod backend_model;
pub mod check;
pub mod csv_load;
pub mod csv_types;
pub mod errors;
pub mod execute;
pub mod gucs;
pub mod pipeline;
pub mod schema_context;
pub mod subtransaction;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Runs when the library is loaded into a backend (or into the postmaster with
/// shared_preload_libraries): registers settings only; the model loads on first use.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// The test server finds the model where the fetch script put it ($NL2SQL_MODEL or the cache).
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        let model = nl2sql_engine::model::default_model_path();
        let setting = format!("nl2sql.model_path = '{}'", model.display().to_string().replace('\'', "''"));
        vec![Box::leak(setting.into_boxed_str()), "nl2sql.threads = 2"]
    }
}
