//! nl2sql's engine: a question and a database schema in, one PostgreSQL SELECT out; result rows
//! in, a plain-language answer out. Pure Rust on candle, no PostgreSQL inside.
//!
//! - `model` opens a GGUF file (weights and tokenizer) and says exactly what is wrong with a bad one
//! - `qwen2` is the transformer's forward pass, with its KV cache kept outside the weights
//! - `tokens` is the tokenizer and Qwen's ChatML control tokens
//! - [`schema`] describes tables and renders them as CREATE TABLE text
//! - [`Question`] is a checked question; [`prompt`] builds the ChatML prompts; `narrate` the
//!   answer-from-rows prompt
//! - [`conversation`] asks for SQL, has the caller judge it, and repairs what failed
//! - `constraint` keeps generated SQL to the schema's tables and columns; `sql_names` the words
//!   it knows besides them; `ddl` reads schema text back into a [`Schema`]
//! - `generate` is the greedy decoding loop; `prefix_cache` reuses shared prompt prefixes;
//!   `statement_cache` keeps SQL already written, by its exact request
//! - [`remote`] sends the same prompts to an OpenAI-compatible inference server instead
//! - `extract` finds the SQL in the model's reply
//! - [`memory`] checks there is room for a model before loading it (running out halfway aborts)
//! - [`worker`] serves one loaded model to many processes over a Unix socket, and asks it;
//!   `batch` runs the forward passes of the requests it has in flight together
//! - [`settings`] holds threads, token limit and device, with their bounds; [`paths`] the cache

#![warn(unreachable_pub, dead_code)]

pub mod conversation;
mod constrained;
mod batch;
mod constraint;
mod ddl;
pub mod embedding;
mod error;
mod extract;
mod generate;
pub mod linking;
pub mod memory;
mod name_words;
mod model;
mod narrate;
pub mod paths;
mod prefix_cache;
pub mod prompt;
mod qwen2;
mod question;
pub mod remote;
pub mod schema;
pub mod settings;
mod sql_names;
mod statement_cache;
mod tokens;
mod value_kind;
pub mod values;
pub mod worker;

pub use constraint::SchemaConstraint;
pub use conversation::{converse, Answer, Attempt, Failure, Feedback, RepairPolicy, SqlModel, Verdict};
pub use error::{Error, Result};
pub use generate::{Completion, Finish, Observer, Quiet, Sampling, Timings};
pub use narrate::NarrationRequest;
pub use prompt::{ChatPrompt, Example, GlossaryEntry, Role, SqlRequest};
pub use question::{Question, MAX_QUESTION_CHARS};
pub use schema::{Column, ForeignKey, Schema, Table, TableKind};
pub use settings::{DeviceChoice, Settings};
pub use tokens::ChatTokenizer;
pub use value_kind::is_date_format;

use model::Model;
use prefix_cache::PrefixCache;
use statement_cache::StatementCache;
use generate::Passes;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What a mutex guards, even if a thread panicked while it held it: the caches and counters that
/// the worker's requests in flight share stay usable (at worst one entry is stale), and one failed
/// request must not fail every later one.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sequences kept for reuse: SQL prompts of a couple of databases plus narration prompts.
const PREFIX_CACHE_ENTRIES: usize = 4;

/// A loaded model with its prefix and statement caches. Generations in flight may share one
/// (the model worker's batches: [`batch`]); the caches are locked only to look up and to store.
pub struct Engine {
    model: Model,
    /// The settings in force: threads and device as loaded (threads as candle applied them).
    settings: Settings,
    path: PathBuf,
    cache: Mutex<PrefixCache>,
    statements: Mutex<StatementCache>,
    /// Whether SQL requests use the statement cache (off until asked for: benchmarks and
    /// tests that repeat a prompt mean to compute it).
    statement_cache: bool,
    load_time: Duration,
}

impl Engine {
    /// Loads the model at `path`. The first load in a process also fixes candle's thread count.
    pub fn load(path: &Path, settings: Settings) -> Result<Self> {
        settings.validate()?;
        let threads = settings::apply_threads(settings.threads);
        let started = Instant::now();
        let model = Model::load(path, &settings.device.open()?)?;
        Ok(Self {
            model,
            settings: Settings { threads, ..settings },
            path: path.to_owned(),
            cache: Mutex::new(PrefixCache::new(PREFIX_CACHE_ENTRIES)),
            statements: Mutex::new(StatementCache::default()),
            statement_cache: false,
            load_time: started.elapsed(),
        })
    }

    /// The memory loading the model at `path` on the CPU takes at its peak, as the check before
    /// loading estimates it (from the file's header; nothing is loaded).
    pub fn memory_to_load(path: &Path) -> Result<u64> {
        Ok(model::bytes_to_load(&model::read_header(path)?.0))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings in force (threads and device cannot change once loaded).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Changes the token limit (threads and device are fixed once the model is loaded).
    pub fn set_max_new_tokens(&mut self, max_new_tokens: usize) -> Result<()> {
        self.settings = self.settings.with_max_new_tokens(max_new_tokens)?;
        Ok(())
    }

    /// The median seconds of `repeats` forward passes over `tokens` new tokens after a context of
    /// `context` (logits for each of them). A decoding step for a batch of k requests puts k rows
    /// through the same weights, so this says whether batching pays on this device: engine-bench
    /// prints it for k = 1, 2, 4, 8. (The batch's attention reads k contexts instead of one; at a
    /// few hundred tokens that is small beside the weights.)
    pub fn pass_seconds(&self, context: &[u32], tokens: usize, repeats: usize) -> Result<f64> {
        let config = self.model.qwen2.config();
        let mut kv = qwen2::KvCache::new(config);
        for chunk in context.chunks(generate::PREFILL_CHUNK) {
            self.model.qwen2.forward(chunk, &mut kv)?;
        }
        let fed: Vec<u32> = context.iter().copied().cycle().take(tokens).collect();
        let mut seconds = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            kv.truncate(context.len())?;
            let started = Instant::now();
            self.model.qwen2.forward_each(&fed, &mut kv)?;
            seconds.push(started.elapsed().as_secs_f64());
        }
        Ok(worker::Percentiles::of(seconds).p50)
    }

    pub fn clear_prefix_cache(&mut self) {
        lock(&self.cache).clear();
    }

    /// Turns the statement cache on or off for the next requests (what it holds is kept).
    pub fn set_statement_cache(&mut self, on: bool) {
        self.statement_cache = on;
    }

    /// The prompt's token ids, control tokens inserted by id.
    pub fn prompt_tokens(&self, prompt: &ChatPrompt) -> Result<Vec<u32>> {
        prompt.tokens(&self.model.tokenizer)
    }

    /// Text as token ids, and back (no control tokens: text never forges one).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.model.tokenizer.encode(text)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.model.tokenizer.decode(ids)
    }

    /// One or two sentences that answer the question from the rows.
    pub fn narrate(&mut self, request: &NarrationRequest, observer: &mut dyn Observer) -> Result<Completion> {
        request.answer(self, observer)
    }

    /// Computes the prompt once, for candidates to decode from.
    pub(crate) fn prefill(&self, passes: &dyn Passes, prompt: &ChatPrompt, max_new_tokens: usize, observer: &mut dyn Observer) -> Result<generate::Prefilled> {
        generate::prefill(&self.model, passes, &self.cache, prompt, max_new_tokens, observer)
    }
}

/// One of the replies the first turn writes for a prompt (conversation.rs): the greedy one, or
/// one drawn with `sampling`, each kept in the statement cache under its own key.
#[derive(Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub(crate) prompt: &'a ChatPrompt,
    pub(crate) constraint: Option<&'a SchemaConstraint>,
    pub(crate) max_new_tokens: usize,
    pub(crate) sampling: Option<Sampling>,
    pub(crate) statement_cache: bool,
}

impl Candidate<'_> {
    /// Candidate `index` of a turn (0 is the greedy one).
    pub(crate) fn nth(self, index: usize) -> Self {
        Self { sampling: (index > 0).then(|| Sampling::candidate(index)), ..self }
    }

    fn key(&self) -> Option<String> {
        let schema = self.constraint.map(SchemaConstraint::schema);
        self.statement_cache.then(|| statement_cache::key(self.prompt, schema, self.max_new_tokens, self.sampling)).flatten()
    }

    /// The reply the statement cache holds for it, if it is on and has it.
    pub(crate) fn cached(&self, engine: &Engine) -> Option<Completion> {
        self.key().and_then(|key| lock(&engine.statements).get(&key))
    }

    /// Writes it from the computed prompt, and keeps it in the statement cache when that is on.
    pub(crate) fn decode(&self, engine: &Engine, passes: &dyn Passes, prefilled: generate::Prefilled, observer: &mut dyn Observer) -> Result<Completion> {
        let completion = generate::decode(&engine.model, passes, &engine.cache, prefilled, self.max_new_tokens, engine.settings.draft_tokens, self.constraint, self.sampling, observer)?;
        if let Some(key) = self.key() {
            lock(&engine.statements).put(key, &completion);
        }
        Ok(completion)
    }
}

impl SqlModel for Engine {
    fn complete(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion> {
        let mut completions = self.complete_candidates(prompt, constraint, 0..1, observer)?;
        Ok(completions.remove(0))
    }

    fn draws_candidates(&self) -> bool {
        true
    }

    /// Each candidate from the statement cache when it has it (the greedy one's shown to the
    /// observer, as if written); the prompt computed once for the rest, then they are written one
    /// after the other: in one process a pass serves one sequence (the model worker decodes them
    /// together, in shared passes).
    fn complete_candidates(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, candidates: Range<usize>, observer: &mut dyn Observer) -> Result<Vec<Completion>> {
        let first = Candidate { prompt, constraint, max_new_tokens: self.settings.max_new_tokens, sampling: None, statement_cache: self.statement_cache };
        let mut prefilled = None;
        candidates
            .map(|index| {
                let candidate = first.nth(index);
                if let Some(hit) = candidate.cached(self) {
                    if index == 0 {
                        observer.reply(&hit.text);
                    }
                    return Ok(hit);
                }
                if prefilled.is_none() {
                    prefilled = Some(self.prefill(&self.model.qwen2, prompt, candidate.max_new_tokens, observer)?);
                }
                let prefilled = prefilled.clone().expect("computed above");
                candidate.decode(self, &self.model.qwen2, prefilled, observer)
            })
            .collect()
    }
}
