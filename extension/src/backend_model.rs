//! What writes this backend's SQL and answers: with nl2sql.backend = local, the server's model
//! worker when nl2sql is preloaded ([`crate::model_worker`]); otherwise the model loaded on
//! first use and kept for the life of the connection (loading takes seconds and 3 GB, so pooled
//! connections should be reused), reloaded if nl2sql.model_path changes; threads and device are
//! fixed at load (a later change is reported with a WARNING, and nl2sql_status() shows the values
//! in force). With nl2sql.backend = openai, a client of the inference server at nl2sql.endpoint,
//! kept for the connection (its connection pool and circuit breaker), remade when a setting of it
//! changes; no model is loaded then.

use crate::errors::{report, Nl2sqlError, Result};
use crate::gucs::{self, ModelBackend};
use nl2sql_engine::remote::RemoteModel;
use nl2sql_engine::worker::{RequestOptions, WorkerClient};
use nl2sql_engine::{Engine, Observer, Settings, SqlModel};
use pgrx::prelude::*;
use pgrx::PgLogLevel;
use std::cell::RefCell;
use std::ops::ControlFlow;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static REMOTE: RefCell<Option<RemoteModel>> = const { RefCell::new(None) };
}

fn busy() -> Nl2sqlError {
    Nl2sqlError::new(pgrx::PgSqlErrorCode::ERRCODE_OBJECT_IN_USE, "the model is busy with another call in this session")
        .hint("Do not call nl2sql functions from inside each other's arguments.")
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

/// Starts candle's and rayon's worker threads, with the thread count of nl2sql.threads and every
/// signal blocked, before anything computes with candle (the model, or the embedding model of
/// schema linking, whichever comes first). Later calls change nothing.
pub fn start_compute_threads() {
    with_signals_blocked(|| {
        nl2sql_engine::settings::apply_threads(gucs::engine_settings().threads);
        candle_core::utils::barrier_pool();
        rayon::current_num_threads();
    })
}

fn load() -> Result<Engine> {
    let path = gucs::model_path();
    let settings = gucs::engine_settings();
    start_compute_threads();
    Ok(with_signals_blocked(|| Engine::load(&path, settings))?)
}

/// Says so when a setting that is fixed at load now asks for something else.
fn warn_about_settings_not_in_force(engine: &Engine) {
    let requested = gucs::engine_settings();
    let in_force = engine.settings();
    let warn = |setting: &str, requested: &dyn std::fmt::Display, loaded: String| {
        let message = format!("nl2sql.{setting} is {requested}, but this backend loaded the model {loaded}; the setting takes effect in a new connection");
        report(PgLogLevel::WARNING, &message, None);
    };
    if requested.threads != in_force.threads {
        warn("threads", &requested.threads, format!("with {} threads", in_force.threads));
    }
    if requested.draft_tokens != in_force.draft_tokens {
        warn("draft_tokens", &requested.draft_tokens, format!("with {}", in_force.draft_tokens));
    }
    if requested.device != in_force.device {
        warn("device", &requested.device, format!("on {}", in_force.device));
    }
}

/// Runs `f` with this backend's model, loading it first if needed.
pub fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> Result<R> {
    ENGINE.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| busy())?;
        if slot.as_ref().is_none_or(|engine| engine.path() != gucs::model_path()) {
            *slot = None; // free the old model before loading another
            *slot = Some(load()?);
        }
        let engine = slot.as_mut().expect("loaded above");
        warn_about_settings_not_in_force(engine);
        engine.set_max_new_tokens(gucs::max_new_tokens())?;
        engine.set_statement_cache(gucs::statement_cache());
        Ok(f(engine))
    })
}

/// Why the openai backend cannot answer yet.
pub fn no_endpoint() -> Nl2sqlError {
    Nl2sqlError::invalid_input("nl2sql.backend is 'openai' but nl2sql.endpoint is not set")
        .hint("As a superuser: ALTER SYSTEM SET nl2sql.endpoint = 'http://host:port/v1'; SELECT pg_reload_conf();")
}

/// Runs `f` with this backend's client of the inference server, making it first if needed.
fn with_remote<R>(f: impl FnOnce(&mut RemoteModel) -> R) -> Result<R> {
    let settings = gucs::remote_settings().ok_or_else(no_endpoint)?;
    REMOTE.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| busy())?;
        if slot.as_ref().is_none_or(|remote| *remote.settings() != settings) {
            *slot = None;
            // Its runtime's thread must not take PostgreSQL's signals.
            *slot = Some(with_signals_blocked(|| RemoteModel::new(settings, gucs::max_new_tokens()))?);
        }
        let remote = slot.as_mut().expect("made above");
        remote.set_max_new_tokens(gucs::max_new_tokens());
        Ok(f(remote))
    })
}

/// A client of the server's model worker, with this session's settings (connections are per
/// request: nothing to keep).
pub fn worker_client() -> WorkerClient {
    let options = RequestOptions { max_new_tokens: gucs::max_new_tokens(), model_path: gucs::model_path(), statement_cache: gucs::statement_cache() };
    WorkerClient::new(crate::model_worker::socket(), options)
}

/// Runs `f` with whatever writes SQL and answers in this session (nl2sql.backend).
pub fn with_model<R>(f: impl FnOnce(&mut dyn SqlModel) -> R) -> Result<R> {
    match gucs::backend() {
        ModelBackend::Local if crate::model_worker::serves() => Ok(f(&mut worker_client())),
        ModelBackend::Local => with_engine(|engine| f(engine)),
        ModelBackend::Openai => with_remote(|remote| f(remote)),
    }
}

/// The settings of the loaded model, if this backend has one (for nl2sql_status()).
pub fn loaded() -> Option<(String, std::time::Duration, Settings)> {
    ENGINE.with(|cell| {
        let slot = cell.try_borrow().ok()?;
        slot.as_ref().map(|e| (e.path().display().to_string(), e.load_time(), e.settings().clone()))
    })
}

/// Whether the client closed its connection. PostgreSQL notices that only when it next writes to
/// the client, or with client_connection_check_interval (off by default, and its timer is armed
/// only when a statement starts); a question runs for seconds without writing, so a client that
/// gave up (a killed psql, a driver's timeout) would leave its backend generating for nobody.
/// The same test PostgreSQL makes: the socket reports the peer's hang-up (POLLRDHUP).
fn client_hung_up() -> bool {
    // SAFETY: MyProcPort is this backend's client connection, set before any query runs, null
    // outside a client backend. pgrx leaves struct Port opaque; its first field is the socket
    // (`pgsocket sock`, an int on Unix, first in every release). poll with a zero timeout only
    // reads the socket's state.
    unsafe {
        let port = pg_sys::MyProcPort;
        if port.is_null() {
            return false;
        }
        let sock = *(port as *const libc::c_int);
        if sock < 0 {
            return false;
        }
        let mut socket = libc::pollfd { fd: sock, events: libc::POLLRDHUP, revents: 0 };
        libc::poll(&mut socket, 1, 0) == 1 && socket.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }
}

/// Watches generation from inside PostgreSQL: a client that hung up ends its backend, and
/// statement_timeout and query cancel stop it between tokens (the interrupt check raises the
/// ERROR, which unwinds out of the engine); with `progress`, the phases and the reply as it is
/// written go to the client as NOTICEs (see [`crate::progress`]).
pub struct Backend {
    pub progress: bool,
    /// The reply being written is the answer in words, not SQL.
    pub narrating: bool,
}

impl Backend {
    pub fn new(progress: bool) -> Self {
        Self { progress, narrating: false }
    }
}

impl Observer for Backend {
    fn checkpoint(&mut self) -> ControlFlow<()> {
        if client_hung_up() {
            // What PostgreSQL does when client_connection_check_interval finds the client gone:
            // a FATAL "connection to client lost" at the interrupt check; the backend exits.
            // SAFETY: plain flags of this process, read by ProcessInterrupts below.
            unsafe {
                pg_sys::ClientConnectionLost = 1;
                pg_sys::InterruptPending = 1;
            }
        }
        pg_sys::check_for_interrupts!();
        ControlFlow::Continue(())
    }

    fn reply(&mut self, text: &str) {
        match (self.progress, self.narrating) {
            (true, false) => crate::progress::reply(text),
            (true, true) => crate::progress::answer(text),
            (false, _) => {}
        }
    }

    fn attempt(&mut self, n: usize) {
        if self.progress {
            crate::progress::phase(crate::progress::Phase::WritingSql { attempt: n });
        }
    }
}
