// What the model is told besides the schema: linking of large schemas, the value index, the
// glossary and verified examples; each respects privileges and row security.

/// A small academic database (shaped like sql-eval's) with comments, and no foreign keys.
fn academic_fixture() {
    for (table, columns) in [
        ("author", "aid bigint, name text, homepage text, oid bigint"),
        ("publication", "pid bigint, title text, year bigint, citation_num bigint, jid bigint, cid bigint"),
        ("writes", "aid bigint, pid bigint"),
        ("conference", "cid bigint, name text, homepage text"),
        ("journal", "jid bigint, name text, homepage text"),
        ("keyword", "kid bigint, keyword text"),
        ("publication_keyword", "pid bigint, kid bigint"),
        ("organization", "oid bigint, name text, continent text, homepage text"),
        ("domain", "did bigint, name text"),
        ("domain_author", "aid bigint, did bigint"),
    ] {
        run(&format!("CREATE TABLE {table} ({columns})"));
    }
    run("COMMENT ON COLUMN publication.citation_num IS 'The number of citations the publication received'");
    run("COMMENT ON COLUMN organization.continent IS 'The continent the organization is on'");
    run("COMMENT ON COLUMN domain.name IS 'The name of the research domain'");
    run("INSERT INTO domain VALUES (1, 'Machine Learning'), (2, 'Databases'), (3, 'Computer Vision')");
    run("INSERT INTO organization VALUES (1, 'MIT', 'North America', ''), (2, 'ETH', 'Europe', '')");
    run("ANALYZE");
}

/// The CREATE TABLE lines of the prompt: which tables the model is shown.
fn tables_in_prompt(question: &str) -> Vec<String> {
    let prompt = one::<String>(&format!("SELECT nl2sql_prompt({})", sql_literal(question)));
    prompt.lines().filter_map(|l| l.strip_prefix("CREATE TABLE ").map(|rest| rest.split(' ').next().unwrap().to_owned())).collect()
}

#[pg_test]
fn a_large_schema_is_linked_to_the_question() {
    academic_fixture();
    run("SET nl2sql.schema_budget_tokens = 60");
    for (question, needed, not_needed) in [
        ("How many publications did each author write?", &["author", "publication", "writes"][..], &["organization", "keyword"][..]),
        ("Which organizations are in Europe?", &["organization"][..], &["writes", "keyword"][..]),
        ("List the conferences and their homepages", &["conference"][..], &["domain_author"][..]),
        ("Which publication has the most citations?", &["publication"][..], &["organization"][..]),
    ] {
        let tables = tables_in_prompt(question);
        assert!(needed.iter().all(|t| tables.iter().any(|x| x == t)), "{question}: {tables:?} lacks one of {needed:?}");
        assert!(not_needed.iter().all(|t| !tables.iter().any(|x| x == t)), "{question}: {tables:?} holds one of {not_needed:?}");
    }
    run("SET nl2sql.schema_budget_tokens = 0");
    assert_eq!(tables_in_prompt("Which organizations are in Europe?").len(), 10, "0: the whole schema");
}

#[pg_test]
fn named_values_are_marked_in_the_prompt_and_the_index_follows_the_catalog() {
    academic_fixture();
    let prompt = one::<String>("SELECT nl2sql_prompt('How many papers are there in machine learning?')");
    assert!(prompt.contains("  name text -- The name of the research domain\n"), "{prompt}");
    assert!(prompt.contains("Values in the database that the question names: domain.name = 'Machine Learning'"), "{prompt}");
    // A table added later is indexed on the next question, without a manual rebuild.
    run("CREATE TABLE venue (city text)");
    run("INSERT INTO venue VALUES ('Reykjavik')");
    let prompt = one::<String>("SELECT nl2sql_prompt('Which venues are in Reykjavik?')");
    assert!(prompt.contains("venue.city = 'Reykjavik'"), "{prompt}");
    // A value two columns hold goes with the one the question points to, with both when neither.
    run("CREATE TABLE sponsor (home text)");
    run("INSERT INTO sponsor VALUES ('Reykjavik')");
    let prompt = one::<String>("SELECT nl2sql_prompt('Which venues are in Reykjavik?')");
    assert!(prompt.contains("venue.city = 'Reykjavik'") && !prompt.contains("sponsor.home"), "{prompt}");
    let prompt = one::<String>("SELECT nl2sql_prompt('What is in Reykjavik?')");
    assert!(prompt.contains("sponsor.home = 'Reykjavik'") && prompt.contains("venue.city = 'Reykjavik'"), "{prompt}");
}

#[pg_test]
fn the_value_index_shows_nothing_of_columns_or_rows_the_caller_may_not_read() {
    run("CREATE TABLE agents (codename text, team text)");
    run("INSERT INTO agents VALUES ('Nightingale', 'blue'), ('Kestrel', 'red')");
    run("CREATE TABLE cases (title text, owner text)");
    run("INSERT INTO cases VALUES ('Operation Sandpiper', 'alice')");
    run("ALTER TABLE cases ENABLE ROW LEVEL SECURITY");
    run("CREATE POLICY own_cases ON cases USING (owner = current_user)");
    run("CREATE ROLE spy");
    run("GRANT SELECT (team) ON agents TO spy");
    run("GRANT SELECT ON cases TO spy");
    assert!(one::<i64>("SELECT nl2sql_index_values()") >= 5);
    run("SET ROLE spy");
    let seen = value_rows("SELECT value FROM nl2sql_value_index ORDER BY value");
    let prompt = one::<String>("SELECT nl2sql_prompt('What is Nightingale working on in Operation Sandpiper for team blue?')");
    run("RESET ROLE");
    assert_eq!(seen, vec![vec![json!("blue")], vec![json!("red")]], "only the column spy may read, of a table without row security for spy");
    assert!(!prompt.contains("Nightingale") || prompt.matches("Nightingale").count() == 1, "only in the question itself: {prompt}");
    assert!(!prompt.contains("'Nightingale'") && !prompt.contains("'Operation Sandpiper'"), "{prompt}");
    assert!(prompt.contains("that the question names: agents.team = 'blue'"), "{prompt}");
}

#[pg_test]
fn the_glossary_enters_the_prompt_and_only_curators_change_it() {
    run("CREATE TABLE sales (amount numeric)");
    one::<String>("SELECT nl2sql_glossary('revenue', 'the sum of amount over all sales')::text");
    let prompt = one::<String>("SELECT nl2sql_prompt('What is the revenue?')");
    assert!(prompt.contains("Glossary of this database:\n- revenue: the sum of amount over all sales"), "{prompt}");
    run("CREATE ROLE clerk");
    run("GRANT SELECT ON sales TO clerk");
    run("SET ROLE clerk");
    let error = error_of("SELECT nl2sql_glossary('revenue', 'something else')");
    assert!(one::<String>("SELECT nl2sql_prompt('What is the revenue?')").contains("- revenue: the sum of amount"), "clerk reads the glossary");
    run("RESET ROLE");
    assert!(error.contains("permission denied for table nl2sql_glossary") && error.contains("GRANT") || error.contains("grants INSERT, UPDATE, DELETE ON nl2sql_glossary"), "{error}");
    one::<String>("SELECT nl2sql_glossary('revenue', NULL)::text");
    assert!(!one::<String>("SELECT nl2sql_prompt('What is the revenue?')").contains("Glossary"));
}

#[pg_test]
fn virtual_foreign_keys_are_shown_as_foreign_keys_checked_and_kept_by_column() {
    academic_fixture();
    let writes_fk = "FOREIGN KEY (aid) REFERENCES author(aid)";
    assert!(one::<bool>("SELECT nl2sql_add_virtual_foreign_key('writes', '{aid}', 'author', '{aid}')"));
    assert!(!one::<bool>("SELECT nl2sql_add_virtual_foreign_key('writes', '{aid}', 'author', '{aid}')"), "declared already");
    let prompt = one::<String>("SELECT nl2sql_prompt('How many publications did each author write?')");
    let writes = prompt.split("CREATE TABLE writes (").nth(1).unwrap().split(");").next().unwrap();
    assert!(writes.contains(writes_fk), "{prompt}");
    // Kept by column number: a rename follows, a dropped column takes the key with it.
    run("ALTER TABLE author RENAME COLUMN aid TO author_id");
    assert!(one::<String>("SELECT nl2sql_prompt('Who wrote what?')").contains("FOREIGN KEY (aid) REFERENCES author(author_id)"));
    run("ALTER TABLE author DROP COLUMN author_id");
    assert!(!one::<String>("SELECT nl2sql_prompt('Who wrote what?')").contains("FOREIGN KEY"), "the dropped column's key is gone");
    run("ALTER TABLE author ADD COLUMN aid bigint");
    assert!(one::<bool>("SELECT nl2sql_add_virtual_foreign_key('writes', '{aid}', 'author', '{aid}')"), "a new column, a new key");

    // Checked as the caller: columns that exist, that compare, as many on each side.
    let rows = || one::<i64>("SELECT count(*) FROM nl2sql_virtual_foreign_keys");
    let before = rows();
    assert_error("SELECT nl2sql_add_virtual_foreign_key('writes', '{author}', 'author', '{aid}')", "cannot join: column referencing.author does not exist");
    assert_error("SELECT nl2sql_add_virtual_foreign_key('writes', '{aid}', 'author', '{name}')", "cannot join: operator does not exist: bigint = text");
    assert_error("SELECT nl2sql_add_virtual_foreign_key('writes', '{aid,pid}', 'author', '{aid}')", "as many referenced columns as columns");
    assert_error("SELECT nl2sql_add_virtual_foreign_key('writes', '{}', 'author', '{}')", "at least one");
    assert_error("SELECT nl2sql_add_virtual_foreign_key('wrote', '{aid}', 'author', '{aid}')", "relation \"wrote\" does not exist");
    assert_error("SELECT nl2sql_add_virtual_foreign_key('writes', ARRAY['aid', NULL], 'author', '{aid,pid}')", "columns holds a NULL");
    assert_eq!(rows(), before, "nothing stored by a refused key");

    // Shown only to a role that may read both sides; only curators change them.
    assert!(one::<bool>("SELECT nl2sql_add_virtual_foreign_key('publication', '{jid}', 'journal', '{jid}')"));
    run("CREATE ROLE reader");
    run("GRANT SELECT ON publication, journal, writes TO reader");
    run("GRANT SELECT (name) ON author TO reader");
    run("SET ROLE reader");
    let prompt = one::<String>("SELECT nl2sql_prompt('Which journals publish the most?')");
    let visible = one::<i64>("SELECT count(*) FROM nl2sql_virtual_foreign_keys");
    let error = error_of("SELECT nl2sql_add_virtual_foreign_key('writes', '{pid}', 'publication', '{pid}')");
    run("RESET ROLE");
    assert!(prompt.contains("FOREIGN KEY (jid) REFERENCES journal(jid)"), "{prompt}");
    assert!(!prompt.contains("REFERENCES author"), "reader may not read author.aid: {prompt}");
    assert_eq!(visible, 3, "every key's tables are readable in part (one key lost its column)");
    assert!(error.contains("permission denied") && error.contains("grants INSERT ON nl2sql_virtual_foreign_keys"), "{error}");
    assert!(one::<bool>("SELECT nl2sql_drop_virtual_foreign_key('publication', '{jid}', 'journal', '{jid}')"));
    assert!(!one::<bool>("SELECT nl2sql_drop_virtual_foreign_key('publication', '{jid}', 'journal', '{jid}')"), "gone already");
    assert!(!one::<String>("SELECT nl2sql_prompt('Which journals publish the most?')").contains("REFERENCES journal"));
}

#[pg_test]
fn verified_examples_are_checked_shown_when_similar_and_only_to_who_may_read_their_tables() {
    run("CREATE TABLE sales (amount numeric, region text)");
    run("CREATE TABLE salaries (person text, pay numeric)");
    let id = one::<i64>("SELECT nl2sql_add_example('What is the total amount of sales per region?', 'SELECT region, sum(amount) FROM sales GROUP BY region;')");
    one::<i64>("SELECT nl2sql_add_example('Who earns the most?', 'SELECT person FROM salaries ORDER BY pay DESC LIMIT 1')");
    assert!(id > 0);
    assert_error("SELECT nl2sql_add_example('Remove everything', 'DELETE FROM sales')", "the example's SQL is refused: DELETE statements are not allowed");
    assert_error("SELECT nl2sql_add_example('Bad', 'SELECT nope FROM sales')", "the example's SQL does not plan: column \"nope\" does not exist");
    assert_eq!(one::<i64>("SELECT count(*) FROM nl2sql_examples"), 2, "refused examples are not stored");

    let prompt = one::<String>("SELECT nl2sql_prompt('What is the total sales amount in each region?')");
    assert!(prompt.contains("<|im_start|>user\nWhat is the total amount of sales per region?<|im_end|>\n<|im_start|>assistant\n```sql\nSELECT region, sum(amount) FROM sales GROUP BY region\n```"), "{prompt}");
    assert!(!prompt.contains("Who earns the most?"), "a dissimilar example is not shown: {prompt}");

    run("CREATE ROLE analyst");
    run("GRANT SELECT ON sales TO analyst");
    run("SET ROLE analyst");
    let listed = value_rows("SELECT question FROM nl2sql_examples ORDER BY id");
    let prompt = one::<String>("SELECT nl2sql_prompt('Who earns the most money?')");
    let error = error_of("SELECT nl2sql_add_example('How many sales?', 'SELECT count(*) FROM sales')");
    run("RESET ROLE");
    assert_eq!(listed, vec![vec![json!("What is the total amount of sales per region?")]], "analyst may not read salaries");
    assert!(!prompt.contains("Who earns the most?"), "{prompt}");
    assert!(error.contains("grants INSERT ON nl2sql_examples"), "{error}");
}
