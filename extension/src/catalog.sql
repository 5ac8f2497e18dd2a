-- What the calling role may read, as one jsonb document for the engine's Schema type: tables,
-- views, materialized views and foreign tables on its search path that it can SELECT from, the
-- columns it can read, primary and foreign keys (declared or virtual) made only of readable
-- columns, comments, and the most common values of low-cardinality text columns (pg_stats hides
-- what the role may not see, including tables under row-level security). Objects that belong to
-- an extension, and the system catalogs, are left out.
--
-- Runs under search_path = pg_catalog, pg_temp (see guc_scope.rs), and names its functions with
-- pg_catalog. anyway, so no function or operator a user created can take part in it.
-- $1: text columns with at most this many distinct values get their frequent values listed
-- $2: how many of those values are listed
-- $3: the caller's search path, explicit schemas only (whose tables are shown)
-- $4: the caller's search path with the implicit schemas (pg_catalog, pg_temp) in their places
--     (a relation is named without its schema when it is the first of its name on that path)
-- @virtual_foreign_keys@: the extension's table of them, qualified (schema_context.rs fills it in)
WITH first_on_path AS (
    SELECT DISTINCT ON (c.relname) c.oid
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.unnest($4::pg_catalog.name[]) WITH ORDINALITY AS path(nspname, position) ON path.nspname = n.nspname
    ORDER BY c.relname, path.position
),
readable AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
      AND n.nspname = ANY ($3::pg_catalog.name[])
      -- the system catalogs are not the user's data, even when the path names them
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND pg_catalog.has_any_column_privilege(c.oid, 'SELECT')
      -- objects that belong to an extension (ours included) are not the user's data
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
),
key_columns AS (
    SELECT con.oid, con.conrelid, con.confrelid, con.contype,
           pg_catalog.jsonb_agg(a.attname ORDER BY k.ord) AS columns,
           pg_catalog.jsonb_agg(fa.attname ORDER BY k.ord) FILTER (WHERE fa.attname IS NOT NULL) AS referenced,
           pg_catalog.bool_and(pg_catalog.has_column_privilege(con.conrelid, a.attnum, 'SELECT')
                    AND (con.contype <> 'f' OR pg_catalog.has_column_privilege(con.confrelid, fa.attnum, 'SELECT'))) AS readable
    FROM pg_catalog.pg_constraint con
    CROSS JOIN LATERAL pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
    LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[k.ord]
    WHERE con.contype IN ('p', 'f') AND con.conrelid IN (SELECT oid FROM readable)
    GROUP BY con.oid, con.conrelid, con.confrelid, con.contype
    UNION ALL
    -- virtual foreign keys (nl2sql_add_virtual_foreign_key), shown as declared ones are; one
    -- whose column was dropped since, or whose join a constraint declares (either way round), is
    -- left out
    SELECT NULL, v.conrelid, v.confrelid, 'f',
           pg_catalog.jsonb_agg(a.attname ORDER BY k.ord),
           pg_catalog.jsonb_agg(fa.attname ORDER BY k.ord),
           pg_catalog.bool_and(fa.attname IS NOT NULL
                    AND pg_catalog.has_column_privilege(v.conrelid, a.attnum, 'SELECT')
                    AND pg_catalog.has_column_privilege(v.confrelid, fa.attnum, 'SELECT'))
    FROM @virtual_foreign_keys@ v
    CROSS JOIN LATERAL pg_catalog.unnest(v.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = v.conrelid AND a.attnum = k.attnum AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = v.confrelid AND fa.attnum = v.confkey[k.ord] AND NOT fa.attisdropped
    WHERE v.conrelid IN (SELECT oid FROM readable)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con
                      WHERE con.contype = 'f'
                        AND ((con.conrelid, con.conkey, con.confrelid, con.confkey) = (v.conrelid, v.conkey, v.confrelid, v.confkey)
                          OR (con.conrelid, con.conkey, con.confrelid, con.confkey) = (v.confrelid, v.confkey, v.conrelid, v.conkey)))
    GROUP BY v.id, v.conrelid, v.confrelid, v.conkey
    HAVING pg_catalog.count(*) = pg_catalog.cardinality(v.conkey)
)
SELECT pg_catalog.jsonb_build_object('tables', coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
    'schema', CASE WHEN r.oid IN (SELECT oid FROM first_on_path) THEN NULL ELSE r.nspname END,
    'name', r.relname,
    'kind', CASE r.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' WHEN 'f' THEN 'foreign_table' ELSE 'table' END,
    'comment', pg_catalog.obj_description(r.oid, 'pg_class'),
    'columns', (
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
            'name', a.attname,
            'data_type', pg_catalog.format_type(a.atttypid, a.atttypmod),
            'nullable', NOT a.attnotnull,
            'comment', pg_catalog.col_description(r.oid, a.attnum),
            'frequent_values', coalesce((
                SELECT pg_catalog.to_jsonb((s.most_common_vals::text::text[])[1:$2])
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
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
            'columns', k.columns,
            'references_schema', CASE WHEN fc.oid IN (SELECT oid FROM first_on_path) THEN NULL ELSE fn.nspname END,
            'references_table', fc.relname,
            'references_columns', k.referenced))
        FROM key_columns k
        JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
        JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
        WHERE k.conrelid = r.oid AND k.contype = 'f' AND k.readable), '[]'::jsonb)
) ORDER BY r.nspname, r.relname), '[]'::jsonb))
FROM readable r
