//! One model for many processes: [`serve`] owns the loaded [`Engine`] and answers completions over
//! a Unix-domain socket, one request at a time in the order they connected; [`WorkerClient`] is
//! the [`SqlModel`] a process uses to ask it.
//!
//! Why a socket and not shared memory: a connection is the request's whole life. A caller that
//! gives up (a cancel, a timeout, a vanished client) closes it, and the worker sees the hang-up at
//! its next token and stops; a worker that dies closes every connection, and each caller gets a
//! clear error at once instead of waiting on a latch. Requests not yet accepted wait in the
//! kernel's listen queue, which is first-come first-served. The messages are JSON lines: small
//! next to a prompt's computation, and readable with `socat` when something goes wrong.

use crate::constraint::SchemaConstraint;
use crate::conversation::SqlModel;
use crate::error::{Error, Result};
use crate::generate::{Completion, Observer};
use crate::prompt::ChatPrompt;
use crate::schema::Schema;
use crate::settings::Settings;
use crate::Engine;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a waiting caller looks up from the socket to ask its own observer whether to go on
/// (PostgreSQL's cancel and statement_timeout are seen then): the bound on cancel latency.
const CALLER_POLL: Duration = Duration::from_millis(100);

/// How long a caller waits for a worker that is not listening yet: one that is starting, or
/// being started again after a crash (its process loads the model before it answers, but the
/// socket listens from the start). Past it, the caller gets an error.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

/// How long the worker waits for a connected caller to send its request; callers send it at once,
/// so only a broken one is ever cut off by this.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// A completion with the schema constraint made from `schema` (none without one).
    Complete { prompt: ChatPrompt, schema: Option<Schema>, max_new_tokens: usize },
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
enum Event {
    /// The reply as written so far.
    Reply(String),
    Done(Completion),
    Failed(Error),
    Status(WorkerStatus),
}

/// What the worker says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The process that holds the model.
    pub pid: u32,
    pub model_path: PathBuf,
    /// Threads and device in force.
    pub settings: Settings,
    /// Set once the model is loaded; the worker loads it at start, and again at the next request
    /// after a load failed.
    pub load_time: Option<Duration>,
    pub completed: u64,
    pub cancelled: u64,
    pub failed: u64,
}

/// The serving side: the engine (once loaded) and what it has done.
struct Worker {
    engine: Option<Engine>,
    status: WorkerStatus,
}

impl Worker {
    /// Loads the model if it is not loaded yet.
    fn engine(&mut self) -> Result<&mut Engine> {
        if self.engine.is_none() {
            let engine = Engine::load(&self.status.model_path, self.status.settings.clone())?;
            self.status.settings = engine.settings().clone();
            self.status.load_time = Some(engine.load_time());
            self.engine = Some(engine);
        }
        Ok(self.engine.as_mut().expect("loaded above"))
    }

    fn answer(&mut self, stream: UnixStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let request: Request = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        let mut caller = Caller { stream: &stream, gone: false };
        let event = match request {
            Request::Status => Event::Status(self.status.clone()),
            // A caller that gave up while it waited in the queue costs nothing.
            Request::Complete { .. } if caller.hung_up() => {
                self.status.cancelled += 1;
                return Ok(());
            }
            Request::Complete { prompt, schema, max_new_tokens } => {
                let constraint = schema.as_ref().map(SchemaConstraint::new);
                let completion = self.engine().and_then(|engine| {
                    engine.set_max_new_tokens(max_new_tokens)?;
                    engine.complete(&prompt, constraint.as_ref(), &mut caller)
                });
                match completion {
                    Ok(completion) => {
                        self.status.completed += 1;
                        Event::Done(completion)
                    }
                    Err(Error::Cancelled) => {
                        self.status.cancelled += 1;
                        return Ok(());
                    }
                    Err(error) => {
                        self.status.failed += 1;
                        Event::Failed(error)
                    }
                }
            }
        };
        caller.send(&event)
    }
}

/// The connection of the request being answered, watched while the model works.
struct Caller<'a> {
    stream: &'a UnixStream,
    /// A write failed: the caller is gone.
    gone: bool,
}

impl Caller<'_> {
    /// Whether the caller closed its end (the test PostgreSQL makes for a vanished client).
    fn hung_up(&self) -> bool {
        let mut socket = libc::pollfd { fd: self.stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
        // SAFETY: poll with a zero timeout on a descriptor this stream owns only reads its state.
        let ready = unsafe { libc::poll(&mut socket, 1, 0) };
        ready == 1 && socket.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    fn send(&mut self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let result = { self.stream }.write_all(&line);
        self.gone |= result.is_err();
        result
    }
}

impl Observer for Caller<'_> {
    fn checkpoint(&mut self) -> ControlFlow<()> {
        if self.gone || self.hung_up() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn reply(&mut self, text: &str) {
        let _ = self.send(&Event::Reply(text.to_owned())); // a failure ends it at the next checkpoint
    }
}

/// Serves completions on `listener` for ever, one request at a time, in the order callers
/// connected. With `load_now`, loads the model at `model_path` before the first request, so that
/// no caller waits for it; otherwise at the first request. A failed load is reported to `log` and
/// to the caller, and tried again at the next request. Writes to a caller that left fail without
/// ending the process only if SIGPIPE is ignored, which the caller of this function arranges.
pub fn serve(listener: &UnixListener, model_path: PathBuf, settings: Settings, load_now: bool, log: &dyn Fn(&str)) -> ! {
    let pid = std::process::id();
    let status = WorkerStatus { pid, model_path, settings, load_time: None, completed: 0, cancelled: 0, failed: 0 };
    let mut worker = Worker { engine: None, status };
    if load_now {
        match worker.engine() {
            Ok(engine) => log(&format!("model {} loaded in {:.1} s", engine.path().display(), engine.load_time().as_secs_f64())),
            Err(error) => log(&format!("the model could not be loaded (tried again at the next request): {error}")),
        }
    }
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(error) = worker.answer(stream) {
                    log(&format!("a request could not be answered: {error}"));
                }
            }
            Err(error) => {
                log(&format!("accept failed: {error}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Asks the model worker listening at a socket.
pub struct WorkerClient {
    socket: PathBuf,
    max_new_tokens: usize,
    patience: Duration,
}

impl WorkerClient {
    pub fn new(socket: &Path, max_new_tokens: usize) -> Self {
        Self { socket: socket.to_owned(), max_new_tokens, patience: DEFAULT_PATIENCE }
    }

    /// How long to wait for a worker that is not listening (30 s unless set).
    pub fn with_patience(self, patience: Duration) -> Self {
        Self { patience, ..self }
    }

    pub fn set_max_new_tokens(&mut self, max_new_tokens: usize) {
        self.max_new_tokens = max_new_tokens;
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> Error {
        Error::WorkerUnavailable { socket: self.socket.clone(), reason: reason.to_string() }
    }

    /// Connects, waiting up to the patience for a worker that is not listening yet.
    fn connect(&self, observer: &mut dyn Observer) -> Result<UnixStream> {
        let started = Instant::now();
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(stream) => return Ok(stream),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) && started.elapsed() < self.patience => {
                    if observer.checkpoint().is_break() {
                        return Err(Error::Cancelled);
                    }
                    std::thread::sleep(CALLER_POLL);
                }
                Err(e) => return Err(self.unavailable(format!("{e} (waited {:.0} s)", started.elapsed().as_secs_f64()))),
            }
        }
    }

    /// Sends `request` and reads events until the last one, which it returns; replies go to the
    /// observer, which is asked between events (at least every [`CALLER_POLL`]) whether to go on.
    /// Giving up drops the connection: that is how the worker learns to stop.
    fn ask(&self, request: &Request, observer: &mut dyn Observer) -> Result<Event> {
        let mut stream = self.connect(observer)?;
        let mut line = serde_json::to_vec(request).map_err(|e| self.unavailable(e))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(|e| self.unavailable(e))?;
        stream.set_read_timeout(Some(CALLER_POLL)).map_err(|e| self.unavailable(e))?;
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            if observer.checkpoint().is_break() {
                return Err(Error::Cancelled);
            }
            // On a timeout, what was read stays in `line` and the next call appends to it.
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Err(self.unavailable("the worker ended the connection before answering (it restarts by itself; see the server log)")),
                Ok(_) if line.ends_with(b"\n") => {
                    let event: Event = serde_json::from_slice(&line).map_err(|e| self.unavailable(format!("unreadable message: {e}")))?;
                    line.clear();
                    match event {
                        Event::Reply(text) => observer.reply(&text),
                        last => return Ok(last),
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(self.unavailable(e)),
            }
        }
    }

    /// The worker's own account of itself (it answers between requests: the observer may give up).
    pub fn status(&self, observer: &mut dyn Observer) -> Result<WorkerStatus> {
        match self.ask(&Request::Status, observer)? {
            Event::Status(status) => Ok(status),
            other => Err(self.unavailable(format!("unexpected answer {other:?}"))),
        }
    }
}

impl SqlModel for WorkerClient {
    fn complete(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion> {
        let request = Request::Complete {
            prompt: prompt.clone(),
            schema: constraint.map(|c| c.schema().clone()),
            max_new_tokens: self.max_new_tokens,
        };
        match self.ask(&request, observer)? {
            Event::Done(completion) => Ok(completion),
            Event::Failed(error) => Err(error),
            other => Err(self.unavailable(format!("unexpected answer {other:?}"))),
        }
    }
}
