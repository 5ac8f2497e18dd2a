//! nl2sql's engine: a question and a database schema in, one PostgreSQL SELECT out; result rows
//! in, a plain-language answer out. Pure Rust on candle, no PostgreSQL inside.
//!
//! - [`model`] opens a GGUF file (weights and tokenizer) and says exactly what is wrong with a bad one
//! - [`qwen2`] is the transformer's forward pass, with its KV cache kept outside the weights
//! - [`tokens`] is the tokenizer and Qwen's ChatML control tokens
//! - [`schema`] describes tables and renders them as CREATE TABLE text
//! - [`prompt`] builds the ChatML text-to-SQL prompt; [`narrate`] the answer-from-rows prompt
//! - [`generate`] is the greedy decoding loop; [`prefix_cache`] reuses shared prompt prefixes
//! - [`extract`] finds the SQL in the model's reply
//! - [`settings`] holds threads, token limit and device

pub mod error;
pub mod extract;
pub mod generate;
pub mod model;
pub mod narrate;
pub mod prefix_cache;
pub mod prompt;
pub mod qwen2;
pub mod schema;
pub mod settings;
pub mod tokens;

pub use error::{Error, Result};
pub use generate::{Checkpoint, Completion, Finish, Timings};
pub use narrate::NarrationRequest;
pub use prompt::{ChatPrompt, FailedAttempt, SqlRequest};
pub use schema::{Column, ForeignKey, Schema, Table, TableKind};
pub use settings::{DeviceChoice, Settings};

use model::Model;
use prefix_cache::PrefixCache;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Sequences kept for reuse: SQL prompts of a couple of databases plus narration prompts.
const PREFIX_CACHE_ENTRIES: usize = 4;

/// A loaded model with its prefix cache. Not `Sync`: one generation at a time.
pub struct Engine {
    model: Model,
    settings: Settings,
    path: PathBuf,
    cache: PrefixCache,
    load_time: Duration,
}

/// SQL written by the model, with the reply it came from and the generation statistics.
#[derive(Debug, Clone)]
pub struct GeneratedSql {
    pub sql: String,
    pub completion: Completion,
}

impl Engine {
    /// Loads the model at `path`. The first load in a process also fixes candle's thread count.
    pub fn load(path: &Path, settings: Settings) -> Result<Self> {
        settings.validate()?;
        settings::apply_threads(settings.threads);
        let started = Instant::now();
        let model = Model::load(path, settings.device.open()?)?;
        Ok(Self {
            model,
            settings,
            path: path.to_owned(),
            cache: PrefixCache::new(PREFIX_CACHE_ENTRIES),
            load_time: started.elapsed(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Changes the token limit (threads and device are fixed once the model is loaded).
    pub fn set_max_new_tokens(&mut self, max_new_tokens: usize) -> Result<()> {
        let settings = Settings { max_new_tokens, ..self.settings.clone() };
        settings.validate()?;
        self.settings = settings;
        Ok(())
    }

    pub fn clear_prefix_cache(&mut self) {
        self.cache.clear();
    }

    pub fn tokenizer(&self) -> &tokens::ChatTokenizer {
        &self.model.tokenizer
    }

    pub fn prompt_tokens(&self, prompt: &ChatPrompt) -> Result<Vec<u32>> {
        prompt.tokens(&self.model.tokenizer)
    }

    pub fn complete(&mut self, prompt: &ChatPrompt, checkpoint: Checkpoint) -> Result<Completion> {
        generate::complete(&self.model, &mut self.cache, prompt, self.settings.max_new_tokens, checkpoint)
    }

    /// One SQL statement for the request, extracted from the model's reply (not yet checked).
    pub fn generate_sql(&mut self, request: &SqlRequest, checkpoint: Checkpoint) -> Result<GeneratedSql> {
        let completion = self.complete(&request.prompt()?, checkpoint)?;
        match extract::extract_sql(&completion.text) {
            Some(sql) => Ok(GeneratedSql { sql, completion }),
            None => Err(Error::NoSql { reply: completion.text }),
        }
    }

    /// One or two sentences that answer the question from the rows.
    pub fn narrate(&mut self, request: &NarrationRequest, checkpoint: Checkpoint) -> Result<Completion> {
        let mut completion = self.complete(&request.prompt()?, checkpoint)?;
        completion.text = completion.text.trim().to_owned();
        Ok(completion)
    }
}

/// A checkpoint that never interrupts (command-line tools and tests).
pub fn no_checkpoint() -> impl FnMut() -> Result<()> {
    || Ok(())
}
