//! What the calling role may read, from the catalogs: tables and views on its search_path that it
//! can SELECT from, the columns it can read, keys, comments, and the most common values of
//! low-cardinality text columns (from pg_stats, which itself hides what the role may not see,
//! including tables under row-level security). Nothing else reaches the prompt.

use crate::errors::{Nl2sqlError, Result};
use nl2sql_engine::Schema;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Text columns with at most this many distinct values get their frequent values listed.
const LOW_CARDINALITY: i32 = 50;
/// How many of those values are listed.
const FREQUENT_VALUES: i32 = 20;

const CATALOG_QUERY: &str = r#"
WITH readable AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
      AND n.nspname = ANY (pg_catalog.current_schemas(false))
      AND pg_catalog.has_any_column_privilege(c.oid, 'SELECT')
      -- objects that belong to an extension (ours included) are not the user's data
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
),
key_columns AS (
    SELECT con.oid, con.conrelid, con.confrelid, con.contype,
           jsonb_agg(a.attname ORDER BY k.ord) AS columns,
           jsonb_agg(fa.attname ORDER BY k.ord) FILTER (WHERE fa.attname IS NOT NULL) AS referenced,
           bool_and(pg_catalog.has_column_privilege(con.conrelid, a.attnum, 'SELECT')
                    AND (con.contype <> 'f' OR pg_catalog.has_column_privilege(con.confrelid, fa.attnum, 'SELECT'))) AS readable
    FROM pg_catalog.pg_constraint con
    CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
    LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[k.ord]
    WHERE con.contype IN ('p', 'f') AND con.conrelid IN (SELECT oid FROM readable)
    GROUP BY con.oid, con.conrelid, con.confrelid, con.contype
)
SELECT jsonb_build_object('tables', coalesce(jsonb_agg(jsonb_build_object(
    'schema', CASE WHEN pg_catalog.pg_table_is_visible(r.oid) THEN NULL ELSE r.nspname END,
    'name', r.relname,
    'kind', CASE r.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' WHEN 'f' THEN 'foreign_table' ELSE 'table' END,
    'comment', pg_catalog.obj_description(r.oid, 'pg_class'),
    'columns', (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
            'name', a.attname,
            'data_type', pg_catalog.format_type(a.atttypid, a.atttypmod),
            'nullable', NOT a.attnotnull,
            'comment', pg_catalog.col_description(r.oid, a.attnum),
            'frequent_values', coalesce((
                SELECT to_jsonb((s.most_common_vals::text::text[])[1:$2])
                FROM pg_catalog.pg_stats s
                WHERE s.schemaname = r.nspname AND s.tablename = r.relname AND s.attname = a.attname
                  AND t.typcategory = 'S' AND s.n_distinct BETWEEN 1 AND $1
            ), '[]'::jsonb)
        ) ORDER BY a.attnum), '[]'::jsonb)
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND pg_catalog.has_column_privilege(r.oid, a.attnum, 'SELECT')),
    'primary_key', coalesce((SELECT k.columns FROM key_columns k
                             WHERE k.conrelid = r.oid AND k.contype = 'p' AND k.readable), '[]'::jsonb),
    'foreign_keys', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
            'columns', k.columns,
            'references_schema', CASE WHEN pg_catalog.pg_table_is_visible(fc.oid) THEN NULL ELSE fn.nspname END,
            'references_table', fc.relname,
            'references_columns', k.referenced))
        FROM key_columns k
        JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
        JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
        WHERE k.conrelid = r.oid AND k.contype = 'f' AND k.readable), '[]'::jsonb)
) ORDER BY r.nspname, r.relname), '[]'::jsonb))
FROM readable r
"#;

/// The schema the calling role may read.
pub fn readable_schema() -> Result<Schema> {
    let json = Spi::get_one_with_args::<JsonB>(CATALOG_QUERY, &[LOW_CARDINALITY.into(), FREQUENT_VALUES.into()])
        .map_err(|e| Nl2sqlError::new(pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("reading the catalogs failed: {e}")))?
        .map(|j| j.0)
        .unwrap_or_default();
    serde_json::from_value(json).map_err(|e| {
        Nl2sqlError::new(pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("unexpected catalog shape: {e}"))
    })
}

/// The readable schema as prompt text; an error if the role can read nothing at all.
pub fn readable_schema_text() -> Result<String> {
    let schema = readable_schema()?;
    if schema.tables.is_empty() {
        return Err(Nl2sqlError::new(
            pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "there are no tables or views on your search_path that you may read",
        )
        .hint("Create or load a table (e.g. SELECT nl2sql_load_csv('/path/file.csv', 'sales')), GRANT SELECT on one, or SET search_path to the schema that holds your data."));
    }
    Ok(schema.render())
}
