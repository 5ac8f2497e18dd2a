//! Greedy decoding: feed the prompt (minus what the prefix cache already holds), then pick the
//! most likely token until a stop token or the token limit.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::prefix_cache::PrefixCache;
use crate::prompt::ChatPrompt;
use crate::qwen2::argmax;
use std::time::{Duration, Instant};

/// Prompt tokens are fed in chunks: attention scores for a chunk take chunk x context floats per
/// head, and the caller gets a chance to cancel between chunks.
const PREFILL_CHUNK: usize = 256;

/// Called between forward passes; an error (or a panic, as PostgreSQL's interrupt check raises)
/// stops generation. This is how statement_timeout and query cancel reach the decoding loop.
pub type Checkpoint<'a> = &'a mut dyn FnMut() -> Result<()>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its message.
    Stop,
    /// The token limit was reached first.
    Length,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Computing the prompt tokens not found in the prefix cache; ends with the first new token.
    pub prefill: Duration,
    /// Generating every token after the first.
    pub decode: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose attention state came from the prefix cache.
    pub cached_tokens: usize,
    pub generated_tokens: usize,
    /// Forward passes after the prompt (the first token comes from the prompt's pass).
    pub decode_steps: usize,
    pub finish: Finish,
    pub timings: Timings,
}

impl Completion {
    pub fn decode_tokens_per_second(&self) -> f64 {
        let secs = self.timings.decode.as_secs_f64();
        if secs > 0.0 { self.decode_steps as f64 / secs } else { 0.0 }
    }

    pub fn prefill_tokens_per_second(&self) -> f64 {
        let secs = self.timings.prefill.as_secs_f64();
        if secs > 0.0 { (self.prompt_tokens - self.cached_tokens) as f64 / secs } else { 0.0 }
    }
}

pub fn complete(
    model: &Model,
    cache: &mut PrefixCache,
    prompt: &ChatPrompt,
    max_new_tokens: usize,
    checkpoint: Checkpoint,
) -> Result<Completion> {
    let config = model.qwen2.config();
    let prompt_ids = prompt.tokens(&model.tokenizer)?;
    if prompt_ids.len() + max_new_tokens > config.context_length {
        return Err(Error::PromptTooLong {
            prompt_tokens: prompt_ids.len(),
            max_new_tokens,
            context: config.context_length,
        });
    }

    let started = Instant::now();
    let (mut kv, cached_tokens) = cache.lookup(&prompt_ids, config)?;
    let mut logits = None;
    for chunk in prompt_ids[cached_tokens..].chunks(PREFILL_CHUNK) {
        checkpoint()?;
        logits = Some(model.qwen2.forward(chunk, &mut kv)?);
    }
    let mut next = argmax(&logits.expect("at least one prompt token is always computed"))?;
    let prefill = started.elapsed();

    let decode_started = Instant::now();
    let prompt_tokens = prompt_ids.len();
    // `fed` always matches the positions in `kv`, so the cache can store it as is.
    let mut fed = prompt_ids;
    let mut generated = Vec::new();
    let finish = loop {
        if model.tokenizer.is_stop(next) {
            break Finish::Stop;
        }
        generated.push(next);
        if generated.len() == max_new_tokens {
            break Finish::Length;
        }
        checkpoint()?;
        let logits = model.qwen2.forward(&[next], &mut kv)?;
        fed.push(next);
        next = argmax(&logits)?;
    };
    let decode = decode_started.elapsed();

    let completion = Completion {
        text: model.tokenizer.decode(&generated)?,
        prompt_tokens,
        cached_tokens,
        generated_tokens: generated.len(),
        decode_steps: fed.len() - prompt_tokens,
        finish,
        timings: Timings { prefill, decode },
    };
    cache.store(fed, kv);
    Ok(completion)
}
