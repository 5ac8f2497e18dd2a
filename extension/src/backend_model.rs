//! The model of this backend: loaded on first use, kept for the life of the connection (loading
//! takes seconds and 3 GB, so pooled connections should be reused), reloaded if the path changes.

use crate::errors::{Nl2sqlError, Result};
use crate::gucs;
use nl2sql_engine::{Engine, Settings};
use pgrx::pg_sys;
use std::cell::RefCell;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn settings() -> Result<Settings> {
    Ok(Settings {
        threads: gucs::threads(),
        max_new_tokens: gucs::max_new_tokens(),
        device: gucs::device().parse().map_err(Nl2sqlError::from)?,
    })
}

/// candle starts its worker threads on first use; they inherit the signal mask of the thread that
/// starts them. Blocking signals while they start keeps PostgreSQL's signals (cancel, timeouts,
/// latches) on the backend's own thread, where its handlers expect to run.
fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the previous mask back on every path out, a panic included: a backend left with
    /// its signals blocked could no longer be cancelled or terminated.
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the mask saved below, on the same thread.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        }
    }
    // SAFETY: pthread_sigmask on the current thread with a filled set; the guard restores it.
    let _restore = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        Restore(previous)
    };
    f()
}

fn load() -> Result<Engine> {
    let path = gucs::model_path();
    let settings = settings()?;
    with_signals_blocked(|| {
        let engine = Engine::load(&path, settings)?;
        candle_core::utils::barrier_pool();
        rayon::current_num_threads();
        Ok(engine)
    })
}

/// Runs `f` with this backend's model, loading it first if needed.
pub fn with_engine<R>(f: impl FnOnce(&mut Engine) -> nl2sql_engine::Result<R>) -> Result<R> {
    ENGINE.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| {
            Nl2sqlError::new(pgrx::PgSqlErrorCode::ERRCODE_OBJECT_IN_USE, "the model is busy with another call in this session")
                .hint("Do not call nl2sql functions from inside each other's arguments.")
        })?;
        if slot.as_ref().is_none_or(|engine| engine.path() != gucs::model_path()) {
            *slot = None; // free the old model before loading another
            *slot = Some(load()?);
        }
        let engine = slot.as_mut().expect("loaded above");
        engine.set_max_new_tokens(gucs::max_new_tokens())?;
        Ok(f(engine)?)
    })
}

/// Lets statement_timeout and query cancel stop generation between tokens: the interrupt check
/// raises the ERROR, which unwinds out of the engine.
pub fn interrupt_check() -> impl FnMut() -> nl2sql_engine::Result<()> {
    || {
        pg_sys::check_for_interrupts!();
        Ok(())
    }
}

/// Whether this backend has a model in memory (for nl2sql_status()).
pub fn loaded_model() -> Option<(String, std::time::Duration)> {
    ENGINE.with(|cell| {
        cell.try_borrow().ok().and_then(|slot| slot.as_ref().map(|e| (e.path().display().to_string(), e.load_time())))
    })
}
