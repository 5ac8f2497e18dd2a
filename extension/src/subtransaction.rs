//! Running a step that may raise a PostgreSQL ERROR (parse, plan, execute) so that the error is
//! rolled back and handed to us as a value, the way PL/pgSQL's EXCEPTION blocks do it. The repair
//! loop needs the message; the caller's transaction must stay usable and unchanged.

use crate::errors::Nl2sqlError;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::panic::{RefUnwindSafe, UnwindSafe};

/// Runs `step` in an internal subtransaction. Its effects are kept when it returns; a PostgreSQL
/// ERROR rolls them back and is returned. Query cancels that `is_ours` does not claim (a user's
/// cancel, the caller's statement_timeout) and Rust panics are rethrown after the rollback.
pub fn catch_pg_error<R>(
    step: impl FnOnce() -> R + UnwindSafe,
    is_ours: impl Fn(&Nl2sqlError) -> bool + UnwindSafe + RefUnwindSafe,
) -> Result<R, Nl2sqlError> {
    // SAFETY: the classic PG_TRY pattern around an internal subtransaction: we are inside a
    // transaction (every SQL function call is), and memory context and resource owner are put
    // back exactly as they were on both paths.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        let restore = move || {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        };
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        PgTryBuilder::new(move || {
            let result = step();
            pg_sys::ReleaseCurrentSubTransaction();
            restore();
            Ok(result)
        })
        .catch_others(move |caught| {
            restore();
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            restore();
            match &caught {
                CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
                    let error = Nl2sqlError {
                        code: report.sql_error_code(),
                        message: report.message().to_owned(),
                        detail: report.detail().map(str::to_owned),
                        hint: report.hint().map(str::to_owned),
                    };
                    if error.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED && !is_ours(&error) {
                        caught.rethrow()
                    }
                    Err(error)
                }
                CaughtError::RustPanic { .. } => caught.rethrow(),
            }
        })
        .execute()
    }
}
