//! An answer's columns that are one expression twice. `SELECT COUNT(*) AS with_exam, COUNT(*) AS
//! without_exam ... WHERE has_exam` runs, and its second column answers nothing: a small model
//! writes it when a question asks for two figures and it finds the condition of only one. Such a
//! statement is refused, naming the columns, so that the model writes each figure again.

use pgrx::pg_sys;
use pgrx::PgList;
use std::ffi::CStr;

use crate::statement::is_a;

/// Why `query` is refused when two of its output columns are the same expression (a constant
/// aside: `0 AS a, 0 AS b` is what was written); None when none are.
///
/// # Safety
/// `query` is an analysed `Query` of the current transaction.
pub unsafe fn refusal(query: *mut pg_sys::Query) -> Option<String> {
    let outputs: Vec<*mut pg_sys::TargetEntry> = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList).iter_ptr().filter(|entry| !(**entry).resjunk).collect();
    for (i, &first) in outputs.iter().enumerate() {
        let expression = (*first).expr.cast::<pg_sys::Node>();
        if is_a(expression, pg_sys::NodeTag::T_Const) {
            continue;
        }
        if let Some(&second) = outputs[i + 1..].iter().find(|&&other| pg_sys::equal((*other).expr.cast(), expression.cast())) {
            let (a, b) = (name(first), name(second));
            return Some(format!(
                "the columns {a} and {b} are the same expression, so they give the same value: write each column to compute what its name says (a condition of its own, in CASE WHEN or FILTER (WHERE ...)), or return the column once"
            ));
        }
    }
    None
}

/// An output column's name as the answer shows it, quoted.
unsafe fn name(entry: *mut pg_sys::TargetEntry) -> String {
    match (*entry).resname.is_null() {
        true => format!("number {}", (*entry).resno),
        false => format!("`{}`", CStr::from_ptr((*entry).resname).to_string_lossy()),
    }
}
