//! nl2sql: ask questions about your data in plain language, inside PostgreSQL.
//!
//! A thin shell around `nl2sql-engine`:
//! - [`api`] — the SQL functions (nl2sql, nl2sql_sql, nl2sql_prompt, explain_rows, nl2sql_answer,
//!   nl2sql_ask, nl2sql_load_csv, nl2sql_schema, nl2sql_status, nl2sql_stats)
//! - [`pipeline`] — the engine's conversation, and each statement's judgement
//! - [`question_context`] — what the model is told: the schema (linked when large, [`linker`]),
//!   named values ([`value_index`]), [`glossary`], verified [`examples`]; [`own_tables`] holds them
//! - [`schema_context`] (with `catalog.sql`) — what the calling role may read, from the catalogs,
//!   with the joins declared by [`virtual_foreign_keys`]
//! - [`statement`] — one read-only SELECT, checked on PostgreSQL's own query tree, then planned or
//!   run from that tree; [`provenance`] — only code of pg_catalog and allowed schemas
//! - [`guc_scope`] — pinned search_path and read-only state for a step; [`subtransaction`] —
//!   a PostgreSQL ERROR as a value, rolled back
//! - [`backend_model`] — what answers in this backend: the model worker ([`model_worker`], when
//!   preloaded), the model loaded here, or an inference server; [`progress`] — progress NOTICEs
//! - [`csv_load`], [`csv_types`] — nl2sql_load_csv and its type inference
//! - [`gucs`], [`errors`] — settings and the one error type

pgrx::pg_module_magic!();

pub mod api;
pub mod backend_model;
pub mod csv_load;
pub mod csv_types;
pub mod date_patterns;
pub mod errors;
pub mod exact_arithmetic;
pub mod examples;
pub mod glossary;
pub mod guc_scope;
pub mod gucs;
pub mod linker;
pub mod model_worker;
pub mod own_tables;
pub mod pipeline;
pub mod progress;
pub mod provenance;
pub mod question_context;
pub mod repeated_columns;
pub mod schema_context;
pub mod statement;
pub mod subtransaction;
pub mod value_index;
pub mod virtual_foreign_keys;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Runs when the library is loaded into a backend, or into the postmaster with
/// shared_preload_libraries: registers the settings, and when preloaded the model worker.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::register();
    model_worker::register();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// The test server finds the model where the fetch script put it ($NL2SQL_MODEL or the cache),
    /// and tests/faults.rs a directory on a nearly full filesystem (scripts/test mounts one).
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        fn setting(name: &str, value: &str) -> &'static str {
            Box::leak(format!("{name} = '{}'", value.replace('\'', "''")).into_boxed_str())
        }
        let model = nl2sql_engine::paths::default_model_path();
        let embedding = nl2sql_engine::embedding::default_embedding_model_dir();
        let mut options = vec![
            setting("nl2sql.model_path", &model.display().to_string()),
            setting("nl2sql.embedding_model_path", &embedding.display().to_string()),
            "nl2sql.threads = 2",
        ];
        if let Ok(full_disk) = std::env::var("NL2SQL_TEST_FULL_DISK") {
            options.push(setting("nl2sql_test.full_disk", &full_disk));
        }
        options
    }
}
