//! Is this SQL one plain, read-only SELECT? Decided by PostgreSQL's own parser, analyser and
//! rewriter, never by looking at the text: what the server would run is what gets checked.

use pgrx::pg_sys;
use pgrx::PgList;
use std::ffi::{c_void, CStr, CString};

/// A statement that passed the check, with its output column names in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedQuery {
    pub columns: Vec<String>,
}

/// Why a statement was refused (errors from the parser or analyser itself are raised as
/// PostgreSQL ERRORs; run this inside [`crate::subtransaction::catch_pg_error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// Parses, analyses and rewrites `sql` and accepts exactly one SELECT (WITH allowed) with no
/// data-modifying CTE, no SELECT INTO, no FOR UPDATE/SHARE at any level, and no volatile
/// function anywhere (so pg_sleep, set_config, nextval, pg_terminate_backend, lo_import, dblink
/// and the like cannot run).
pub fn check_select_only(sql: &str) -> Result<CheckedQuery, Refusal> {
    let text = CString::new(sql).map_err(|_| Refusal("the SQL contains a NUL character".into()))?;
    // SAFETY: we are in a transaction; the lists and nodes live in the current memory context,
    // and every pointer read comes straight from the parser/analyser that just built it.
    unsafe {
        let raw_statements = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(text.as_ptr()));
        let raw = match raw_statements.len() {
            0 => return Err(Refusal("the SQL is empty".into())),
            1 => raw_statements.get_ptr(0).expect("one statement"),
            n => return Err(Refusal(format!("the SQL holds {n} statements; only one SELECT statement is allowed"))),
        };
        let statement = (*raw).stmt;
        if !is_a(statement, pg_sys::NodeTag::T_SelectStmt) {
            return Err(Refusal(format!("{} statements are not allowed; only SELECT is", command_name(statement))));
        }
        if !(*(statement as *mut pg_sys::SelectStmt)).intoClause.is_null() {
            return Err(Refusal("SELECT INTO creates a table and is not allowed; use a plain SELECT".into()));
        }

        let queries = PgList::<pg_sys::Query>::from_pg(pg_sys::pg_analyze_and_rewrite_fixedparams(
            raw,
            text.as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        ));
        if queries.len() != 1 {
            return Err(Refusal("the statement expands into several statements (a rule applies); only one SELECT is allowed".into()));
        }
        let query = queries.get_ptr(0).expect("one query");
        if (*query).commandType != pg_sys::CmdType::CMD_SELECT || !(*query).utilityStmt.is_null() {
            return Err(Refusal("only SELECT is allowed".into()));
        }
        if (*query).hasModifyingCTE {
            return Err(Refusal("WITH clauses that INSERT, UPDATE or DELETE are not allowed; only reading is".into()));
        }
        if has_row_marks(query.cast()) {
            return Err(Refusal("FOR UPDATE / FOR SHARE locks rows and is not allowed; remove the locking clause".into()));
        }
        if pg_sys::contain_volatile_functions(query.cast()) {
            return Err(Refusal(
                "the query calls a volatile function (one that can change state or depends on more than its arguments, such as random(), nextval(), set_config() or pg_sleep()); these are not allowed".into(),
            ));
        }

        let columns = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList)
            .iter_ptr()
            .filter(|entry| !(**entry).resjunk)
            .map(|entry| match (*entry).resname.is_null() {
                true => "?column?".to_owned(),
                false => CStr::from_ptr((*entry).resname).to_string_lossy().into_owned(),
            })
            .collect();
        Ok(CheckedQuery { columns })
    }
}

/// Plans `sql` (already accepted by [`check_select_only`]) without running it, so planner errors
/// surface for repair. Raises the planner's ERROR; run inside a subtransaction.
pub fn plan_select(sql: &str) {
    let text = CString::new(sql).expect("checked statements contain no NUL");
    // SAFETY: as in check_select_only; the plan is built in the current memory context and dropped.
    unsafe {
        let raw = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(text.as_ptr()));
        let raw = raw.get_ptr(0).expect("checked: one statement");
        let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(raw, text.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
        pg_sys::pg_plan_queries(queries, text.as_ptr(), pg_sys::CURSOR_OPT_PARALLEL_OK as i32, std::ptr::null_mut());
    }
}

unsafe fn is_a(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && (*node).type_ == tag
}

/// "INSERT", "CREATE TABLE", "COPY", ... as PostgreSQL names the statement.
unsafe fn command_name(statement: *mut pg_sys::Node) -> String {
    let tag = pg_sys::CreateCommandTag(statement);
    CStr::from_ptr(pg_sys::GetCommandTagName(tag)).to_string_lossy().into_owned()
}

/// True if the query or any sub-query (in FROM, WHERE, CTEs, ...) has a locking clause.
unsafe fn has_row_marks(node: *mut pg_sys::Node) -> bool {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        if is_a(node, pg_sys::NodeTag::T_Query) {
            let query = node as *mut pg_sys::Query;
            return !(*query).rowMarks.is_null() || pg_sys::query_tree_walker(query, Some(walker), context, 0);
        }
        pg_sys::expression_tree_walker(node, Some(walker), context)
    }
    walker(node, std::ptr::null_mut())
}
