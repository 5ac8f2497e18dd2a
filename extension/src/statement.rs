//! A generated statement, from text to rows: parsed and analysed once by PostgreSQL's own parser,
//! analyser and rewriter; checked on the resulting query tree (one plain SELECT, nothing that
//! writes or locks, no volatile function, only code of the allowed schemas); then planned, or
//! planned and executed, from that same tree. What was checked is exactly what runs.
//!
//! All of it happens inside one internal subtransaction with `transaction_read_only = on`, as the
//! calling role, under a fresh snapshot; rows are turned into JSON by pg_catalog's to_jsonb as
//! the executor hands them over, with nl2sql's own statement timeout and row cap. The
//! extension writes no SQL text around the generated statement.

use crate::date_patterns;
use crate::repeated_columns;
use crate::errors::Nl2sqlError;
use crate::guc_scope::{with_settings, READ_ONLY};
use crate::provenance::{first_disallowed, AllowedSchemas};
use crate::subtransaction::catch_pg_error;
use pgrx::pg_sys;
use pgrx::{FromDatum, JsonB, PgList};
use serde_json::Value;
use std::ffi::{c_void, CStr, CString};
use std::panic::AssertUnwindSafe;

#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    /// Values in column order; numbers stay numbers, dates and times are ISO strings (to_jsonb).
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than the row cap allowed.
    pub truncated: bool,
}

impl ResultSet {
    /// Whether two statements gave the same answer, as the vote between candidates counts it: the
    /// same rows in any order, whatever the columns are named (one candidate's `count` is
    /// another's `total_orders`).
    pub fn same_answer(&self, other: &ResultSet) -> bool {
        let sorted_rows = |result: &ResultSet| {
            let mut rows: Vec<String> = result.rows.iter().map(|row| Value::from(row.clone()).to_string()).collect();
            rows.sort_unstable();
            rows
        };
        self.truncated == other.truncated && self.columns.len() == other.columns.len() && sorted_rows(self) == sorted_rows(other)
    }
}

/// Why a statement did not give a result.
#[derive(Debug, Clone, PartialEq)]
pub enum StatementFailure {
    /// nl2sql's own check refused it (the reason names what and why).
    Refused(String),
    /// PostgreSQL raised an error while analysing, planning or running it.
    Failed(Nl2sqlError),
    /// It ran longer than nl2sql.statement_timeout.
    TimedOut,
}

/// Checks and plans `sql` without running it (what nl2sql_sql returns); the output columns.
pub fn plan(sql: &str, allowed: &AllowedSchemas) -> Result<Vec<String>, StatementFailure> {
    check_and_plan(sql, allowed, |checked| checked.columns.clone())
}

/// Checks and plans `sql`; the tables (and views) it reads, directly or through views.
pub fn plan_tables(sql: &str, allowed: &AllowedSchemas) -> Result<Vec<pg_sys::Oid>, StatementFailure> {
    // SAFETY: the tree is read before planning, inside the subtransaction that owns it.
    check_and_plan(sql, allowed, |checked| unsafe { relations(checked.query) })
}

/// Checks `sql`, reads what `read` wants from the checked tree, then plans it, all read-only.
fn check_and_plan<T>(sql: &str, allowed: &AllowedSchemas, read: impl FnOnce(&Checked) -> T) -> Result<T, StatementFailure> {
    let text = CString::new(sql).map_err(|_| nul_refusal())?;
    let outcome = catch_pg_error(
        AssertUnwindSafe(|| {
            with_settings(&[READ_ONLY], || {
                // SAFETY: inside a transaction and our subtransaction; the tree lives in the
                // current memory context until the subtransaction ends.
                unsafe {
                    let checked = check(&text, allowed)?;
                    let found = read(&checked);
                    pg_sys::pg_plan_query(checked.query, text.as_ptr(), pg_sys::CURSOR_OPT_PARALLEL_OK as i32, std::ptr::null_mut());
                    Ok(found)
                }
            })
        }),
        |_| false,
    );
    flatten(outcome)
}

/// The relations a query reads, in all its sub-queries (views are expanded by then).
unsafe fn relations(query: *mut pg_sys::Query) -> Vec<pg_sys::Oid> {
    let mut found: Vec<pg_sys::Oid> = Vec::new();
    any_query(query.cast(), &mut |query| {
        // SAFETY: the walker hands over valid Query nodes of the tree.
        for entry in unsafe { PgList::<pg_sys::RangeTblEntry>::from_pg((*query).rtable) }.iter_ptr() {
            let entry = unsafe { &*entry };
            if entry.rtekind == pg_sys::RTEKind::RTE_RELATION && !found.contains(&entry.relid) {
                found.push(entry.relid);
            }
        }
        false
    });
    found
}

/// Whether `test` holds for the query `node` is or for any query inside it (sub-queries in FROM,
/// WHERE, CTEs, ...); stops at the first that does.
unsafe fn any_query(node: *mut pg_sys::Node, test: &mut dyn FnMut(*mut pg_sys::Query) -> bool) -> bool {
    // SAFETY: the walker hands over valid nodes of the tree.
    any_node(node, &mut |node| unsafe { is_a(node, pg_sys::NodeTag::T_Query) } && test(node.cast()))
}

/// Whether `test` holds for `node` or for any node inside it, of an analysed tree: every query
/// (sub-queries in FROM, WHERE, CTEs, ...) and expression; stops at the first that does.
pub(crate) unsafe fn any_node(node: *mut pg_sys::Node, test: &mut dyn FnMut(*mut pg_sys::Node) -> bool) -> bool {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        let test = &mut *(context as *mut &mut dyn FnMut(*mut pg_sys::Node) -> bool);
        if test(node) {
            return true;
        }
        if is_a(node, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(node.cast(), Some(walker), context, 0);
        }
        pg_sys::expression_tree_walker(node, Some(walker), context)
    }
    let mut test = test;
    walker(node, (&mut test as *mut &mut dyn FnMut(*mut pg_sys::Node) -> bool).cast())
}

/// Checks, plans and runs `sql`; at most `max_rows` rows, stopped after `timeout_ms`.
pub fn run(sql: &str, allowed: &AllowedSchemas, max_rows: usize, timeout_ms: i32) -> Result<ResultSet, StatementFailure> {
    let text = CString::new(sql).map_err(|_| nul_refusal())?;
    let deadline = Deadline::arm(timeout_ms);
    let deadline_at = deadline.at;
    let outcome = catch_pg_error(
        AssertUnwindSafe(|| {
            with_settings(&[READ_ONLY], || {
                // SAFETY: as in `plan`; the executor runs the plan built from the checked tree.
                unsafe {
                    let checked = check(&text, allowed)?;
                    let (rows, truncated) = execute(checked.query, &text, max_rows);
                    Ok(ResultSet { columns: checked.columns, rows, truncated })
                }
            })
        }),
        // SAFETY: reads the clock only.
        move |_| unsafe { pg_sys::GetCurrentTimestamp() >= deadline_at },
    );
    match flatten(outcome) {
        Err(StatementFailure::Failed(e)) if e.code == pgrx::PgSqlErrorCode::ERRCODE_QUERY_CANCELED && deadline.passed() => {
            Err(StatementFailure::TimedOut)
        }
        other => other,
    }
}

fn nul_refusal() -> StatementFailure {
    StatementFailure::Refused("the SQL contains a NUL character".into())
}

fn flatten<T>(outcome: Result<Result<T, StatementFailure>, Nl2sqlError>) -> Result<T, StatementFailure> {
    outcome.map_err(StatementFailure::Failed)?
}

/// A statement that passed every check, as its analysed query tree.
struct Checked {
    query: *mut pg_sys::Query,
    columns: Vec<String>,
}

/// Parses, analyses and rewrites `sql` and accepts exactly one SELECT (WITH allowed) with no
/// data-modifying CTE, no SELECT INTO, no FOR UPDATE/SHARE at any level, no volatile function
/// anywhere, only functions, operators and types of the allowed schemas, no date pattern applied
/// to a number (date_patterns.rs) and no output column that repeats another (repeated_columns.rs):
/// those run, and answer nothing. Parser and
/// analyser errors are raised as PostgreSQL ERRORs (the caller's subtransaction catches them).
unsafe fn check(text: &CStr, allowed: &AllowedSchemas) -> Result<Checked, StatementFailure> {
    let refuse = |reason: String| Err(StatementFailure::Refused(reason));
    let raw_statements = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(text.as_ptr()));
    let raw = match raw_statements.len() {
        0 => return refuse("the SQL is empty".into()),
        1 => raw_statements.get_ptr(0).expect("one statement"),
        n => return refuse(format!("the SQL holds {n} statements; only one SELECT statement is allowed")),
    };
    let statement = (*raw).stmt;
    if !is_a(statement, pg_sys::NodeTag::T_SelectStmt) {
        return refuse(format!("{} statements are not allowed; only SELECT is", command_name(statement)));
    }
    if !(*(statement as *mut pg_sys::SelectStmt)).intoClause.is_null() {
        return refuse("SELECT INTO creates a table and is not allowed; use a plain SELECT".into());
    }

    let queries = PgList::<pg_sys::Query>::from_pg(pg_sys::pg_analyze_and_rewrite_fixedparams(
        raw,
        text.as_ptr(),
        std::ptr::null_mut(),
        0,
        std::ptr::null_mut(),
    ));
    if queries.len() != 1 {
        return refuse("the statement expands into several statements (a rule applies); only one SELECT is allowed".into());
    }
    let query = queries.get_ptr(0).expect("one query");
    if (*query).commandType != pg_sys::CmdType::CMD_SELECT || !(*query).utilityStmt.is_null() {
        return refuse("only SELECT is allowed".into());
    }
    if (*query).hasModifyingCTE {
        return refuse("WITH clauses that INSERT, UPDATE or DELETE are not allowed; only reading is".into());
    }
    if has_row_marks(query.cast()) {
        return refuse("FOR UPDATE / FOR SHARE locks rows and is not allowed; remove the locking clause".into());
    }
    if pg_sys::contain_volatile_functions(query.cast()) {
        return refuse(
            "the query calls a volatile function (one that can change state or depends on more than its arguments, such as random(), nextval(), set_config() or pg_sleep()); these are not allowed".into(),
        );
    }
    if let Some(what) = first_disallowed(query, allowed) {
        if let Some(function) = what.strip_prefix("side effect:") {
            return refuse(format!("the query calls {function}, which assigns a transaction ID; it is not allowed"));
        }
        return refuse(format!(
            "the query uses {what}, which is not in pg_catalog; generated SQL may only use functions, operators and types of pg_catalog and of the schemas in nl2sql.allowed_function_schemas (a superuser setting)"
        ));
    }
    // Statements that run and answer nothing: refused with why, for the model to write again.
    if let Some(reason) = date_patterns::refusal(query, &text.to_string_lossy()).or_else(|| repeated_columns::refusal(query)) {
        return refuse(reason);
    }

    let columns = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList)
        .iter_ptr()
        .filter(|entry| !(**entry).resjunk)
        .map(|entry| match (*entry).resname.is_null() {
            true => "?column?".to_owned(),
            false => CStr::from_ptr((*entry).resname).to_string_lossy().into_owned(),
        })
        .collect();
    Ok(Checked { query, columns })
}

pub(crate) unsafe fn is_a(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && (*node).type_ == tag
}

/// "INSERT", "CREATE TABLE", "COPY", ... as PostgreSQL names the statement.
unsafe fn command_name(statement: *mut pg_sys::Node) -> String {
    let tag = pg_sys::CreateCommandTag(statement);
    CStr::from_ptr(pg_sys::GetCommandTagName(tag)).to_string_lossy().into_owned()
}

/// True if the query or any sub-query (in FROM, WHERE, CTEs, ...) has a locking clause.
unsafe fn has_row_marks(node: *mut pg_sys::Node) -> bool {
    // SAFETY: the walker hands over valid Query nodes of the tree.
    any_query(node, &mut |query| unsafe { !(*query).rowMarks.is_null() })
}

/// Plans and executes the checked tree, in a fresh snapshot, and returns up to `max_rows` rows
/// (and whether there were more).
///
/// A volatile function, which nl2sql() is, should see what earlier commands of its own
/// transaction wrote (as PL/pgSQL statements do), hence CommandCounterIncrement and a new
/// snapshot. On an ERROR the subtransaction's abort releases the executor's resources and pops
/// the snapshot.
unsafe fn execute(query: *mut pg_sys::Query, text: &CStr, max_rows: usize) -> (Vec<Vec<Value>>, bool) {
    pg_sys::CommandCounterIncrement();
    pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    let plan = pg_sys::pg_plan_query(query, text.as_ptr(), pg_sys::CURSOR_OPT_PARALLEL_OK as i32, std::ptr::null_mut());
    let mut receiver = Box::new(JsonRows::new(max_rows));
    let receiver_ptr: *mut JsonRows = &mut *receiver;
    let description = pg_sys::CreateQueryDesc(
        plan,
        text.as_ptr(),
        pg_sys::GetActiveSnapshot(),
        std::ptr::null_mut(),
        receiver_ptr.cast(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        0,
    );
    pg_sys::ExecutorStart(description, 0);
    // One row more than the cap, to know whether the result was cut.
    pg_sys::ExecutorRun(description, pg_sys::ScanDirection::ForwardScanDirection, max_rows as u64 + 1, true);
    pg_sys::ExecutorFinish(description);
    pg_sys::ExecutorEnd(description);
    pg_sys::FreeQueryDesc(description);
    pg_sys::PopActiveSnapshot();
    (std::mem::take(&mut receiver.rows), receiver.truncated)
}

/// A DestReceiver that turns each row into JSON values with pg_catalog.to_jsonb (numbers stay
/// numbers, dates are ISO strings, arrays and records become JSON), the executor's first
/// receiver written in Rust. `base` must come first: the executor sees only a DestReceiver.
#[repr(C)]
struct JsonRows {
    base: pg_sys::DestReceiver,
    max_rows: usize,
    rows: Vec<Vec<Value>>,
    truncated: bool,
    /// to_jsonb, set up once per column with that column's type (it reads the argument type
    /// from the call's expression, as when it is called from SQL).
    to_jsonb: Vec<pg_sys::FmgrInfo>,
    /// Reset after every row, so a million-row result does not keep every conversion's memory.
    row_memory: pg_sys::MemoryContext,
}

impl JsonRows {
    fn new(max_rows: usize) -> Self {
        Self {
            base: pg_sys::DestReceiver {
                receiveSlot: Some(receive_slot),
                rStartup: Some(startup),
                rShutdown: Some(shutdown),
                rDestroy: Some(destroy),
                mydest: pg_sys::CommandDest::DestNone,
            },
            max_rows,
            rows: Vec::new(),
            truncated: false,
            to_jsonb: Vec::new(),
            row_memory: std::ptr::null_mut(),
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn startup(receiver: *mut pg_sys::DestReceiver, _operation: i32, description: pg_sys::TupleDesc) {
    let this = &mut *(receiver as *mut JsonRows);
    let attributes = std::slice::from_raw_parts((*description).attrs.as_ptr(), (*description).natts as usize);
    this.to_jsonb = attributes
        .iter()
        .map(|attribute| {
            let mut call: pg_sys::FmgrInfo = std::mem::zeroed();
            pg_sys::fmgr_info(pg_sys::Oid::from(pg_sys::F_TO_JSONB), &mut call);
            let mut arguments = PgList::<pg_sys::Node>::new();
            arguments.push(pg_sys::makeNullConst(attribute.atttypid, attribute.atttypmod, attribute.attcollation).cast());
            call.fn_expr = pg_sys::makeFuncExpr(
                pg_sys::Oid::from(pg_sys::F_TO_JSONB),
                pg_sys::JSONBOID,
                arguments.into_pg(),
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            )
            .cast();
            call
        })
        .collect();
    this.row_memory = pg_sys::AllocSetContextCreateExtended(
        pg_sys::CurrentMemoryContext,
        c"nl2sql result row".as_ptr(),
        pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
        pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
        pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
    );
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn receive_slot(slot: *mut pg_sys::TupleTableSlot, receiver: *mut pg_sys::DestReceiver) -> bool {
    let this = &mut *(receiver as *mut JsonRows);
    if this.rows.len() == this.max_rows {
        this.truncated = true;
        return false; // enough: stop the executor
    }
    pg_sys::slot_getallattrs(slot);
    let previous = pg_sys::MemoryContextSwitchTo(this.row_memory);
    let mut row = Vec::with_capacity(this.to_jsonb.len());
    for (i, call) in this.to_jsonb.iter_mut().enumerate() {
        let value = match *(*slot).tts_isnull.add(i) {
            true => Value::Null,
            false => {
                let json = pg_sys::FunctionCall1Coll(call, pg_sys::InvalidOid, *(*slot).tts_values.add(i));
                JsonB::from_datum(json, false).map_or(Value::Null, |j| j.0)
            }
        };
        row.push(value);
    }
    pg_sys::MemoryContextSwitchTo(previous);
    pg_sys::MemoryContextReset(this.row_memory);
    this.rows.push(row);
    true
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn shutdown(_receiver: *mut pg_sys::DestReceiver) {}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn destroy(_receiver: *mut pg_sys::DestReceiver) {}

/// PostgreSQL's timeout module (utils/timeout.h), which pgrx does not bind.
mod timeout {
    use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
    use pgrx::pg_sys::TimestampTz;
    use std::ffi::c_int;

    /// `TimeoutId` is a C enum; STATEMENT_TIMEOUT is its fourth member in PostgreSQL 13 to 17.
    /// A test pins it: the timer we arm must cancel "due to statement timeout".
    pub(super) const STATEMENT_TIMEOUT: c_int = 3;

    mod c {
        use super::*;
        unsafe extern "C-unwind" {
            pub fn enable_timeout_at(id: c_int, fin_time: TimestampTz);
            pub fn disable_timeout(id: c_int, keep_indicator: bool);
            pub fn get_timeout_active(id: c_int) -> bool;
            pub fn get_timeout_finish_time(id: c_int) -> TimestampTz;
        }
    }

    pub(super) fn statement_timeout_finish() -> Option<TimestampTz> {
        // SAFETY: reads the backend's timer table on its own thread; an ERROR becomes a panic.
        unsafe {
            pg_guard_ffi_boundary(|| {
                c::get_timeout_active(STATEMENT_TIMEOUT).then(|| c::get_timeout_finish_time(STATEMENT_TIMEOUT))
            })
        }
    }

    pub(super) fn set_statement_timeout_finish(at: TimestampTz) {
        // SAFETY: as above; (re)arms the statement-timeout timer.
        unsafe { pg_guard_ffi_boundary(|| c::enable_timeout_at(STATEMENT_TIMEOUT, at)) }
    }

    pub(super) fn clear_statement_timeout() {
        // SAFETY: as above; disarms the statement-timeout timer.
        unsafe { pg_guard_ffi_boundary(|| c::disable_timeout(STATEMENT_TIMEOUT, false)) }
    }
}

/// Makes PostgreSQL's statement-timeout timer fire at our deadline if that comes first, and puts
/// the caller's timer back afterwards. When the caller's comes first, the timer is left alone:
/// it fires as the caller's, and its cancel is not ours to catch.
struct Deadline {
    at: pg_sys::TimestampTz,
    /// Set when our deadline replaced the timer: what to put back (None: there was no timer).
    replaced: Option<Option<pg_sys::TimestampTz>>,
}

impl Deadline {
    fn arm(timeout_ms: i32) -> Self {
        // SAFETY: reads the clock.
        let at = unsafe { pg_sys::GetCurrentTimestamp() } + i64::from(timeout_ms) * 1000;
        let callers = timeout::statement_timeout_finish();
        let replaced = callers.is_none_or(|theirs| at < theirs).then(|| {
            timeout::set_statement_timeout_finish(at);
            callers
        });
        Self { at, replaced }
    }

    fn passed(&self) -> bool {
        // SAFETY: reads the clock.
        unsafe { pg_sys::GetCurrentTimestamp() >= self.at }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        match self.replaced {
            Some(Some(theirs)) => timeout::set_statement_timeout_finish(theirs),
            Some(None) => timeout::clear_statement_timeout(),
            None => {}
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
pub(crate) fn arm_statement_timeout_for_tests(timeout_ms: i32) -> impl Drop {
    Deadline::arm(timeout_ms)
}

#[cfg(any(test, feature = "pg_test"))]
pub(crate) fn statement_timeout_finish_for_tests() -> Option<pg_sys::TimestampTz> {
    timeout::statement_timeout_finish()
}
