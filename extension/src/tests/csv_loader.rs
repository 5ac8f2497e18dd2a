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
    assert!(one::<bool>("SELECT note IS NULL FROM typed WHERE order_id = 2"), "empty fields are NULL");
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
    assert!(one::<bool>("SELECT to_regclass('ragged') IS NULL"), "nothing half-loaded");

    let empty = csv_file("empty.csv", "");
    assert_error(&format!("SELECT nl2sql_load_csv('{empty}', 'empty')"), "is empty");
    let header_only = csv_file("header.csv", "a,b\n");
    assert_error(&format!("SELECT nl2sql_load_csv('{header_only}', 'header_only')"), "has a header but no data rows");
    assert_error("SELECT nl2sql_load_csv('/nonexistent/file.csv', 'missing')", "could not open file \"/nonexistent/file.csv\"");
    assert_error("SELECT nl2sql_load_csv('relative.csv', 'rel')", "is a relative path");
    assert_error("SELECT nl2sql_load_csv(NULL, 'x')", "path is NULL");

    let good = csv_file("good.csv", "a\n1\n");
    run("CREATE TABLE existing (a int)");
    assert_error(&format!("SELECT nl2sql_load_csv('{good}', 'existing')"), "table public.existing already exists");
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

/// Devices, FIFOs and directories are refused before anything is read (/dev/zero used to be read
/// without bound until the kernel killed the backend; a FIFO hung in open() beyond any cancel).
#[pg_test]
fn csv_refuses_what_is_not_a_regular_file() {
    let fifo = std::env::temp_dir().join(format!("nl2sql-test-{}-fifo.csv", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo on a path of our own.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    for file in ["/dev/zero", "/dev/urandom", fifo.to_str().unwrap(), "/tmp"] {
        assert_error(&format!("SELECT nl2sql_load_csv('{file}', 'not_loaded')"), &format!("\"{file}\" is not a regular file"));
    }
    std::fs::remove_file(&fifo).unwrap();
    assert!(one::<bool>("SELECT to_regclass('not_loaded') IS NULL"), "nothing created");
}

#[pg_test]
fn csv_stops_at_the_size_and_line_limits_and_creates_nothing() {
    let big = csv_file("big.csv", &format!("a,b\n{}", "1,2\n".repeat(2000)));
    run("SET nl2sql.csv_max_size = '4kB'");
    assert_error(&format!("SELECT nl2sql_load_csv('{big}', 'too_big')"), "the file is larger than nl2sql.csv_max_size (4 kB)");
    run("RESET nl2sql.csv_max_size");
    let long_line = csv_file("long.csv", &format!("a\n{}\n", "x".repeat(3000)));
    run("SET nl2sql.csv_max_line_length = '2kB'");
    assert_error(&format!("SELECT nl2sql_load_csv('{long_line}', 'too_long')"), "a line is longer than nl2sql.csv_max_line_length (2 kB)");
    run("RESET nl2sql.csv_max_line_length");
    assert!(one::<bool>("SELECT to_regclass('too_big') IS NULL AND to_regclass('too_long') IS NULL"));
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{big}', 'within_limits')")), 2000, "the defaults allow it");
}

/// An unqualified name goes to the first schema of the caller's search path, as CREATE TABLE
/// would put it, although the loader's own SQL runs under a pinned search path.
#[pg_test]
fn csv_creates_the_table_where_create_table_would() {
    let good = csv_file("where.csv", "a\n1\n");
    run("CREATE SCHEMA landing");
    run("SET search_path = landing, public");
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{good}', 'arrivals')")), 1);
    assert_eq!(one::<String>("SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = 'arrivals'"), "landing");
    assert_eq!(one::<String>("SHOW search_path"), "landing, public", "the caller's search_path is unchanged");
}

/// The forms PostgreSQL reads for each inferred type load as that type, with the values it
/// reads from them (times with one-digit hours used to stay text).
#[pg_test]
fn csv_loads_every_form_postgresql_reads() {
    let path = csv_file(
        "forms.csv",
        "at,on_day,stamp,stamp_tz,flag,amount\n\
         9:40,\"Jan 5, 2015\",1/5/2015 4:05 PM,2015-01-05 09:40:00 UTC,on,NaN\n\
         16:55,2015-1-6,2015-01-06T10:00,2015-01-05 09:40-05:00,OFF,1.5\n\
         4:05 PM,6 February 2015, 2015-02-06 00:00 ,2015-01-05T09:40Z,y, 7 \n\
         24:00,2/7/2015,2015-02-07 23:59:59.5,2015-01-05 09:40+02,n,-2\n",
    );
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{path}', 'forms')")), 4);
    let types = value_rows(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'forms'::regclass AND attnum > 0 ORDER BY attnum",
    );
    let types: Vec<&str> = types.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(types, ["time without time zone", "date", "timestamp without time zone", "timestamp with time zone", "boolean", "numeric"]);
    let rows = value_rows(
        "SELECT at::text, on_day::text, stamp::text, (stamp_tz AT TIME ZONE 'UTC')::text, flag, amount::text FROM forms ORDER BY on_day",
    );
    assert_eq!(
        rows,
        vec![
            vec![json!("09:40:00"), json!("2015-01-05"), json!("2015-01-05 16:05:00"), json!("2015-01-05 09:40:00"), json!(true), json!("NaN")],
            vec![json!("16:55:00"), json!("2015-01-06"), json!("2015-01-06 10:00:00"), json!("2015-01-05 14:40:00"), json!(false), json!("1.5")],
            vec![json!("16:05:00"), json!("2015-02-06"), json!("2015-02-06 00:00:00"), json!("2015-01-05 09:40:00"), json!(true), json!("7")],
            vec![json!("24:00:00"), json!("2015-02-07"), json!("2015-02-07 23:59:59.5"), json!("2015-01-05 07:40:00"), json!(false), json!("-2")],
        ]
    );
}

/// Hostile and odd files: SQL in a header is just a name, a BOM is not part of the first name,
/// quoted newlines stay in their value; too many columns and bytes that are not UTF-8 are clear
/// errors that create nothing.
#[pg_test]
fn csv_hostile_headers_and_encodings() {
    run("CREATE TABLE victim (a int)");
    let sql_header = csv_file("sqlheader.csv", "\u{feff}id,\"a; DROP TABLE victim; --\",,\"note\"\n1,2,3,\"two\nlines\"\n");
    assert_eq!(one::<i64>(&format!("SELECT nl2sql_load_csv('{sql_header}', 'hostile')")), 1);
    let columns = value_rows("SELECT attname::text FROM pg_attribute WHERE attrelid = 'hostile'::regclass AND attnum > 0 ORDER BY attnum");
    assert_eq!(columns, vec![vec![json!("id")], vec![json!("a_drop_table_victim")], vec![json!("column_3")], vec![json!("note")]]);
    assert_eq!(one::<String>("SELECT note FROM hostile"), "two\nlines");
    assert_eq!(one::<i64>("SELECT count(*) FROM victim"), 0, "the victim table is still there");

    let wide = csv_file("wide.csv", &format!("{}\n{}\n", (1..=2000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(","), vec!["1"; 2000].join(",")));
    assert_error(&format!("SELECT nl2sql_load_csv('{wide}', 'wide')"), "has 2000 columns; a PostgreSQL table holds at most 1600");
    let latin1 = std::env::temp_dir().join(format!("nl2sql-test-{}-latin1.csv", std::process::id()));
    std::fs::write(&latin1, b"name\ncaf\xe9\n").unwrap();
    assert_error(&format!("SELECT nl2sql_load_csv('{}', 'latin')", latin1.display()), "line 2 is not valid UTF-8");
    assert!(one::<bool>("SELECT to_regclass('wide') IS NULL AND to_regclass('latin') IS NULL"), "nothing created");
}
