-- The demo: the extension, the pizza sales of 2015 as one typed table, and a few questions.
-- psql -v csv=/absolute/path/to/data/data.csv -f sql/demo.sql   (the path is read by the server)
CREATE EXTENSION IF NOT EXISTS nl2sql;
SELECT nl2sql_load_csv(:'csv', 'pizza_sales') AS rows_loaded;
COMMENT ON TABLE pizza_sales IS 'One row per pizza sold in 2015';

-- The web service connects as this role: it may read the demo data and nothing else, and
-- nl2sql runs everything as the caller.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nl2sql_web') THEN
        CREATE ROLE nl2sql_web LOGIN PASSWORD 'nl2sql';
    END IF;
END $$;
GRANT SELECT ON pizza_sales TO nl2sql_web;
