-- Questions to try on the demo table (psql -d nl2sql -f sql/examples.sql).
\timing on
SELECT * FROM nl2sql('What is the most bought pizza on Fridays?');
SELECT nl2sql_sql('What was the total revenue in each month?');
SELECT * FROM nl2sql('Which 3 pizzas were sold most often?');
SELECT nl2sql_answer('What is the average price of a large pizza?');
SELECT explain_rows('How many pizzas were sold in July?',
                    (SELECT jsonb_agg(r) FROM nl2sql('How many pizzas were sold in July?') r));
SELECT jsonb_pretty(nl2sql_ask('Which size sells best?'));
