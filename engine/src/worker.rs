//! One model for many processes: [`serve`] owns the loaded [`Engine`] and answers completions over
//! a Unix-domain socket, several at once with their forward passes batched (crate::batch), the
//! rest waiting in the order they connected; [`WorkerClient`] is the [`SqlModel`] a process uses
//! to ask it.
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
use crate::settings::{self, Settings};
use crate::batch::{BatchPasses, Batcher};
use crate::lock;
use crate::{Candidate, Engine};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::ops::{ControlFlow, Range};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// How many recent completions the percentiles are over.
const RECENT: usize = 1000;

/// What a caller asks for besides the prompt: what its session's settings say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOptions {
    pub max_new_tokens: usize,
    /// The model file the session expects (nl2sql.model_path): a worker serving another one
    /// refuses, rather than answer with a model the caller did not choose.
    pub model_path: PathBuf,
    pub statement_cache: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// The completions of `candidates` (by their place in a turn: 0 is the greedy one, the rest
    /// drawn; decoded together) with the schema constraint made from `schema` (none without one);
    /// `sent_at` is when the caller sent it (milliseconds since the Unix epoch), for the queue wait.
    Complete { prompt: ChatPrompt, schema: Option<Schema>, options: RequestOptions, candidates: Range<usize>, sent_at: u64 },
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
enum Event {
    /// The reply as written so far.
    Reply(String),
    /// The candidates, in the order asked for.
    Done(Vec<Completion>),
    Failed(Error),
    Status(WorkerStatus),
}

/// Nearest-rank percentiles of a set of values (the worker keeps milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |p: f64| sorted.get(((p * (sorted.len() as f64 - 1.0)).round()) as usize).copied().unwrap_or(0.0);
        Self { count: sorted.len(), p50: at(0.50), p95: at(0.95), p99: at(0.99) }
    }
}

/// What the worker says about itself, and what it has done since it started.
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
    /// Completions written or taken from the statement cache.
    pub completed: u64,
    /// Of those, taken from the statement cache.
    pub cache_hits: u64,
    /// Requests whose caller left (a cancel, a timeout, a client gone) before the end.
    pub cancelled: u64,
    /// Requests that failed, by the kind of error (its name in [`Error`]).
    pub failed: BTreeMap<String, u64>,
    pub prompt_tokens: u64,
    /// Prompt tokens whose computation the prefix cache saved.
    pub cached_prompt_tokens: u64,
    pub generated_tokens: u64,
    /// Generated tokens that were guessed from the prompt and kept (no pass of their own).
    #[serde(default)]
    pub drafted_tokens: u64,
    /// Over the last completions computed (cache hits excluded): time in the model.
    pub generation_ms: Percentiles,
    /// Over the last requests: time from the caller's sending to the worker's taking it up.
    pub queue_wait_ms: Percentiles,
    /// Forward passes run, and the sequences in them summed over all passes: their ratio is the
    /// mean batch (1 when questions come one at a time).
    #[serde(default)]
    pub forward_passes: u64,
    #[serde(default)]
    pub pass_sequences: u64,
    /// Requests answered at once (their passes batched); more wait their turn.
    #[serde(default)]
    pub max_in_flight: usize,
}

/// The model once loaded, with the batcher that runs the passes of every request in flight.
struct Loaded {
    engine: Arc<Engine>,
    batcher: Batcher,
}

/// The serving side: the model (once loaded) and what the worker has done. Each request is
/// answered in a thread of its own; the model is shared, its passes batched.
struct Worker {
    /// Fixed for the process's life (a change of the settings starts another process).
    model_path: PathBuf,
    max_in_flight: usize,
    loaded: Mutex<Option<Arc<Loaded>>>,
    tally: Mutex<Tally>,
    /// Requests being answered, at most `max_in_flight`; the next connection is accepted
    /// when one ends, so the kernel's listen queue keeps the rest in order.
    in_flight: Mutex<usize>,
    slot_freed: Condvar,
}

/// What the worker has done, and the recent values its percentiles are over.
struct Tally {
    status: WorkerStatus,
    generation_ms: VecDeque<f64>,
    queue_wait_ms: VecDeque<f64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn push_recent(values: &mut VecDeque<f64>, value: f64) {
    if values.len() == RECENT {
        values.pop_front();
    }
    values.push_back(value);
}

/// The name of an error's kind, as [`Error`]'s variants name it.
fn kind(error: &Error) -> String {
    match serde_json::to_value(error) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(fields)) => fields.keys().next().cloned().unwrap_or_default(),
        _ => "Unknown".to_owned(),
    }
}

impl Worker {
    /// The loaded model; loads it first if it is not loaded yet (one thread loads, the others
    /// wait for it).
    fn loaded(&self) -> Result<Arc<Loaded>> {
        let mut loaded = lock(&self.loaded);
        if let Some(loaded) = loaded.as_ref() {
            return Ok(loaded.clone());
        }
        let settings = lock(&self.tally).status.settings.clone();
        let engine = Arc::new(Engine::load(&self.model_path, settings)?);
        {
            let mut tally = lock(&self.tally);
            tally.status.settings = engine.settings().clone();
            tally.status.load_time = Some(engine.load_time());
        }
        let batcher = Batcher::start(engine.clone());
        Ok(loaded.insert(Arc::new(Loaded { engine, batcher })).clone())
    }

    fn complete(&self, prompt: &ChatPrompt, schema: Option<&Schema>, options: &RequestOptions, candidates: Range<usize>, caller: &mut Caller) -> Result<Vec<Completion>> {
        if options.model_path != self.model_path {
            // A file that is not there is the first thing to say (with how to fetch the model).
            if !options.model_path.exists() {
                return Err(Error::ModelNotFound { path: options.model_path.clone() });
            }
            return Err(Error::InvalidSetting(format!(
                "nl2sql.model_path is {} in this session, but the server's model worker serves {}; set it for the server (ALTER SYSTEM, then SELECT pg_reload_conf()), not per session",
                options.model_path.display(),
                self.model_path.display()
            )));
        }
        let constraint = schema.map(SchemaConstraint::new);
        let loaded = self.loaded()?;
        loaded.engine.settings().with_max_new_tokens(options.max_new_tokens)?;
        let engine = &loaded.engine;
        let first = Candidate { prompt, constraint: constraint.as_ref(), max_new_tokens: options.max_new_tokens, sampling: None, statement_cache: options.statement_cache };
        // No more at once than a turn may ask for.
        let candidates = candidates.start..candidates.end.min(candidates.start + settings::CANDIDATES.max);
        let mut completions: Vec<Option<Completion>> = candidates.clone().map(|index| first.nth(index).cached(engine)).collect();
        if let (0, Some(Some(hit))) = (candidates.start, completions.first()) {
            caller.reply(&hit.text);
        }
        let missing: Vec<usize> = candidates.clone().filter(|&index| completions[index - candidates.start].is_none()).collect();
        if missing.is_empty() {
            return Ok(completions.into_iter().flatten().collect());
        }
        // The prompt is computed once. Then every candidate still to write is in flight before
        // the first decoding pass, so that the batcher gathers them all into each pass, and each
        // leaves (its passes dropped) as soon as it ends. The greedy candidate shows its reply to
        // the caller as it is written; the others only watch for the caller leaving.
        let prefilled = engine.prefill(&loaded.batcher.generation(), prompt, options.max_new_tokens, caller)?;
        let passes: Vec<BatchPasses<'_>> = missing.iter().map(|_| loaded.batcher.generation()).collect();
        let stream = caller.stream;
        let written: Vec<Result<Completion>> = std::thread::scope(|threads| {
            let (mut greedy, mut drawn) = (None, Vec::new());
            for (&index, passes) in missing.iter().zip(passes) {
                let (candidate, prefilled) = (first.nth(index), prefilled.clone());
                if index == 0 {
                    greedy = Some((candidate, passes, prefilled));
                    continue;
                }
                drawn.push(threads.spawn(move || candidate.decode(engine, &passes, prefilled, &mut Caller { stream, gone: false, shows_replies: false })));
            }
            let greedy = greedy.map(|(candidate, passes, prefilled)| candidate.decode(engine, &passes, prefilled, caller));
            let drawn = drawn.into_iter().map(|thread| thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            greedy.into_iter().chain(drawn).collect()
        });
        for (index, completion) in missing.into_iter().zip(written) {
            completions[index - candidates.start] = Some(completion?);
        }
        Ok(completions.into_iter().flatten().collect())
    }

    fn answer(&self, stream: UnixStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let request: Request = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        let mut caller = Caller { stream: &stream, gone: false, shows_replies: true };
        let event = match request {
            Request::Status => Event::Status(self.status()),
            Request::Complete { prompt, schema, options, candidates, sent_at } => {
                push_recent(&mut lock(&self.tally).queue_wait_ms, now_ms().saturating_sub(sent_at) as f64);
                // A caller that gave up while it waited in the queue costs nothing.
                let outcome = if caller.hung_up() { Err(Error::Cancelled) } else { self.complete(&prompt, schema.as_ref(), &options, candidates, &mut caller) };
                let mut tally = lock(&self.tally);
                match outcome {
                    Ok(completions) => {
                        completions.iter().for_each(|completion| tally.count(completion));
                        Event::Done(completions)
                    }
                    Err(Error::Cancelled) => {
                        tally.status.cancelled += 1;
                        return Ok(());
                    }
                    Err(error) => {
                        *tally.status.failed.entry(kind(&error)).or_default() += 1;
                        Event::Failed(error)
                    }
                }
            }
        };
        caller.send(&event)
    }

    fn status(&self) -> WorkerStatus {
        let (forward_passes, pass_sequences) = lock(&self.loaded).as_ref().map_or((0, 0), |loaded| loaded.batcher.counts());
        let tally = lock(&self.tally);
        WorkerStatus {
            generation_ms: Percentiles::of(tally.generation_ms.iter().copied()),
            queue_wait_ms: Percentiles::of(tally.queue_wait_ms.iter().copied()),
            forward_passes,
            pass_sequences,
            ..tally.status.clone()
        }
    }

    /// Waits until fewer than `max_in_flight` requests are being answered, and takes a place
    /// until the guard is dropped (also when a request's thread panics: one bug costs one answer,
    /// not a place for ever).
    fn take_slot(&self) -> Slot<'_> {
        let mut in_flight = lock(&self.in_flight);
        while *in_flight >= self.max_in_flight {
            in_flight = self.slot_freed.wait(in_flight).unwrap_or_else(PoisonError::into_inner);
        }
        *in_flight += 1;
        Slot(self)
    }
}

/// A place among the requests being answered.
struct Slot<'a>(&'a Worker);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.in_flight) -= 1;
        self.0.slot_freed.notify_one();
    }
}

impl Tally {
    fn count(&mut self, completion: &Completion) {
        let status = &mut self.status;
        status.completed += 1;
        status.prompt_tokens += completion.prompt_tokens as u64;
        status.cached_prompt_tokens += completion.cached_tokens as u64;
        status.generated_tokens += completion.generated_tokens as u64;
        status.drafted_tokens += completion.drafted_tokens as u64;
        if completion.from_cache {
            status.cache_hits += 1;
        } else {
            let timings = &completion.timings;
            push_recent(&mut self.generation_ms, (timings.prefill + timings.decode).as_secs_f64() * 1000.0);
        }
    }
}

/// The connection of the request being answered, watched while the model works.
struct Caller<'a> {
    stream: &'a UnixStream,
    /// A write failed: the caller is gone.
    gone: bool,
    /// Whether the reply is sent as it is written (only one writer per connection).
    shows_replies: bool,
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
        if !self.shows_replies {
            return;
        }
        let _ = self.send(&Event::Reply(text.to_owned())); // a failure ends it at the next checkpoint
    }
}

/// Serves completions on `listener` for ever: up to `max_in_flight` requests at once (see
/// [`settings::WORKER_BATCH`]), each in a thread of its own, their forward passes batched; the
/// next callers wait in the listen queue,
/// in the order they connected. With `load_now`, loads the model at `model_path` before the first
/// request, so that no caller waits for it; otherwise at the first request. A failed load is
/// reported to `log` and to the caller, and tried again at the next request. Writes to a caller
/// that left fail without ending the process only if SIGPIPE is ignored, which the caller of this
/// function arranges.
pub fn serve(listener: &UnixListener, model_path: PathBuf, settings: Settings, max_in_flight: usize, load_now: bool, log: &(dyn Fn(&str) + Sync)) -> ! {
    // An out-of-range value cannot come from the GUC; from elsewhere, the nearest one allowed.
    let max_in_flight = max_in_flight.clamp(settings::WORKER_BATCH.min, settings::WORKER_BATCH.max);
    let pid = std::process::id();
    let status = WorkerStatus {
        pid,
        model_path: model_path.clone(),
        settings,
        load_time: None,
        completed: 0,
        cache_hits: 0,
        cancelled: 0,
        failed: BTreeMap::new(),
        prompt_tokens: 0,
        cached_prompt_tokens: 0,
        generated_tokens: 0,
        drafted_tokens: 0,
        generation_ms: Percentiles::default(),
        queue_wait_ms: Percentiles::default(),
        forward_passes: 0,
        pass_sequences: 0,
        max_in_flight,
    };
    let worker = Worker {
        model_path,
        max_in_flight,
        loaded: Mutex::new(None),
        tally: Mutex::new(Tally { status, generation_ms: VecDeque::new(), queue_wait_ms: VecDeque::new() }),
        in_flight: Mutex::new(0),
        slot_freed: Condvar::new(),
    };
    if load_now {
        match worker.loaded() {
            Ok(loaded) => log(&format!("model {} loaded in {:.1} s", loaded.engine.path().display(), loaded.engine.load_time().as_secs_f64())),
            Err(error) => log(&format!("the model could not be loaded (tried again at the next request): {error}")),
        }
    }
    std::thread::scope(|requests| loop {
        let slot = worker.take_slot();
        match listener.accept() {
            Ok((stream, _)) => {
                let worker = &worker;
                requests.spawn(move || {
                    let _slot = slot;
                    if let Err(error) = worker.answer(stream) {
                        log(&format!("a request could not be answered: {error}"));
                    }
                });
            }
            Err(error) => {
                drop(slot);
                log(&format!("accept failed: {error}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

/// Asks the model worker listening at a socket.
pub struct WorkerClient {
    socket: PathBuf,
    options: RequestOptions,
    patience: Duration,
}

impl WorkerClient {
    pub fn new(socket: &Path, options: RequestOptions) -> Self {
        Self { socket: socket.to_owned(), options, patience: DEFAULT_PATIENCE }
    }

    /// How long to wait for a worker that is not listening (30 s unless set).
    pub fn with_patience(self, patience: Duration) -> Self {
        Self { patience, ..self }
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
    ///
    /// A worker that goes away is asked about once more before it is reported: a server shutdown
    /// or a cancel stops the worker and this caller together, and the worker's closed socket can
    /// be read before the caller's own stop is processed. The caller's stop (PostgreSQL's 57P01,
    /// or a cancel) is the true cause, so it wins over "worker unavailable".
    fn ask(&self, request: &Request, observer: &mut dyn Observer) -> Result<Event> {
        match self.exchange(request, observer) {
            Err(Error::WorkerUnavailable { .. }) if observer.checkpoint().is_break() => Err(Error::Cancelled),
            answer => answer,
        }
    }

    fn exchange(&self, request: &Request, observer: &mut dyn Observer) -> Result<Event> {
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
        let mut completions = self.complete_candidates(prompt, constraint, 0..1, observer)?;
        Ok(completions.remove(0))
    }

    fn draws_candidates(&self) -> bool {
        true
    }

    fn complete_candidates(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, candidates: Range<usize>, observer: &mut dyn Observer) -> Result<Vec<Completion>> {
        let request = Request::Complete {
            prompt: prompt.clone(),
            schema: constraint.map(|c| c.schema().clone()),
            options: self.options.clone(),
            candidates,
            sent_at: now_ms(),
        };
        match self.ask(&request, observer)? {
            Event::Done(completions) if !completions.is_empty() => Ok(completions),
            Event::Failed(error) => Err(error),
            other => Err(self.unavailable(format!("unexpected answer {other:?}"))),
        }
    }
}
