//! One model for the whole server. With `shared_preload_libraries = 'nl2sql'`, a background worker
//! keeps the model loaded and every backend asks it over a Unix socket in the data directory
//! (`nl2sql_engine::worker`), instead of loading its own copy (3 GB and seconds per connection).
//! Without preloading, each backend loads the model itself, as before; `nl2sql_status()` says
//! which is in force.
//!
//! The background worker PostgreSQL starts is only a supervisor: the model lives in a process it
//! forks, which leaves PostgreSQL behind (default signal handlers, never runs its code again, ends
//! with `_exit`). Why: the postmaster treats any of its own children dying by a signal as a crash
//! and ends every session to recover, and the process holding 3 GB is the one the kernel's OOM
//! killer picks first. The model process is the supervisor's child, not the postmaster's: when it
//! dies, only the questions in flight fail (with an ERROR), and the supervisor starts a new one.
//! The listening socket belongs to the supervisor, so questions asked meanwhile wait in its queue.

use crate::gucs;
use nl2sql_engine::Settings;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The worker's socket, relative to the data directory (every server process's working
/// directory; a relative path also escapes the 107-byte limit of socket paths). pg_stat_tmp is
/// left out of base backups, and only the server's OS user may enter the data directory.
pub const SOCKET: &str = "pg_stat_tmp/nl2sql_model.sock";

/// A model process that died is started again after this pause (a model that cannot load at all
/// keeps its process up and reports why to each caller; this only paces crashes).
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Set in the postmaster when it preloads the library; backends inherit it when they fork.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Registers the background worker when the library is being preloaded (from `_PG_init`).
pub fn register() {
    // SAFETY: a plain flag of this process, set by PostgreSQL while it loads preloaded libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    PRELOADED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new("nl2sql model worker")
        .set_library("nl2sql")
        .set_function("nl2sql_model_worker_main")
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Whether this server's backends ask the model worker (nl2sql is preloaded).
pub fn serves() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

pub fn socket() -> &'static Path {
    Path::new(SOCKET)
}

/// What the model process is started with; a change on reload restarts it.
#[derive(Clone, PartialEq)]
struct ModelConfig {
    path: PathBuf,
    settings: Settings,
    /// Questions answered at once (nl2sql.worker_batch).
    max_in_flight: usize,
    /// Load at start, before any question: unless the server's nl2sql.backend is openai (then
    /// only sessions that choose local ask the worker, and the first of them waits for the load).
    load_now: bool,
}

impl ModelConfig {
    fn current() -> Self {
        // The token limit travels with each request; only what loading fixes counts here.
        Self {
            path: gucs::model_path(),
            settings: Settings { max_new_tokens: Settings::default().max_new_tokens, ..gucs::engine_settings() },
            max_in_flight: gucs::worker_batch(),
            load_now: gucs::backend() == gucs::ModelBackend::Local,
        }
    }
}

fn log(message: &str) {
    pgrx::log!("nl2sql model worker: {message}");
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn nl2sql_model_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM | SignalWakeFlags::SIGCHLD);
    let _ = std::fs::remove_file(SOCKET); // left by a supervisor that was killed
    let listener = match UnixListener::bind(SOCKET) {
        Ok(listener) => listener,
        Err(error) => {
            pgrx::warning!("nl2sql model worker: cannot listen on {SOCKET} in the data directory: {error}");
            return;
        }
    };
    let mut config = ModelConfig::current();
    let mut model: Option<libc::pid_t> = None;
    let mut next_start = Instant::now();
    loop {
        if model.is_none() && Instant::now() >= next_start {
            model = start_model_process(&listener, &config);
            next_start = Instant::now() + RESTART_PAUSE;
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(500))) {
            break; // SIGTERM, or the postmaster died
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: what PostgreSQL's own processes do on SIGHUP, on this process's thread.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            let new = ModelConfig::current();
            if new != config {
                log("the model settings changed; restarting the model process");
                config = new;
                if let Some(pid) = model.take() {
                    stop(pid);
                }
                next_start = Instant::now();
            }
        }
        if let Some(pid) = model {
            if let Some(how) = ended(pid) {
                log(&format!("the model process {pid} {how}; starting a new one"));
                model = None;
            }
        }
    }
    if let Some(pid) = model {
        stop(pid);
    }
    let _ = std::fs::remove_file(SOCKET);
}

/// How the child `pid` ended, if it did (reaped then).
fn ended(pid: libc::pid_t) -> Option<String> {
    let mut status = 0;
    // SAFETY: waitpid on our own child, without blocking.
    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
        return None;
    }
    Some(if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    })
}

fn stop(pid: libc::pid_t) {
    // SAFETY: signals and reaps our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

fn start_model_process(listener: &UnixListener, config: &ModelConfig) -> Option<libc::pid_t> {
    let supervisor = std::process::id() as libc::pid_t;
    // SAFETY: this process has one thread (nothing here starts candle), so the child may run any
    // code; it never returns into PostgreSQL's (see model_process).
    match unsafe { libc::fork() } {
        -1 => {
            pgrx::warning!("nl2sql model worker: cannot start the model process: {}", std::io::Error::last_os_error());
            None
        }
        0 => model_process(listener, config, supervisor),
        pid => {
            log(&format!("started the model process {pid} for {}", config.path.display()));
            Some(pid)
        }
    }
}

/// The forked model process: it leaves PostgreSQL's signal handling, dies with its supervisor,
/// serves until killed, and exits with `_exit`, so that none of PostgreSQL's exit callbacks (which
/// belong to the supervisor's place in shared memory) ever run here.
fn model_process(listener: &UnixListener, config: &ModelConfig, supervisor: libc::pid_t) -> ! {
    // SAFETY: the title (what ps shows) is this process's own memory; then signal dispositions and
    // the mask of this single-threaded process, and prctl.
    unsafe {
        pg_sys::set_ps_display(c"model process".as_ptr());
        for signal in 1..libc::SIGRTMIN() {
            libc::signal(signal, libc::SIG_DFL);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN); // a caller that left is a write error, not death
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_NAME, c"nl2sql model".as_ptr());
        if libc::getppid() != supervisor {
            libc::_exit(1); // the supervisor died before PR_SET_PDEATHSIG took effect
        }
    }
    // stderr is the server's log (or its collector's pipe); ereport is PostgreSQL code.
    let log = |message: &str| eprintln!("nl2sql model process {}: {message}", std::process::id());
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        nl2sql_engine::worker::serve(listener, config.path.clone(), config.settings.clone(), config.max_in_flight, config.load_now, &log)
    }));
    if let Err(panic) = served {
        log(&format!("stopped by a bug: {:?}", panic.downcast_ref::<String>().map(String::as_str).or(panic.downcast_ref::<&str>().copied())));
    }
    // SAFETY: ends this process without running any exit callback.
    unsafe { libc::_exit(70) }
}
