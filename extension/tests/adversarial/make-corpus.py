#!/usr/bin/env python3
"""Writes corpus.tsv: the statements the adversarial test (extension/src/tests/adversarial.rs) aims at
nl2sql's checker, each labelled `allowed` or `refused` with a word the refusal must contain.

The fixture they run against is created by the test: tables t(a int, b text, d date) and
u(a int, c text), sequence s, view v_random over random(), functions and operators of public
that lie about their volatility, dblink and postgres_fdw installed. volatile-functions.tsv lists
every VOLATILE function of pg_catalog with concrete argument types (name, NULL arguments), from:

    SELECT p.proname, coalesce(string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY o), '')
    FROM pg_proc p LEFT JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, o) ON true
    WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.provolatile = 'v' AND p.prokind = 'f'
      AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) x JOIN pg_type ty ON ty.oid = x WHERE ty.typtype = 'p')
      AND (SELECT typtype FROM pg_type WHERE oid = p.prorettype) <> 'p'
    GROUP BY p.oid, p.proname ORDER BY p.proname, 2
"""
import os

here = os.path.dirname(os.path.abspath(__file__))
rows = []

def refused(why, *statements):
    for sql in statements:
        rows.append(("refused", why, sql))

def allowed(*statements):
    for sql in statements:
        rows.append(("allowed", "", sql))

# Every kind of statement that is not a SELECT.
refused("statements are not allowed",
    "INSERT INTO t VALUES (9, 'x', now())", "INSERT INTO t SELECT * FROM t", "INSERT INTO t DEFAULT VALUES",
    "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "INSERT INTO t VALUES (1) RETURNING *",
    "UPDATE t SET a = a + 1", "UPDATE t SET b = 'x' WHERE a = 1 RETURNING a", "UPDATE t SET a = u.a FROM u WHERE t.a = u.a",
    "DELETE FROM t", "DELETE FROM t WHERE a IN (SELECT a FROM u)", "DELETE FROM t USING u WHERE t.a = u.a RETURNING t.*",
    "MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE",
    "MERGE INTO t USING u ON t.a = u.a WHEN NOT MATCHED THEN INSERT VALUES (u.a, u.c, now())",
    "TRUNCATE t", "TRUNCATE t, u RESTART IDENTITY CASCADE",
    "CREATE TABLE x (a int)", "CREATE TEMP TABLE x (a int)", "CREATE UNLOGGED TABLE x (a int)", "CREATE TABLE x AS SELECT * FROM t",
    "CREATE TABLE x (LIKE t)", "CREATE VIEW x AS SELECT 1", "CREATE OR REPLACE VIEW v_random AS SELECT 1 AS a, 2.0 AS r",
    "CREATE MATERIALIZED VIEW x AS SELECT 1", "REFRESH MATERIALIZED VIEW x", "CREATE INDEX ON t (a)", "CREATE UNIQUE INDEX i ON t (a)",
    "CREATE SEQUENCE x", "ALTER SEQUENCE s RESTART", "CREATE SCHEMA x", "CREATE ROLE x", "CREATE USER x", "ALTER ROLE CURRENT_USER SUPERUSER",
    "ALTER USER CURRENT_USER PASSWORD 'x'", "DROP ROLE IF EXISTS x", "CREATE EXTENSION hstore", "DROP EXTENSION dblink",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE OR REPLACE FUNCTION public.stable_writer() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE PROCEDURE x() LANGUAGE sql AS 'SELECT 1'", "CREATE AGGREGATE x (int) (SFUNC = int4pl, STYPE = int)",
    "CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)", "CREATE TYPE x AS ENUM ('a')", "CREATE DOMAIN x AS int",
    "CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION public.audit()", "CREATE RULE x AS ON INSERT TO t DO INSTEAD NOTHING",
    "CREATE POLICY x ON t USING (true)", "ALTER TABLE t ENABLE ROW LEVEL SECURITY", "ALTER TABLE t DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE t ADD COLUMN z int", "ALTER TABLE t DROP COLUMN b", "ALTER TABLE t RENAME TO x", "ALTER TABLE t OWNER TO CURRENT_USER",
    "ALTER VIEW v_random RENAME TO x", "ALTER FUNCTION public.stable_writer() SECURITY DEFINER", "ALTER SYSTEM SET work_mem = '1GB'",
    "ALTER DATABASE postgres SET search_path = public", "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
    "DROP TABLE t", "DROP TABLE IF EXISTS t CASCADE", "DROP VIEW v_random", "DROP SEQUENCE s", "DROP FUNCTION public.stable_writer()",
    "DROP SCHEMA public CASCADE", "DROP OWNED BY CURRENT_USER", "REASSIGN OWNED BY CURRENT_USER TO postgres",
    "GRANT SELECT ON t TO PUBLIC", "GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC", "REVOKE SELECT ON t FROM PUBLIC",
    "GRANT pg_read_server_files TO PUBLIC", "COMMENT ON TABLE t IS 'x'", "SECURITY LABEL ON TABLE t IS 'x'",
    "COPY t TO '/tmp/nl2sql-out'", "COPY t FROM '/etc/passwd'", "COPY t TO PROGRAM 'id'", "COPY t FROM PROGRAM 'id'", "COPY (SELECT 1) TO STDOUT",
    "COPY t FROM STDIN", "DO $$ BEGIN DELETE FROM t; END $$", "DO 'BEGIN NULL; END'", "CALL p()",
    "SET statement_timeout = 0", "SET LOCAL search_path = evil", "SET ROLE NONE", "SET SESSION AUTHORIZATION DEFAULT", "SET TRANSACTION READ WRITE",
    "RESET ALL", "RESET ROLE", "SHOW ALL", "SHOW search_path", "BEGIN", "START TRANSACTION", "COMMIT", "END", "ROLLBACK", "ABORT",
    "SAVEPOINT x", "RELEASE SAVEPOINT x", "ROLLBACK TO SAVEPOINT x", "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'",
    "VACUUM", "VACUUM FULL t", "ANALYZE t", "CLUSTER t", "REINDEX TABLE t", "CHECKPOINT", "LOCK TABLE t", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
    "EXPLAIN SELECT 1", "EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN (ANALYZE) INSERT INTO t VALUES (1)",
    "PREPARE q AS DELETE FROM t", "PREPARE r AS SELECT 1", "EXECUTE q", "DEALLOCATE ALL",
    "LISTEN x", "UNLISTEN *", "NOTIFY x, 'payload'", "DECLARE c CURSOR FOR SELECT 1", "FETCH c", "MOVE c", "CLOSE c",
    "DISCARD ALL", "LOAD 'auto_explain'", "IMPORT FOREIGN SCHEMA public FROM SERVER x INTO public",
    "CREATE SERVER x FOREIGN DATA WRAPPER postgres_fdw", "CREATE USER MAPPING FOR CURRENT_USER SERVER x",
    "CREATE FOREIGN TABLE x (a int) SERVER x", "CREATE EVENT TRIGGER x ON ddl_command_start EXECUTE FUNCTION public.audit()",
    "CREATE PUBLICATION x FOR ALL TABLES", "CREATE STATISTICS x ON a, b FROM t", "CREATE CAST (int AS text) WITH INOUT",
    "CREATE DATABASE x", "DROP DATABASE postgres", "CREATE TABLESPACE x LOCATION '/tmp'",
    "ALTER TABLE t SET (autovacuum_enabled = false)", "CREATE COLLATION x (locale = 'C')",
)

refused("SELECT INTO creates a table",
    "SELECT * INTO x FROM t", "SELECT a INTO TEMP x FROM t", "SELECT a INTO UNLOGGED x FROM t", "SELECT 1 AS a INTO x",
    "SELECT * INTO TABLE x FROM t WHERE a > 1",
)

# Writes hidden inside a SELECT.
refused("WITH clauses that INSERT, UPDATE or DELETE",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "WITH d AS (DELETE FROM t RETURNING a) SELECT count(*) FROM d",
    "WITH i AS (INSERT INTO t VALUES (3, 'z', now()) RETURNING a) SELECT a FROM i",
    "WITH x AS (UPDATE t SET a = 0 RETURNING a) SELECT 1",
    "WITH x AS (SELECT 1), y AS (DELETE FROM u RETURNING *) SELECT * FROM x",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3), d AS (DELETE FROM t RETURNING a) SELECT * FROM r",
    "WITH d AS (DELETE FROM t) SELECT 1",
    "WITH m AS (INSERT INTO t SELECT * FROM t RETURNING *) SELECT count(*) FROM m",
)

refused("ERROR",
    "SELECT * FROM (DELETE FROM t RETURNING *) x",
    "SELECT (WITH d AS (DELETE FROM t RETURNING a) SELECT a FROM d)",
    "SELECT * FROM t WHERE a IN (WITH d AS (DELETE FROM u RETURNING a) SELECT a FROM d)",
    "SELECT a FROM t UNION ALL (SELECT a FROM u FOR UPDATE)", "SELEC 1", "SELECT FROM WHERE", "SELECT * FROM nonexistent", "SELECT nope FROM t", "SELECT dblink_bogus()",
    "SELECT 'unterminated", "SELECT $$unterminated", "SELECT 1 FROM t WHERE", "SELECT (1", "SELECT a FROM t GROUP",
)

# Row locks.
refused("FOR UPDATE / FOR SHARE",
    *[f"SELECT * FROM t {lock}" for lock in ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE", "FOR UPDATE NOWAIT",
                                              "FOR UPDATE SKIP LOCKED", "FOR SHARE OF t", "FOR UPDATE OF t NOWAIT"]],
    "SELECT * FROM (SELECT * FROM t FOR UPDATE) sub", "WITH x AS (SELECT * FROM t FOR NO KEY UPDATE) SELECT * FROM x",
    "SELECT * FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)", "SELECT (SELECT a FROM t LIMIT 1 FOR SHARE)",
"SELECT * FROM t, LATERAL (SELECT * FROM u FOR KEY SHARE) l",
)

# Several statements, and comments, quoting and spacing tricks.
refused("statements; only one SELECT",
    "SELECT 1; DROP TABLE t", "SELECT 1; SELECT 2", "SELECT 1;;DELETE FROM t", "SELECT 1 -- \n; DELETE FROM t",
    "SELECT 1 /* ; */ ; DELETE FROM t", "SELECT ';' ; DELETE FROM t", "SELECT $$;$$; DELETE FROM t", "SELECT 1;\nTRUNCATE t",
    "SELECT 1; COMMIT; DELETE FROM t", "SELECT 1; SET ROLE postgres", "WITH x AS (SELECT 1) SELECT * FROM x; DROP TABLE u",
)
refused("statements are not allowed",
    "/* SELECT */ DELETE FROM t", "-- SELECT\nDELETE FROM t", "  \n\t DELETE FROM t", "DeLeTe FrOm t", "delete/**/from t",
    "U&\"\\0044ELETE\" FROM t",
)
refused("the SQL is empty", "", "   ", "-- nothing", "/* nothing */", ";")

# Every volatile function of pg_catalog, and the dangerous ones with real arguments.
with open(os.path.join(here, "volatile-functions.tsv")) as f:
    for line in f:
        name, arguments = line.rstrip("\n").split("\t")
        refused("volatile function", f"SELECT pg_catalog.{name}({arguments})")
refused("volatile function",
    "SELECT pg_sleep(1)", "SELECT * FROM t, pg_sleep(1)", "SELECT a FROM t WHERE a IN (SELECT pg_backend_pid() FROM pg_sleep(0))",
    "SELECT set_config('search_path', 'x', false)", "SELECT nextval('s')", "SELECT setval('s', 100)", "SELECT currval('s')",
    "SELECT lo_import('/etc/hostname')", "SELECT lo_export(1, '/tmp/x')", "SELECT lo_unlink(1)",
    "SELECT pg_read_file('/etc/passwd')", "SELECT pg_read_binary_file('/etc/passwd')", "SELECT * FROM pg_ls_dir('/')",
    "SELECT pg_stat_file('/etc/passwd')", "SELECT pg_terminate_backend(pg_backend_pid())", "SELECT pg_cancel_backend(1)",
    "SELECT pg_reload_conf()", "SELECT pg_rotate_logfile()",
    "SELECT pg_advisory_lock(1)", "SELECT pg_try_advisory_lock(1)", "SELECT pg_advisory_xact_lock(1)", "SELECT pg_advisory_unlock_all()",
    "SELECT pg_notify('x', 'y')", "SELECT random()", "SELECT a FROM t ORDER BY random()", "SELECT gen_random_uuid()",
    "SELECT clock_timestamp()", "SELECT timeofday()", "SELECT * FROM v_random", "SELECT r FROM v_random WHERE a = 1",
    "SELECT * FROM dblink('dbname=postgres', 'DELETE FROM t') AS r(x text)", "SELECT dblink_exec('dbname=postgres', 'DELETE FROM t')",
    "SELECT dblink_connect('c', 'dbname=postgres')", "SELECT dblink_send_query('c', 'DELETE FROM t')", "SELECT postgres_fdw_disconnect_all()",
    "SELECT pg_create_restore_point('x')", "SELECT pg_switch_wal()", "SELECT pg_stat_reset()", "SELECT pg_import_system_collations('pg_catalog')",
"SELECT a, random() AS r FROM t", "SELECT (SELECT random())",
    "SELECT CASE WHEN a > 0 THEN pg_sleep(0) END FROM t", "SELECT coalesce(NULL, nextval('s'))", "SELECT array_agg(random()) FROM t",
)

# The same dangerous calls hidden in every place a query can hold an expression.
for call in ["pg_sleep(1)", "set_config('role', 'postgres', false)", "nextval('s')", "pg_read_file('/etc/passwd')",
             "pg_terminate_backend(1)", "lo_import('/etc/hostname')", "pg_advisory_lock(1)",
             "dblink_exec('dbname=postgres', 'DELETE FROM t')", "pg_notify('x', 'y')", "setval('s', 1)", "pg_reload_conf()",
             "random()", "pg_ls_dir('/')", "pg_stat_reset()", "pg_cancel_backend(1)"]:
    refused("volatile function",
        f"SELECT a FROM t WHERE {call} IS NOT NULL",
        f"WITH x AS (SELECT {call} AS v) SELECT 1 FROM x",
        f"SELECT (SELECT {call}) AS v",
        f"SELECT a FROM t ORDER BY {call} IS NULL",
        f"SELECT a FROM t, LATERAL (SELECT {call} AS v) l",
        f"SELECT a FROM t GROUP BY a HAVING count({call}) >= 0",
        f"SELECT CASE WHEN false THEN {call} END",
    )

# Not VOLATILE, but each call assigns a transaction ID.
for call in ["txid_current()", "pg_current_xact_id()"]:
    refused("assigns a transaction ID", f"SELECT {call}", f"SELECT a FROM t WHERE {call} IS NOT NULL", f"SELECT (SELECT {call})",
            f"WITH x AS (SELECT {call} AS v) SELECT 1 FROM x", f"SELECT CASE WHEN false THEN {call} END")

# Code of user schemas: functions that lie about their volatility, operators, aggregates, casts.
refused("not in pg_catalog",
    "SELECT public.stable_writer()", "SELECT stable_writer() FROM t", "SELECT * FROM t WHERE a = public.stable_writer()",
    "SELECT public.immutable_escalator()", "SELECT a FROM t ORDER BY public.immutable_escalator()",
    "SELECT public.definer_reader()", "SELECT * FROM public.set_returning_writer()", "SELECT public.sql_nextval()",
    "SELECT a + 1.5 FROM t", "SELECT a FROM t WHERE a + 1.5 > 0", "SELECT public.total(a) FROM t", "SELECT lower(b::varchar) FROM t",
    "SELECT a::public.positive_int FROM t", "SELECT * FROM v_trojan", "SELECT (SELECT public.stable_writer())",
    "WITH x AS (SELECT public.stable_writer() AS w) SELECT w FROM x", "SELECT public.stable_writer() + 1",
    "SELECT * FROM t WHERE EXISTS (SELECT public.definer_reader())", "SELECT b FROM t GROUP BY b HAVING public.total(a) > 0",
)

# Plain reads: all must be allowed.
allowed(
    "SELECT 1", "SELECT a, b FROM t", "SELECT * FROM t WHERE a > 1 ORDER BY a DESC LIMIT 5", "SELECT count(*) FROM t",
    "SELECT b, count(*), sum(a), avg(a), min(d), max(d) FROM t GROUP BY b HAVING count(*) > 0 ORDER BY 2 DESC",
    "SELECT t.a, u.c FROM t JOIN u ON u.a = t.a", "SELECT t.a FROM t LEFT JOIN u USING (a) WHERE u.a IS NULL",
    "SELECT a FROM t UNION SELECT a FROM u", "SELECT a FROM t INTERSECT SELECT a FROM u", "SELECT a FROM t EXCEPT ALL SELECT a FROM u",
    "WITH x AS (SELECT a FROM t) SELECT count(*) FROM x", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "SELECT a, row_number() OVER (ORDER BY a), rank() OVER (PARTITION BY b ORDER BY a) FROM t",
    "SELECT a, lag(a) OVER w, sum(a) OVER (w ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t WINDOW w AS (ORDER BY a)",
    "SELECT * FROM t WHERE a IN (SELECT a FROM u)", "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a)",
    "SELECT (SELECT max(a) FROM u) AS m", "SELECT * FROM t, LATERAL (SELECT c FROM u WHERE u.a = t.a LIMIT 1) l",
    "TABLE t", "VALUES (1, 'x'), (2, 'y')", "SELECT * FROM generate_series(1, 10) g", "SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY",
    "SELECT now(), current_date, current_timestamp, localtime", "SELECT date_trunc('month', d), EXTRACT(DOW FROM d), to_char(d, 'YYYY-MM') FROM t",
    "SELECT d - INTERVAL '7 days', age(d), d + 1 FROM t", "SELECT lower(b), upper(b), length(b), substring(b FROM 1 FOR 2), b || '!' FROM t",
    "SELECT b ILIKE '%x%', b ~ '^x', position('x' IN b), replace(b, 'x', 'y'), split_part(b, ',', 1) FROM t",
    "SELECT round(a::numeric / 3, 2), abs(a), ceil(a / 2.0), floor(a * 1.5), mod(a, 2), power(a, 2) FROM t",
    "SELECT CASE WHEN a > 1 THEN 'big' ELSE 'small' END, coalesce(b, '-'), nullif(a, 0), greatest(a, 1), least(a, 1) FROM t",
    "SELECT CAST(a AS text), a::bigint, b::varchar(3), d::timestamp FROM t", "SELECT count(DISTINCT b), string_agg(b, ', ' ORDER BY b) FROM t",
    "SELECT array_agg(a), json_agg(b), jsonb_build_object('a', a) FROM t GROUP BY a", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t",
    "SELECT count(*) FILTER (WHERE a > 1) FROM t", "SELECT DISTINCT ON (b) b, a FROM t ORDER BY b, a", "SELECT a FROM t ORDER BY a NULLS LAST OFFSET 1 FETCH FIRST 2 ROWS ONLY",
    "SELECT * FROM t WHERE d BETWEEN '2015-01-01' AND '2015-12-31'", "SELECT * FROM t WHERE b IS NOT NULL AND a <> 3 OR a IS NULL",
    "SELECT t1.a, t2.a FROM t t1 CROSS JOIN t t2", "SELECT * FROM t NATURAL JOIN u", "SELECT * FROM t FULL OUTER JOIN u ON t.a = u.a",
    "SELECT a FROM t WHERE a = ANY (ARRAY[1, 2])", "SELECT a FROM t WHERE b = ALL (SELECT c FROM u)", "SELECT x.* FROM (SELECT a, b FROM t) x",
    "SELECT md5(b), encode(b::bytea, 'hex') FROM t", "SELECT to_jsonb(t) FROM t", "SELECT row_to_json(u) FROM u",
    "SELECT version()", "SELECT current_user, session_user", "SELECT current_setting('search_path')",
    "SELECT pg_typeof(a) FROM t", "SELECT format('%s-%s', a, b) FROM t", "SELECT regexp_replace(b, '[aeiou]', '', 'g') FROM t",
    "SELECT width_bucket(a, 0, 10, 5) FROM t", "SELECT date_part('year', d)::int FROM t", "SELECT make_date(2015, 1, a) FROM t",
    "SELECT a FROM t -- a comment\n", "/* leading comment */ SELECT a FROM t", "SELECT 'DELETE FROM t; --' AS text_only",
    "SELECT a AS \"DROP TABLE t\" FROM t", "(SELECT a FROM t) UNION ALL (SELECT a FROM u) ORDER BY 1",
    "SELECT * FROM t WHERE b LIKE 'x%' ESCAPE '!'", "SELECT a FROM t GROUP BY ROLLUP (a)", "SELECT a, b FROM t GROUP BY GROUPING SETS ((a), (b))",
    "SELECT (SELECT count(*) FROM u WHERE u.a = t.a) FROM t", "SELECT a FROM t WHERE a > (SELECT avg(a) FROM u)",
    "SELECT relname FROM pg_class LIMIT 1", "SELECT count(*) FROM information_schema.tables",
)

with open(os.path.join(here, "corpus.tsv"), "w") as out:
    out.write("# expected\tthe refusal says\tsql (\\n, \\t and \\\\ escaped) -- written by make-corpus.py\n")
    for expected, why, sql in rows:
        escaped = sql.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        out.write(f"{expected}\t{why}\t{escaped}\n")
print(f"{len(rows)} statements: {sum(r[0] == 'allowed' for r in rows)} allowed, {sum(r[0] == 'refused' for r in rows)} refused")
