-- The extension's own tables. What a caller may see of them is decided by PostgreSQL: each has
-- row-level security for non-owners, with policies that use pg_catalog functions only.

-- Verified examples: a question and SQL that passed nl2sql's checker as the role that added it
-- (nl2sql_add_example). An example is shown, to the model and in this table, only to roles that
-- may read every table its SQL reads. Adding one takes INSERT on this table (the owner grants it
-- to the roles that curate examples).
CREATE TABLE nl2sql_examples (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question text NOT NULL,
    sql text NOT NULL,
    tables regclass[] NOT NULL,
    added_by name NOT NULL DEFAULT current_user,
    added_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER TABLE nl2sql_examples ENABLE ROW LEVEL SECURITY;
CREATE POLICY examples_of_readable_tables ON nl2sql_examples FOR SELECT
    USING (NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(tables) AS t(relation)
                       WHERE NOT pg_catalog.has_table_privilege(t.relation, 'SELECT')));
CREATE POLICY examples_added_as_oneself ON nl2sql_examples FOR INSERT WITH CHECK (added_by = current_user);
CREATE POLICY examples_removed_by_who_added ON nl2sql_examples FOR DELETE USING (added_by = current_user);
GRANT SELECT ON nl2sql_examples TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('nl2sql_examples', '');

-- The glossary: business terms and what they mean in this database, shown to the model with the
-- schema (nl2sql_glossary(term, meaning) sets one). Changing it takes INSERT/UPDATE/DELETE here.
CREATE TABLE nl2sql_glossary (
    term text PRIMARY KEY,
    meaning text NOT NULL
);
GRANT SELECT ON nl2sql_glossary TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('nl2sql_glossary', '');

-- The value index: distinct values of low-cardinality text columns (nl2sql_index_values()), so a
-- question that names a value leads the model to its column. A caller sees only values of
-- columns it may read, of tables where no row security applies to it.
CREATE TABLE nl2sql_value_index (
    relation regclass NOT NULL,
    attnum smallint NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (relation, attnum, value)
);
ALTER TABLE nl2sql_value_index ENABLE ROW LEVEL SECURITY;
CREATE POLICY values_of_readable_columns ON nl2sql_value_index FOR SELECT
    USING (pg_catalog.has_column_privilege(relation, attnum, 'SELECT') AND NOT pg_catalog.row_security_active(relation));
GRANT SELECT ON nl2sql_value_index TO PUBLIC;

-- When the value index was last built (one row once it has been), and from which tables and
-- text columns: when those change, the next question rebuilds it.
CREATE TABLE nl2sql_value_index_state (
    built_at timestamptz NOT NULL,
    columns text NOT NULL
);
GRANT SELECT ON nl2sql_value_index_state TO PUBLIC;

-- Virtual foreign keys: columns that join other tables' columns where no FOREIGN KEY constraint
-- says so (a schema loaded from files, a warehouse without constraints). The model is shown them
-- as foreign keys, and schema linking follows them, exactly as declared ones; nothing enforces
-- them. nl2sql_add_virtual_foreign_key adds one. Columns are kept by number, like pg_constraint,
-- so a rename follows; a row whose table or column is gone is ignored. A role sees a row only
-- when it may read both tables (and the prompt shows it only when it may read every column).
-- Changing them takes INSERT/DELETE here (the owner grants it to the roles that curate them).
CREATE TABLE nl2sql_virtual_foreign_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conrelid regclass NOT NULL,
    conkey smallint[] NOT NULL,
    confrelid regclass NOT NULL,
    confkey smallint[] NOT NULL,
    UNIQUE (conrelid, conkey, confrelid, confkey)
);
ALTER TABLE nl2sql_virtual_foreign_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY virtual_foreign_keys_of_readable_tables ON nl2sql_virtual_foreign_keys FOR SELECT
    USING (pg_catalog.has_any_column_privilege(conrelid, 'SELECT') AND pg_catalog.has_any_column_privilege(confrelid, 'SELECT'));
CREATE POLICY virtual_foreign_keys_added ON nl2sql_virtual_foreign_keys FOR INSERT WITH CHECK (true);
CREATE POLICY virtual_foreign_keys_removed ON nl2sql_virtual_foreign_keys FOR DELETE
    USING (pg_catalog.has_any_column_privilege(conrelid, 'SELECT') AND pg_catalog.has_any_column_privilege(confrelid, 'SELECT'));
GRANT SELECT ON nl2sql_virtual_foreign_keys TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('nl2sql_virtual_foreign_keys', '');
