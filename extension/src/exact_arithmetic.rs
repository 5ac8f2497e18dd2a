//! Integer division made exact in generated SQL. In PostgreSQL `7 / 2` is 3: dividing two integer
//! quantities (counts, sums, integer columns) truncates, so "the ratio of X to Y" comes out as 0
//! or 1. Nobody asking a question in words means that, and small models write such divisions
//! even when told to cast (the system prompt says so). So before a generated statement is judged,
//! every division of an integer by a non-constant integer is revised to divide a numeric
//! (`count(*)::numeric / count(DISTINCT a)`), and the revision is what runs and what the caller is
//! shown. A division by a constant is left alone: `seconds / 60` is a unit conversion whose
//! truncation is usually meant ("in whole minutes").
//!
//! The divisions are found on PostgreSQL's own analysed tree (types resolved, views not
//! expanded), at the operator's position in the text; the revision must analyse again, with the
//! same output columns and no truncating division left, or the statement is judged as written.

use crate::guc_scope::{with_settings, READ_ONLY};
use crate::statement::is_a;
use crate::subtransaction::catch_pg_error;
use pgrx::pg_sys;
use pgrx::PgList;
use std::ffi::{c_void, CStr, CString};
use std::panic::AssertUnwindSafe;

/// pg_catalog's functions behind `/` for two integer types (int2, int4, int8 in any pair).
const INTEGER_DIVISIONS: [&str; 9] =
    ["int2div", "int4div", "int8div", "int24div", "int42div", "int28div", "int82div", "int48div", "int84div"];

/// What the dividend is cast to: numeric, not float8, so that `round(a / b, 2)`, which exists
/// for numeric only, still works and the quotient is exact to the digits shown.
const CAST: &str = "::numeric";

/// `sql` with its truncating divisions made exact, or None when it has none (or does not analyse,
/// or the revision would not analyse the same way): the statement is then judged as written.
pub fn revise(sql: &str) -> Option<String> {
    let text = CString::new(sql).ok()?;
    let outcome = catch_pg_error(
        AssertUnwindSafe(|| {
            with_settings(&[READ_ONLY], || {
                // SAFETY: inside a transaction and our subtransaction; the trees are read before
                // it ends.
                unsafe {
                    let (columns, divisions) = analyse(&text)?;
                    if divisions.is_empty() {
                        return None;
                    }
                    let revised = insert_casts(sql, &divisions)?;
                    let (revised_columns, left) = analyse(&CString::new(revised.as_str()).ok()?)?;
                    (revised_columns == columns && left.is_empty()).then_some(revised)
                }
            })
        }),
        |_| false,
    );
    outcome.ok().flatten()
}

/// The dividend of each division ends where its operator starts (white space aside): the cast
/// goes there, from the last to the first so that earlier positions stay valid.
fn insert_casts(sql: &str, divisions: &[usize]) -> Option<String> {
    let mut revised = sql.to_owned();
    let mut at: Vec<usize> = divisions.to_vec();
    at.sort_unstable_by(|a, b| b.cmp(a));
    at.dedup();
    for operator in at {
        let end = revised.get(..operator)?.trim_end().len();
        revised.insert_str(end, CAST);
    }
    Some(revised)
}

/// Parses and analyses one statement (no rewriting: a view's own divisions are not the
/// statement's); its output column count and the byte positions of its truncating divisions,
/// each with every other place the same division is written. None for anything but one
/// statement; PostgreSQL's errors are raised (the caller catches them).
unsafe fn analyse(text: &CStr) -> Option<(usize, Vec<usize>)> {
    let raw_statements = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(text.as_ptr()));
    if raw_statements.len() != 1 {
        return None;
    }
    let raw = raw_statements.get_ptr(0)?;
    // Written divisions, from a copy: analysis may scribble on the raw tree.
    let mut written: Vec<*mut pg_sys::A_Expr> = Vec::new();
    walk_raw(pg_sys::copyObjectImpl((*raw).stmt.cast()).cast(), &mut written);
    let query = pg_sys::parse_analyze_fixedparams(raw, text.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
    let columns = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList).iter_ptr().filter(|entry| !(**entry).resjunk).count();
    let mut truncating: Vec<usize> = Vec::new();
    walk(query.cast(), &mut truncating);
    // GROUP BY, ORDER BY and DISTINCT ON name the selected expression again; analysis keeps one
    // copy of it, so the division is found once, and the others must be revised with it.
    let mut divisions = truncating.clone();
    for &at in &truncating {
        if let Some(&found) = written.iter().find(|&&division| (*division).location as usize == at) {
            let same = written.iter().filter(|&&other| pg_sys::equal((*other).lexpr.cast(), (*found).lexpr.cast()) && pg_sys::equal((*other).rexpr.cast(), (*found).rexpr.cast()));
            divisions.extend(same.map(|&other| (*other).location as usize));
        }
    }
    Some((columns, divisions))
}

/// Collects the `/` operators written in a raw (unanalysed) tree.
unsafe fn walk_raw(node: *mut pg_sys::Node, written: &mut Vec<*mut pg_sys::A_Expr>) {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        if is_a(node, pg_sys::NodeTag::T_A_Expr) {
            let expression = node as *mut pg_sys::A_Expr;
            let name = PgList::<pg_sys::Node>::from_pg((*expression).name);
            let last = name.len().checked_sub(1).and_then(|last| name.get_ptr(last));
            let is_slash = last.is_some_and(|last| is_a(last, pg_sys::NodeTag::T_String) && CStr::from_ptr((*(last as *mut pg_sys::String)).sval) == c"/");
            if (*expression).kind == pg_sys::A_Expr_Kind::AEXPR_OP && is_slash && (*expression).location >= 0 {
                (*(context as *mut Vec<*mut pg_sys::A_Expr>)).push(expression);
            }
        }
        pg_sys::raw_expression_tree_walker(node, Some(walker), context)
    }
    walker(node, (written as *mut Vec<*mut pg_sys::A_Expr>).cast());
}

/// Collects the truncating divisions of `node` and of every query and expression inside it.
unsafe fn walk(node: *mut pg_sys::Node, truncating: &mut Vec<usize>) {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        if is_a(node, pg_sys::NodeTag::T_Query) {
            return pg_sys::query_tree_walker(node.cast(), Some(walker), context, 0);
        }
        if is_a(node, pg_sys::NodeTag::T_OpExpr) {
            if let Some(at) = truncating_division(node.cast()) {
                (*(context as *mut Vec<usize>)).push(at);
            }
        }
        pg_sys::expression_tree_walker(node, Some(walker), context)
    }
    walker(node, (truncating as *mut Vec<usize>).cast());
}

/// Where `/` is written, if `operator` divides two integers and the divisor is not a constant.
unsafe fn truncating_division(operator: *mut pg_sys::OpExpr) -> Option<usize> {
    let operator = &*operator;
    let arguments = PgList::<pg_sys::Node>::from_pg(operator.args);
    if arguments.len() != 2 || operator.location < 0 || !is_integer_division(operator.opfuncid) {
        return None;
    }
    let divisor = arguments.get_ptr(1)?;
    (!is_constant(divisor)).then_some(operator.location as usize)
}

unsafe fn is_integer_division(function: pg_sys::Oid) -> bool {
    if function == pg_sys::InvalidOid || pg_sys::get_func_namespace(function) != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE) {
        return false;
    }
    let name = pg_sys::get_func_name(function);
    !name.is_null() && INTEGER_DIVISIONS.contains(&CStr::from_ptr(name).to_string_lossy().as_ref())
}

/// A literal, or an expression of literals only (`60 * 60`, `-1`, `'7'::int`).
unsafe fn is_constant(node: *mut pg_sys::Node) -> bool {
    let all_constant = |arguments: *mut pg_sys::List| PgList::<pg_sys::Node>::from_pg(arguments).iter_ptr().all(|argument| is_constant(argument));
    match node.as_ref().map(|node| node.type_) {
        Some(pg_sys::NodeTag::T_Const) => true,
        Some(pg_sys::NodeTag::T_RelabelType) => is_constant((*(node as *mut pg_sys::RelabelType)).arg.cast()),
        Some(pg_sys::NodeTag::T_OpExpr) => all_constant((*(node as *mut pg_sys::OpExpr)).args),
        Some(pg_sys::NodeTag::T_FuncExpr) => {
            let arguments = (*(node as *mut pg_sys::FuncExpr)).args;
            !arguments.is_null() && all_constant(arguments)
        }
        _ => false,
    }
}
