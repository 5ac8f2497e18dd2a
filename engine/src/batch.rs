//! Forward passes shared by the generations in flight. Each generation runs in a thread of its own
//! (the model worker gives each request one) and hands its passes to [`BatchPasses`]; the
//! [`Batcher`]'s thread gathers what the generations ask for and runs it as one pass over all
//! their rows (qwen2's `forward_segments`): the weights are read once for every sequence, and
//! attention stays per sequence. On 2 CPU cores one pass over 8 rows costs about twice a pass over
//! one (engine-bench's pass cost), so 8 generations in flight write about 4 times the tokens per
//! second that one does; on a GPU the gain is larger.
//!
//! A pass waits, after its first request, until every generation in flight has asked, or a
//! gather time has passed: the last pass's time, within [`MIN_GATHER`] and [`MAX_GATHER`] (a pass
//! that read a long prompt says nothing of how long a decoding step takes). A generation between
//! two passes is checking candidates against the schema constraint, which usually takes a
//! millisecond or two, but far longer on a busy machine, in a debug build, or while candle's pool
//! still spins after a pass. A generation that misses a pass costs more than the wait would have:
//! it waits out that pass, then needs one of its own (on a CPU a pass over one row costs half a
//! pass over eight), and from then on it and the others take turns rather than sharing passes.
//! So the wait is as long as a pass. A generation that ends does not make the others wait for it:
//! it says so as it leaves ([`Message::Left`]), and the pass goes on with those still in flight.
//!
//! Greedy decoding stays greedy, but candle's multi-row kernels round differently from its one-row
//! ones (qwen2.rs's reference test: up to ~0.5 in logits of ~15), so a near tie can tip the other
//! way when a question shares its passes with another one.

use crate::error::{Error, Result};
use crate::generate::Passes;
use crate::qwen2::{KvCache, Segment};
use crate::Engine;
use candle_core::Tensor;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least a pass waits for the generations in flight that have not asked yet.
const MIN_GATHER: Duration = Duration::from_millis(5);

/// The most a pass waits for them: about a decoding pass over 8 rows on 2 CPU cores.
const MAX_GATHER: Duration = Duration::from_millis(250);

/// How often a generation waiting for its pass asks its own `stop` (a caller that left): a pass
/// whose every sequence was abandoned ends at the next layer, as a lone generation's does.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What reaches the batcher's thread from the generations.
enum Message {
    /// A generation asks for a pass.
    Pass(Request),
    /// A generation ended (after `in_flight` counted it out): a pass waiting for every generation
    /// in flight to ask stops waiting for it.
    Left,
}

/// What a generation asks of a pass: its new tokens after the positions in its cache, and the
/// logits after how many of the last ones.
struct Request {
    tokens: Vec<u32>,
    outputs: usize,
    kv: KvCache,
    abandoned: Arc<AtomicBool>,
    answer: Sender<Result<Option<(Tensor, KvCache)>>>,
}

/// What the batcher has done since it started.
#[derive(Debug, Default)]
struct Counts {
    passes: AtomicU64,
    sequences: AtomicU64,
}

/// Runs the passes of every generation in flight, together; see the module's comment.
pub(crate) struct Batcher {
    requests: Sender<Message>,
    in_flight: Arc<AtomicUsize>,
    counts: Arc<Counts>,
}

impl Batcher {
    /// Starts the thread that runs the passes on `engine`'s model; it ends when the batcher is
    /// dropped.
    pub(crate) fn start(engine: Arc<Engine>) -> Self {
        let (requests, received) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counts = Arc::new(Counts::default());
        let (waiting, counted) = (in_flight.clone(), counts.clone());
        std::thread::Builder::new()
            .name("nl2sql-batcher".into())
            .spawn(move || {
                // Every request in flight waits on this thread: if it dies of a bug, the process
                // must die too, so that its supervisor starts a new one (the callers in flight
                // get an error), rather than live on answering nothing.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&engine, &received, &waiting, &counted)));
                if ran.is_err() {
                    std::process::abort();
                }
            })
            .expect("a thread for the batcher");
        Self { requests, in_flight, counts }
    }

    /// The passes of one generation, counted in flight until dropped.
    pub(crate) fn generation(&self) -> BatchPasses<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        BatchPasses { batcher: self, requests: self.requests.clone() }
    }

    /// Passes run, and sequences in them over all passes (their ratio is the mean batch).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.counts.passes.load(Ordering::Relaxed), self.counts.sequences.load(Ordering::Relaxed))
    }
}

/// One generation's way to the batcher.
pub(crate) struct BatchPasses<'a> {
    batcher: &'a Batcher,
    requests: Sender<Message>,
}

impl Drop for BatchPasses<'_> {
    fn drop(&mut self) {
        self.batcher.in_flight.fetch_sub(1, Ordering::AcqRel);
        // The batcher's thread may be gone already (it is answering nothing then).
        let _ = self.requests.send(Message::Left);
    }
}

impl Passes for BatchPasses<'_> {
    fn forward(&self, tokens: &[u32], outputs: usize, kv: &mut KvCache, stop: &mut dyn FnMut() -> bool) -> Result<Option<Tensor>> {
        let gone = || Error::Candle("the batcher thread ended".into());
        let (answer, answered) = mpsc::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        // A clone of the cache is a few reference counts; the pass sends it back grown.
        let request = Request { tokens: tokens.to_vec(), outputs, kv: kv.clone(), abandoned: abandoned.clone(), answer };
        self.requests.send(Message::Pass(request)).map_err(|_| gone())?;
        loop {
            match answered.recv_timeout(STOP_POLL) {
                Ok(result) => {
                    return Ok(match result? {
                        Some((logits, grown)) if !abandoned.load(Ordering::Acquire) => {
                            *kv = grown;
                            Some(logits)
                        }
                        _ => None,
                    })
                }
                Err(RecvTimeoutError::Timeout) => {
                    if stop() {
                        abandoned.store(true, Ordering::Release);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Err(gone()),
            }
        }
    }
}

/// The batcher's thread: gathers requests into passes and runs them until every sender is gone.
fn run(engine: &Engine, requests: &Receiver<Message>, in_flight: &AtomicUsize, counts: &Counts) {
    let mut gather = MIN_GATHER;
    loop {
        let first = match requests.recv() {
            Ok(Message::Pass(request)) => request,
            Ok(Message::Left) => continue,
            Err(_) => return,
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + gather;
        while batch.len() < in_flight.load(Ordering::Acquire) {
            match requests.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Message::Pass(request)) => batch.push(request),
                Ok(Message::Left) => {}
                Err(_) => break,
            }
        }
        // A request abandoned while it waited costs nothing.
        batch.retain(|request| {
            let keep = !request.abandoned.load(Ordering::Acquire);
            if !keep {
                let _ = request.answer.send(Ok(None));
            }
            keep
        });
        if batch.is_empty() {
            continue;
        }
        counts.passes.fetch_add(1, Ordering::Relaxed);
        counts.sequences.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        let logits = pass(engine, &mut batch);
        gather = started.elapsed().clamp(MIN_GATHER, MAX_GATHER);
        answer(batch, logits);
    }
}

/// One pass over `batch`'s segments: the logits of each, or `None` when every one of them was
/// abandoned before the pass ended.
fn pass(engine: &Engine, batch: &mut [Request]) -> Result<Option<Tensor>> {
    let abandoned: Vec<Arc<AtomicBool>> = batch.iter().map(|r| r.abandoned.clone()).collect();
    let mut segments: Vec<Segment<'_>> = batch.iter_mut().map(|Request { tokens, outputs, kv, .. }| Segment { tokens, cache: kv, outputs: *outputs }).collect();
    let mut stop = || abandoned.iter().all(|a| a.load(Ordering::Acquire));
    Ok(engine.model.qwen2.forward_segments(&mut segments, &mut stop)?)
}

/// Sends each request its rows of the pass's logits and its grown cache (or the pass's failure).
fn answer(batch: Vec<Request>, logits: Result<Option<Tensor>>) {
    match logits {
        Ok(Some(logits)) => {
            let mut row = 0;
            for request in batch {
                let outputs = request.outputs;
                let result = logits.narrow(0, row, outputs).map(|logits| Some((logits, request.kv))).map_err(Error::from);
                row += outputs;
                let _ = request.answer.send(result);
            }
        }
        Ok(None) => batch.into_iter().for_each(|request| drop(request.answer.send(Ok(None)))),
        Err(error) => {
            let message = error.to_string();
            batch.into_iter().for_each(|request| drop(request.answer.send(Err(Error::Candle(message.clone())))));
        }
    }
}
