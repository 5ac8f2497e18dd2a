//! Settings in force for the duration of one step, put back afterwards: what a function's
//! `SET search_path = ...` clause does (a new GUC nest level, restored on the way out; a
//! (sub)transaction that aborts on an ERROR restores it too).
//!
//! Two uses: SQL the extension writes itself runs under `search_path = pg_catalog, pg_temp`, so no
//! function or operator a user created can stand in for the catalog's; and generated SQL is
//! analysed, planned and run with `transaction_read_only = on`, so any write it reaches, through
//! whatever function, fails with PostgreSQL's own "cannot execute ... in a read-only transaction".

use pgrx::pg_sys;
use std::ffi::CStr;

/// The search path for SQL the extension writes: the catalog only, temporary objects last (they
/// are never searched for functions or operators).
pub const PINNED_SEARCH_PATH: (&CStr, &CStr) = (c"search_path", c"pg_catalog, pg_temp");
/// PostgreSQL's read-only transaction state, for the generated statement's whole life.
pub const READ_ONLY: (&CStr, &CStr) = (c"transaction_read_only", c"on");

/// Runs `step` with `settings` in force and restores the previous values when it returns.
pub fn with_settings<R>(settings: &[(&CStr, &CStr)], step: impl FnOnce() -> R) -> R {
    // SAFETY: the GUC calls run on the backend's thread inside a transaction, exactly as
    // fmgr_security_definer does for a function's SET clause; an ERROR in set_config_option or
    // in `step` unwinds, and the aborting (sub)transaction pops the nest level.
    let nest_level = unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        nest_level
    };
    let result = step();
    // SAFETY: pops exactly the level pushed above, on the same thread and transaction.
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}
