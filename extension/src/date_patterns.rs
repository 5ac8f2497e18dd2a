//! A date pattern applied to a number. `to_char(departure_time, 'YYYY-MM')` over an integer
//! column runs, and prints the pattern's letters: numbers have their own to_char, whose patterns
//! are digits and signs, and which copies every other character as it is ('YYYY-MM' on every
//! row). A small model writes it wherever a date is kept as a number (a year, Unix seconds), and
//! the answer is wrong without an error to repair. nl2sql refuses such a statement, saying why,
//! so that the model writes it again. (The schema constraint refuses it while it is written,
//! where the argument's kind is known from the schema; this check, on PostgreSQL's types, also
//! covers what the constraint cannot type and statements written without it.)

use nl2sql_engine::is_date_format;
use pgrx::pg_sys;
use pgrx::{FromDatum, PgList};
use std::ffi::CStr;

use crate::statement::{any_node, is_a};

/// pg_catalog's to_char for a number: int4, int8, numeric, float4, float8.
const NUMBER_TO_CHAR: [u32; 5] =
    [pg_sys::F_TO_CHAR_INT4_TEXT, pg_sys::F_TO_CHAR_INT8_TEXT, pg_sys::F_TO_CHAR_NUMERIC_TEXT, pg_sys::F_TO_CHAR_FLOAT4_TEXT, pg_sys::F_TO_CHAR_FLOAT8_TEXT];

/// Why `query` is refused when it formats a number with a date pattern (the first such call of
/// the statement itself, not of a view it reads), naming the call as `sql` writes it; None when
/// it does not.
///
/// # Safety
/// `query` is an analysed `Query` of the current transaction, analysed from `sql`.
pub unsafe fn refusal(query: *mut pg_sys::Query, sql: &str) -> Option<String> {
    let mut found = None;
    any_node(query.cast(), &mut |node| {
        // SAFETY: the walker hands over valid nodes of the tree.
        found = unsafe { date_pattern_on_number(node, sql) };
        found.is_some()
    });
    found
}

unsafe fn date_pattern_on_number(node: *mut pg_sys::Node, sql: &str) -> Option<String> {
    if !is_a(node, pg_sys::NodeTag::T_FuncExpr) {
        return None;
    }
    let call = &*(node as *mut pg_sys::FuncExpr);
    // A view's calls, read from the catalog, have no location: only the statement's own count.
    if !NUMBER_TO_CHAR.contains(&u32::from(call.funcid)) || call.location < 0 {
        return None;
    }
    let arguments = PgList::<pg_sys::Node>::from_pg(call.args);
    let (number, format) = (arguments.get_ptr(0)?, arguments.get_ptr(1)?);
    if !is_a(format, pg_sys::NodeTag::T_Const) {
        return None;
    }
    let format = &*(format as *mut pg_sys::Const);
    let pattern = String::from_datum(format.constvalue, format.constisnull)?;
    if !is_date_format(&pattern) {
        return None;
    }
    let type_name = CStr::from_ptr(pg_sys::format_type_be(pg_sys::exprType(number))).to_string_lossy().into_owned();
    let written = written_call(sql, call.location).unwrap_or_else(|| format!("to_char(..., '{pattern}')"));
    Some(format!(
        "`{written}` applies a date pattern to a number ({type_name}): to_char of a number knows only number patterns and prints the letters as they are, '{pattern}' on every row. A number is no date: where it counts seconds since 1970 (Unix time), to_timestamp(it) is the timestamp; a year or a month number is used as it is"
    ))
}

/// The call written at byte `location` of `sql`, up to its closing parenthesis (strings and
/// quoted names skipped); None when it cannot be found.
fn written_call(sql: &str, location: i32) -> Option<String> {
    let start = usize::try_from(location).ok()?;
    let text = sql.get(start..)?;
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 1 => return Some(text[..=i].to_owned()),
            (None, ')') => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}
