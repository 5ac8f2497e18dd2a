//! nl2sql_load_csv(): a server-side CSV into a new typed table, in one transaction.
//!
//! Two passes over the file: the first checks its shape (a header, rows of equal length) and
//! infers the types from every value; the second loads it in batches. Nothing is created until
//! the first pass succeeded, and any error later rolls the whole statement back.
//!
//! Only regular files are read (a device such as /dev/zero or a FIFO is refused before reading,
//! and opening never blocks), within nl2sql.csv_max_size and nl2sql.csv_max_line_length, and the
//! reader answers query cancel and statement_timeout. The SQL the loader writes runs under
//! search_path = pg_catalog, pg_temp with the table's schema named explicitly.

use crate::csv_types::{column_names, ColumnInference, ColumnType};
use crate::errors::{Nl2sqlError, Result};
use crate::guc_scope::{with_settings, PINNED_SEARCH_PATH};
use crate::gucs;
use crate::subtransaction::catch_pg_error;
use nl2sql_engine::schema::quote_ident;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const BATCH_ROWS: usize = 5000;
/// PostgreSQL's limit on the columns of a table (MaxHeapAttributeNumber).
const MAX_COLUMNS: usize = 1600;
const STATISTICS_TARGET: i32 = 1000;
/// Bytes read between interrupt checks.
const INTERRUPT_CHECK_BYTES: u64 = 1 << 20;

/// The file, bounded: an error once it passes the size or line limit, and an interrupt check
/// every megabyte so that cancel and statement_timeout reach a long read.
struct BoundedFile {
    file: File,
    read: u64,
    line: usize,
    max_bytes: u64,
    max_line: usize,
}

impl Read for BoundedFile {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buffer)?;
        let before = self.read;
        self.read += n as u64;
        if self.read / INTERRUPT_CHECK_BYTES != before / INTERRUPT_CHECK_BYTES {
            pg_sys::check_for_interrupts!();
        }
        if self.read > self.max_bytes {
            return Err(std::io::Error::other(format!("the file is larger than nl2sql.csv_max_size ({} kB)", self.max_bytes / 1024)));
        }
        let mut segments = buffer[..n].split(|&byte| byte == b'\n').peekable();
        while let Some(segment) = segments.next() {
            self.line += segment.len();
            if self.line > self.max_line {
                return Err(std::io::Error::other(format!(
                    "a line is longer than nl2sql.csv_max_line_length ({} kB)",
                    self.max_line / 1024
                )));
            }
            if segments.peek().is_some() {
                self.line = 0; // a newline ended this segment
            }
        }
        Ok(n)
    }
}

/// Opens `path` for reading if it is a regular file. O_NONBLOCK makes opening a FIFO return at
/// once instead of waiting for a writer; the type is then checked on the open file itself.
fn open_regular_file(path: &Path) -> Result<File> {
    let cannot_open = |e: std::io::Error| {
        Nl2sqlError::new(PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, format!("could not open file \"{}\" for reading: {e}", path.display()))
            .hint("The path is read by the database server, not by your client: give a path on the server (for a client-side file use psql's \\copy).")
    };
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(cannot_open)?;
    let metadata = file.metadata().map_err(cannot_open)?;
    if !metadata.file_type().is_file() {
        return Err(Nl2sqlError::invalid_input(format!("\"{}\" is not a regular file", path.display()))
            .hint("nl2sql_load_csv reads regular files only, not devices, FIFOs, sockets or directories."));
    }
    Ok(file)
}

fn reader(path: &Path) -> Result<csv::Reader<BoundedFile>> {
    let file = BoundedFile { file: open_regular_file(path)?, read: 0, line: 0, max_bytes: gucs::csv_max_bytes(), max_line: gucs::csv_max_line_bytes() };
    Ok(csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(file))
}

fn csv_error(path: &Path, error: csv::Error) -> Nl2sqlError {
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => format!(
            "{}: line {} has {len} fields, but the header has {expected_len}",
            path.display(),
            pos.as_ref().map_or(0, |p| p.line())
        ),
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "{}: line {} is not valid UTF-8",
            path.display(),
            pos.as_ref().map_or(0, |p| p.line())
        ),
        csv::ErrorKind::Io(e) => {
            return Nl2sqlError::new(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, format!("{}: {e}", path.display()))
                .hint("Raise the limit for this session (SET nl2sql.csv_max_size = '4GB'; or nl2sql.csv_max_line_length), or split the file.")
        }
        _ => format!("{}: {error}", path.display()),
    };
    Nl2sqlError::new(PgSqlErrorCode::ERRCODE_BAD_COPY_FILE_FORMAT, message)
        .hint("Every row needs as many comma-separated fields as the header line; quote fields that contain commas.")
}

/// Same rule as COPY FROM a file: superusers and members of pg_read_server_files only.
fn check_may_read_server_files() -> Result<()> {
    let allowed = Spi::get_one::<bool>("SELECT pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'USAGE')")
        .map_err(|e| Nl2sqlError::internal("checking the right to read server files", e))?
        .unwrap_or(false);
    if allowed {
        Ok(())
    } else {
        Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied to load a server-side file")
            .hint("Only superusers and members of pg_read_server_files may, as with COPY FROM a file: GRANT pg_read_server_files TO your_role; or load from the client with psql's \\copy."))
    }
}

/// The new table's name, schema-qualified and quoted: a name without a schema goes where CREATE
/// TABLE would put it (the first schema of the caller's search_path), decided here, before the
/// loader's own SQL runs under the pinned search path. An error if the table exists.
fn new_table_name(table_name: &str) -> Result<String> {
    let invalid = || {
        Nl2sqlError::invalid_input(format!("\"{table_name}\" is not a valid table name"))
            .hint("Use an SQL name like sales or myschema.sales; quote names with capitals or spaces: '\"Pizza Sales\"'.")
    };
    let owned = table_name.to_owned();
    let parts = catch_pg_error(
        move || Spi::get_one_with_args::<Vec<String>>("SELECT pg_catalog.parse_ident($1)", &[owned.as_str().into()]),
        |_| false,
    )
    .map_err(|_| invalid())?
    .map_err(|_| invalid())?
    .unwrap_or_default();
    let (schema, table) = match parts.as_slice() {
        [table] => (creation_schema(table)?, table),
        [schema, table] => (schema.clone(), table),
        _ => return Err(invalid()),
    };
    let qualified = format!("{}.{}", quote_ident(&schema), quote_ident(table));
    let exists = with_settings(&[PINNED_SEARCH_PATH], || {
        Spi::get_one_with_args::<bool>("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[qualified.as_str().into()])
    })
    .map_err(|e| Nl2sqlError::internal("looking up the table name", e))?
    .unwrap_or(false);
    if exists {
        return Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE, format!("table {qualified} already exists"))
            .hint("Drop it first, or load into another name."));
    }
    Ok(qualified)
}

/// The schema CREATE TABLE would choose for an unqualified name on the caller's search path.
fn creation_schema(table: &str) -> Result<String> {
    let name = std::ffi::CString::new(table).map_err(|_| Nl2sqlError::invalid_input("the table name contains a NUL character"))?;
    // SAFETY: catalog lookups on the backend's thread; "no schema has been selected to create
    // in" is raised as an ERROR, which ends the statement as CREATE TABLE would.
    unsafe {
        let relation = pg_sys::makeRangeVar(std::ptr::null_mut(), name.as_ptr().cast_mut(), -1);
        let namespace = pg_sys::RangeVarGetCreationNamespace(relation);
        Ok(std::ffi::CStr::from_ptr(pg_sys::get_namespace_name(namespace)).to_string_lossy().into_owned())
    }
}

struct Shape {
    columns: Vec<String>,
    types: Vec<ColumnType>,
    rows: usize,
}

fn infer_shape(path: &Path) -> Result<Shape> {
    let mut csv = reader(path)?;
    let headers = csv.headers().map_err(|e| csv_error(path, e))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].trim().is_empty()) {
        return Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_BAD_COPY_FILE_FORMAT, format!("{} is empty", path.display()))
            .hint("The first line must name the columns, e.g. id,date,price"));
    }
    let mut inference = vec![ColumnInference::default(); headers.len()];
    let mut rows = 0;
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        for (column, value) in inference.iter_mut().zip(record.iter()) {
            column.observe(value);
        }
        rows += 1;
        if rows % 10_000 == 0 {
            pg_sys::check_for_interrupts!();
        }
    }
    if rows == 0 {
        return Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_BAD_COPY_FILE_FORMAT, format!("{} has a header but no data rows", path.display()))
            .hint("Add rows to the file; there is nothing to infer column types from."));
    }
    if headers.len() > MAX_COLUMNS {
        return Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, format!("{} has {} columns; a PostgreSQL table holds at most {MAX_COLUMNS}", path.display(), headers.len()))
            .hint("Split the file, or load only the columns you need."));
    }
    let names: Vec<&str> = headers.iter().collect();
    Ok(Shape { columns: column_names(&names), types: inference.iter().map(ColumnInference::column_type).collect(), rows })
}

fn insert_batch(insert: &str, batch: &mut [Vec<Option<String>>]) -> Result<()> {
    let args: Vec<pgrx::datum::DatumWithOid> = batch.iter_mut().map(|column| std::mem::take(column).into()).collect();
    Spi::run_with_args(insert, &args).map_err(|e| Nl2sqlError::internal("inserting rows", e))
}

pub fn load_csv(path: &str, table_name: &str) -> Result<i64> {
    check_may_read_server_files()?;
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(Nl2sqlError::invalid_input(format!("\"{}\" is a relative path", path.display()))
            .hint("Give the absolute path of the file on the database server."));
    }
    let table = new_table_name(table_name)?;
    let shape = infer_shape(path)?;
    with_settings(&[PINNED_SEARCH_PATH], || create_and_load(path, &table, &shape))
}

fn create_and_load(path: &Path, table: &str, shape: &Shape) -> Result<i64> {
    let definitions: Vec<String> = shape.columns.iter().zip(&shape.types).map(|(c, t)| format!("{} {}", quote_ident(c), t.sql())).collect();
    Spi::run(&format!("CREATE TABLE {table} ({})", definitions.join(", "))).map_err(|e| Nl2sqlError::internal(&format!("creating {table}"), e))?;

    let n = shape.columns.len();
    let insert = format!(
        // Unqualified on purpose: unnest with several arrays is grammar (ROWS FROM), not a
        // function; the pinned search path keeps it pg_catalog's.
        "INSERT INTO {table} SELECT {} FROM unnest({}) AS u({})",
        (1..=n).map(|i| format!("u.c{i}::{}", shape.types[i - 1].sql())).collect::<Vec<_>>().join(", "),
        (1..=n).map(|i| format!("${i}::text[]")).collect::<Vec<_>>().join(", "),
        (1..=n).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", "),
    );
    let mut batch: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(BATCH_ROWS); n];
    let mut loaded = 0i64;
    for record in reader(path)?.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        for ((column, value), column_type) in batch.iter_mut().zip(record.iter()).zip(&shape.types) {
            column.push((!value.is_empty()).then(|| column_type.normalise(value)));
        }
        loaded += 1;
        if batch[0].len() == BATCH_ROWS {
            pg_sys::check_for_interrupts!();
            insert_batch(&insert, &mut batch)?;
        }
    }
    if !batch[0].is_empty() {
        insert_batch(&insert, &mut batch)?;
    }
    if loaded as usize != shape.rows {
        return Err(Nl2sqlError::new(PgSqlErrorCode::ERRCODE_BAD_COPY_FILE_FORMAT, format!("{} changed while it was being loaded", path.display())));
    }
    // Statistics now, so the next question already sees the frequent values of text columns.
    // A statistics target of 1000 makes ANALYZE read up to 300,000 rows (all of most CSVs)
    // instead of a random 30,000: the values shown to the model, and so its SQL, stay the same
    // from one ANALYZE to the next.
    let targets: Vec<String> = shape.columns.iter().map(|c| format!("ALTER COLUMN {} SET STATISTICS {STATISTICS_TARGET}", quote_ident(c))).collect();
    Spi::run(&format!("ALTER TABLE {table} {}", targets.join(", ")))
        .map_err(|e| Nl2sqlError::internal(&format!("setting statistics targets on {table}"), e))?;
    Spi::run(&format!("ANALYZE {table}")).map_err(|e| Nl2sqlError::internal(&format!("analysing {table}"), e))?;
    Ok(loaded)
}
