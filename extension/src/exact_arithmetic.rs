//! Arithmetic made exact in generated SQL, before the statement is judged; the revision is what
//! runs and what the caller is shown. Two habits of small models give answers nobody asking in
//! words means:
//! - Integer division. In PostgreSQL `7 / 2` is 3: dividing two integer quantities (counts, sums,
//!   integer columns) truncates, so "the ratio of X to Y" comes out as 0 or 1, and models write
//!   it even when told to cast (the system prompt says so). Every division of an integer by a
//!   non-constant integer is revised to divide a numeric (`count(*)::numeric / count(DISTINCT
//!   a)`). A division by a constant is left alone: `seconds / 60` is a unit conversion whose
//!   truncation is usually meant ("in whole minutes").
//! - `CAST(x AS REAL)`. Models learned it from SQLite, where REAL is an 8-byte float; in
//!   PostgreSQL `real` is 4 bytes, 6 significant digits (a ratio of 1.04099463 shows as 1.0409946).
//!   A cast to `real` is revised to `double precision`, what the writer meant.
//!
//! Both are found on PostgreSQL's own trees (types resolved, views not expanded), at their
//! positions in the text; the revision must analyse again, with the same output columns and
//! nothing left to revise, or the statement is judged as written.

use crate::guc_scope::{with_settings, READ_ONLY};
use crate::statement::{any_node, is_a};
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

/// The name of double precision that replaces a written `real` or `float4`.
const DOUBLE: &str = "double precision";

/// One change to the statement's text: `remove` bytes at `at` replaced by `insert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    at: usize,
    remove: usize,
    insert: &'static str,
}

/// `sql` with its arithmetic made exact, or None when there is nothing to revise (or it does not
/// analyse, or the revision would not analyse the same way): the statement is then judged as
/// written.
pub fn revise(sql: &str) -> Option<String> {
    let text = CString::new(sql).ok()?;
    let outcome = catch_pg_error(
        AssertUnwindSafe(|| {
            with_settings(&[READ_ONLY], || {
                // SAFETY: inside a transaction and our subtransaction; the trees are read before
                // it ends.
                unsafe {
                    let (columns, edits) = analyse(sql, &text)?;
                    if edits.is_empty() {
                        return None;
                    }
                    let revised = apply(sql, edits)?;
                    let (revised_columns, left) = analyse(&revised, &CString::new(revised.as_str()).ok()?)?;
                    (revised_columns == columns && left.is_empty()).then_some(revised)
                }
            })
        }),
        |_| false,
    );
    outcome.ok().flatten()
}

/// `sql` with `edits` made, from the last to the first so that earlier positions stay valid.
fn apply(sql: &str, mut edits: Vec<Edit>) -> Option<String> {
    edits.sort_unstable_by_key(|edit| std::cmp::Reverse(edit.at));
    edits.dedup();
    let mut revised = sql.to_owned();
    for Edit { at, remove, insert } in edits {
        revised.replace_range(at..at.checked_add(remove)?, insert);
    }
    Some(revised)
}

/// The cast that makes a division exact: the dividend ends where the operator starts (white
/// space aside).
fn exact_division(sql: &str, operator: usize) -> Option<Edit> {
    Some(Edit { at: sql.get(..operator)?.trim_end().len(), remove: 0, insert: CAST })
}

/// `real` or `float4` written at `at` (a type name's position), as `double precision`.
fn widened_real(sql: &str, at: usize) -> Option<Edit> {
    let rest = sql.get(at..)?;
    let word = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(rest, |end| &rest[..end]);
    (word.eq_ignore_ascii_case("real") || word.eq_ignore_ascii_case("float4")).then_some(Edit { at, remove: word.len(), insert: DOUBLE })
}

/// Parses and analyses one statement (no rewriting: a view's own arithmetic is not the
/// statement's); its output column count and the edits that make its arithmetic exact (each
/// truncating division with every other place the same division is written). None for anything
/// but one statement; PostgreSQL's errors are raised (the caller catches them).
unsafe fn analyse(sql: &str, text: &CStr) -> Option<(usize, Vec<Edit>)> {
    let raw_statements = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(text.as_ptr()));
    if raw_statements.len() != 1 {
        return None;
    }
    let raw = raw_statements.get_ptr(0)?;
    // Written divisions and casts, from a copy: analysis may scribble on the raw tree.
    let mut written = Written::default();
    walk_raw(pg_sys::copyObjectImpl((*raw).stmt.cast()).cast(), &mut written);
    let query = pg_sys::parse_analyze_fixedparams(raw, text.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
    let columns = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList).iter_ptr().filter(|entry| !(**entry).resjunk).count();
    let mut analysed = Analysed::default();
    walk(query.cast(), &mut analysed);
    // GROUP BY, ORDER BY and DISTINCT ON name the selected expression again; analysis keeps one
    // copy of it, so the division is found once, and the others must be revised with it.
    let mut divisions = analysed.truncating.clone();
    for &at in &analysed.truncating {
        if let Some(&found) = written.divisions.iter().find(|&&division| (*division).location as usize == at) {
            let same = written.divisions.iter().filter(|&&other| pg_sys::equal((*other).lexpr.cast(), (*found).lexpr.cast()) && pg_sys::equal((*other).rexpr.cast(), (*found).rexpr.cast()));
            divisions.extend(same.map(|&other| (*other).location as usize));
        }
    }
    // A cast is found where it is written, and its type name said there.
    let reals = analysed.real_casts.iter().filter_map(|&at| written.casts.iter().find(|&&cast| (*cast).location as usize == at)).map(|&cast| (*cast).typeName);
    // One not written plainly (`pg_catalog.float4`) is left as it is; a division the edit missed
    // is found again in the revision, which is then not made.
    let edits = divisions.into_iter().filter_map(|at| exact_division(sql, at)).chain(reals.filter(|&name| (*name).location >= 0).filter_map(|name| widened_real(sql, (*name).location as usize)));
    Some((columns, edits.collect()))
}

/// What a raw (unanalysed) tree writes that may need revising: `/` operators, and the type names
/// of casts.
#[derive(Default)]
struct Written {
    divisions: Vec<*mut pg_sys::A_Expr>,
    casts: Vec<*mut pg_sys::TypeCast>,
}

/// What the analysed tree says needs revising, by position in the text: the truncating
/// divisions, and the casts that turn another type (an integer, numeric, float8) into `real`
/// (a cast of a literal, or of what is `real` already, changes no digit: comparing it with a
/// `real` column must stay as written).
#[derive(Default)]
struct Analysed {
    truncating: Vec<usize>,
    real_casts: Vec<usize>,
}

/// Collects the `/` operators and the casts written in a raw (unanalysed) tree.
unsafe fn walk_raw(node: *mut pg_sys::Node, written: &mut Written) {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
        if node.is_null() {
            return false;
        }
        let written = &mut *(context as *mut Written);
        if is_a(node, pg_sys::NodeTag::T_A_Expr) {
            let expression = node as *mut pg_sys::A_Expr;
            let name = PgList::<pg_sys::Node>::from_pg((*expression).name);
            let last = name.len().checked_sub(1).and_then(|last| name.get_ptr(last));
            let is_slash = last.is_some_and(|last| is_a(last, pg_sys::NodeTag::T_String) && CStr::from_ptr((*(last as *mut pg_sys::String)).sval) == c"/");
            if (*expression).kind == pg_sys::A_Expr_Kind::AEXPR_OP && is_slash && (*expression).location >= 0 {
                written.divisions.push(expression);
            }
        }
        if is_a(node, pg_sys::NodeTag::T_TypeCast) && (*(node as *mut pg_sys::TypeCast)).location >= 0 {
            written.casts.push(node.cast());
        }
        pg_sys::raw_expression_tree_walker(node, Some(walker), context)
    }
    walker(node, (written as *mut Written).cast());
}

/// Collects what needs revising in `node` and in every query and expression inside it.
unsafe fn walk(node: *mut pg_sys::Node, analysed: &mut Analysed) {
    any_node(node, &mut |node| {
        // SAFETY: the walker hands over valid nodes of the tree.
        unsafe {
            if is_a(node, pg_sys::NodeTag::T_OpExpr) {
                analysed.truncating.extend(truncating_division(node.cast()));
            }
            if is_a(node, pg_sys::NodeTag::T_FuncExpr) {
                let function = &*(node as *mut pg_sys::FuncExpr);
                if function.funcformat == pg_sys::CoercionForm::COERCE_EXPLICIT_CAST && function.funcresulttype == pg_sys::FLOAT4OID && function.location >= 0 {
                    analysed.real_casts.push(function.location as usize);
                }
            }
        }
        false
    });
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
