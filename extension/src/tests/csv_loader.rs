// nl2sql_load_csv: inference, identifiers, errors, and nothing half-loaded.

fn csv_file(name: &str, content: &str) -> String {
    let path = std::env::temp_dir().join(format!("nl2sql-test-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[pg_test]
fn csv_loads_with_inferred_types_and_identifiers() {
    let path = csv_file(
        "typed.csv",
        "Order ID,Unit Price ($),Paid?,Day,US Day,At,When,Big,Zip,Note,Note\n\
         1,2.50,true,2015-01-01,01/31/2015,11:38:36,2015-01-01 10:00:00,3000000000,02134,\"a, quoted\",x\n\
         2,3,f,2016-02-29,2/1/2015,09:05,2015-01-02T11:00:00,1,10001,,y\n",
    );
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{path}', 'typed')")), 2);
    let columns = value_rows(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'typed'::regclass AND attnum > 0 ORDER BY attnum",
    );
    let expected = [
        ("order_id", "integer"),
        ("unit_price", "numeric"),
        ("paid", "boolean"),
        ("day", "date"),
        ("us_day", "date"),
        ("at", "time without time zone"),
        ("when", "timestamp without time zone"),
        ("big", "bigint"),
        ("zip", "text"),
        ("note", "text"),
        ("note_2", "text"),
    ];
    let got: Vec<(String, String)> = columns.iter().map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_str().unwrap().to_owned())).collect();
    assert_eq!(got, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(one::<String>("SELECT us_day::text FROM typed WHERE order_id = 2"), "2015-02-01");
    assert_eq!(one::<String>("SELECT note FROM typed WHERE order_id = 1"), "a, quoted");
    assert_eq!(one::<bool>("SELECT note IS NULL FROM typed WHERE order_id = 2"), true, "empty fields are NULL");
    assert_eq!(one::<String>("SELECT zip FROM typed WHERE order_id = 1"), "02134", "leading zeros kept");
}

#[pg_test]
fn csv_loads_the_demo_data_and_analyses_it() {
    load_demo();
    assert_eq!(one::<i64>("SELECT count(DISTINCT name) FROM pizza_sales"), 32);
    assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pizza_sales'::regclass AND attname = 'price'"), "numeric");
    assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pizza_sales'::regclass AND attname = 'date'"), "date");
    assert!(one::<i64>("SELECT count(*) FROM pg_stats WHERE tablename = 'pizza_sales'") >= 7, "ANALYZE ran");
}

#[pg_test]
fn csv_errors_are_clear_and_leave_nothing_behind() {
    let ragged = csv_file("ragged.csv", "a,b\n1,2\n3\n");
    assert_error(&format!("SELECT nl2sql_load_csv('{ragged}', 'ragged')"), "line 3 has 1 fields, but the header has 2");
    assert_eq!(one::<bool>("SELECT to_regclass('ragged') IS NULL"), true, "nothing half-loaded");

    let empty = csv_file("empty.csv", "");
    assert_error(&format!("SELECT nl2sql_load_csv('{empty}', 'empty')"), "is empty");
    let header_only = csv_file("header.csv", "a,b\n");
    assert_error(&format!("SELECT nl2sql_load_csv('{header_only}', 'header_only')"), "has a header but no data rows");
    assert_error("SELECT nl2sql_load_csv('/nonexistent/file.csv', 'missing')", "could not open file \"/nonexistent/file.csv\"");
    assert_error("SELECT nl2sql_load_csv('relative.csv', 'rel')", "is a relative path");
    assert_error("SELECT nl2sql_load_csv(NULL, 'x')", "path is NULL");

    let good = csv_file("good.csv", "a\n1\n");
    run("CREATE TABLE existing (a int)");
    assert_error(&format!("SELECT nl2sql_load_csv('{good}', 'existing')"), "table existing already exists");
    assert_error(&format!("SELECT nl2sql_load_csv('{good}', 'a.b.c.d')"), "not a valid table name");
    assert_error(&format!("SELECT nl2sql_load_csv('{good}', 'Mixed Case')"), "quote names with capitals or spaces");
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{good}', '\"Mixed Case\"')")), 1);
    assert_eq!(one::<i64>("SELECT a FROM \"Mixed Case\""), 1);
}

#[pg_test]
fn csv_loading_needs_the_right_to_read_server_files() {
    let good = csv_file("priv.csv", "a\n1\n");
    run("CREATE ROLE loader_without_rights");
    run("GRANT CREATE ON SCHEMA public TO loader_without_rights");
    run("SET ROLE loader_without_rights");
    let error = error_of(&format!("SELECT nl2sql_load_csv('{good}', 'not_allowed')"));
    run("RESET ROLE");
    assert!(error.contains("permission denied to load a server-side file") && error.contains("pg_read_server_files"), "{error}");
    run("CREATE ROLE loader_with_rights IN ROLE pg_read_server_files");
    run("GRANT CREATE ON SCHEMA public TO loader_with_rights");
    run("SET ROLE loader_with_rights");
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{good}', 'allowed')")), 1);
    run("RESET ROLE");
}
