//! Greedy decoding: feed the prompt (minus what the prefix cache already holds), then pick the
//! most likely token until a stop token or the token limit.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::prefix_cache::PrefixCache;
use crate::prompt::ChatPrompt;
use crate::constraint::{SchemaConstraint, Verdict};
use crate::qwen2::argmax;
use candle_core::Tensor;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Prompt tokens are fed in chunks: attention scores for a chunk take chunk x context floats per
/// head, and the caller gets a chance to cancel between chunks.
const PREFILL_CHUNK: usize = 256;

/// Watches a generation: asked between forward passes whether to go on (this is how
/// statement_timeout and query cancel reach the decoding loop; PostgreSQL's interrupt check may
/// also raise, which unwinds out of the engine), and told the reply's text as it is written.
pub trait Observer {
    fn checkpoint(&mut self) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// The reply as written so far, after each token (it can also shrink: the schema constraint
    /// sometimes goes back a few tokens and writes them again).
    fn reply(&mut self, _text: &str) {}
    /// Attempt `n` (1-based) of a conversation starts.
    fn attempt(&mut self, _n: usize) {}
}

/// An observer that never interrupts and watches nothing (command-line tools and tests).
pub struct Quiet;

impl Observer for Quiet {}

fn checkpoint(observer: &mut dyn Observer) -> Result<()> {
    match observer.checkpoint() {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::Cancelled),
    }
}

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

/// Backtracks allowed per reply: each re-generates a few tokens; past this, the constraint only
/// rejects candidates (it never loops).
const MAX_BACKTRACKS: usize = 12;
/// Candidates ranked at once when the most likely token is refused; all of them if none of
/// these is allowed.
const RANKED_CANDIDATES: usize = 256;

/// What the decoder does next.
enum Step {
    /// Emit this token.
    Token(u32),
    /// Emit this token; the statement is complete, stop after it.
    Last(u32),
    /// Go back to generated token `to` (forbidding what was there when `ban` is set).
    Backtrack { to: usize, ban: bool },
}

/// The reply so far, as the constraint and the observer see it.
struct Reply {
    tokens: Vec<u32>,
    /// Its bytes, and where each token's bytes end.
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Reply {
    fn push(&mut self, model: &Model, token: u32) {
        self.tokens.push(token);
        self.text.extend_from_slice(model.tokenizer.spelling(token));
        self.ends.push(self.text.len());
    }

    fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
        self.ends.truncate(len);
        self.text.truncate(self.ends.last().copied().unwrap_or(0));
    }

    /// The text as far as it is whole characters (a token can end inside one).
    fn shown(&self) -> &str {
        match std::str::from_utf8(&self.text) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&self.text[..e.valid_up_to()]).expect("valid up to there"),
        }
    }

    /// Where the SQL starts: after the opening fence line (```sql) the model writes first, or at
    /// once if it writes SQL without one; `None` while the fence line is still being written.
    fn sql_start(text: &[u8]) -> Option<usize> {
        if text.starts_with(b"```") {
            text.iter().position(|&b| b == b'\n').map(|newline| newline + 1)
        } else if b"```".starts_with(text) {
            None
        } else {
            Some(0)
        }
    }

    /// The index of the token whose bytes hold byte `at`.
    fn token_at(&self, at: usize) -> usize {
        self.ends.partition_point(|&end| end <= at)
    }
}

/// The schema constraint and what it learnt while backtracking.
struct Constrained<'c> {
    constraint: &'c SchemaConstraint,
    /// Tokens refused at a position (by generated index) after backtracking from there.
    bans: HashMap<usize, Vec<u32>>,
    /// Aliases known to be bound to tables (found later in the statement, then backtracked).
    hypotheses: HashMap<String, usize>,
    backtracks: usize,
}

impl Constrained<'_> {
    /// The most likely token that keeps the statement possible.
    fn choose(&mut self, model: &Model, logits: &Tensor, reply: &Reply) -> Result<Step> {
        let scores = logits.to_vec1::<f32>()?;
        let position = reply.tokens.len();
        let banned = self.bans.get(&position).cloned().unwrap_or_default();
        let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0) as u32;
        let ranked = |count: usize| -> Vec<u32> {
            let mut order: Vec<u32> = (0..scores.len() as u32).collect();
            let by_score = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]);
            if count < order.len() {
                order.select_nth_unstable_by(count, by_score);
                order.truncate(count);
            }
            order.sort_unstable_by(by_score);
            order
        };
        let mut first_allowed = true;
        let mut candidate_text = reply.text.clone();
        for round in [1, RANKED_CANDIDATES, scores.len()] {
            let candidates = if round == 1 { vec![best] } else { ranked(round) };
            let skip = if round == 1 { 0 } else if round == RANKED_CANDIDATES { 1 } else { RANKED_CANDIDATES };
            for &token in candidates.iter().skip(skip) {
                if banned.contains(&token) {
                    continue;
                }
                // Stopping is judged as closing the code block there.
                let spelling = match model.tokenizer.is_stop(token) {
                    true => b"\n```".as_slice(),
                    false => model.tokenizer.spelling(token),
                };
                candidate_text.truncate(reply.text.len());
                candidate_text.extend_from_slice(spelling);
                let Some(sql_start) = Reply::sql_start(&candidate_text) else {
                    return Ok(Step::Token(token)); // still the ```sql line
                };
                // Byte offsets of the verdict are the SQL's; the reply's are `sql_start` further on.
                let at = |offset: usize| reply.token_at(sql_start + offset);
                match self.constraint.check(&candidate_text[sql_start..], &self.hypotheses) {
                    Verdict::Viable | Verdict::Complete { .. } if model.tokenizer.is_stop(token) => return Ok(Step::Token(token)),
                    Verdict::Viable => return Ok(Step::Token(token)),
                    Verdict::Complete { .. } => return Ok(Step::Last(token)),
                    Verdict::Conflict { alias, relation, use_start } if self.backtracks < MAX_BACKTRACKS => {
                        // The model bound `alias` to this table; an earlier `alias.column` does not
                        // fit it. Write that part again, knowing the binding.
                        self.hypotheses.insert(alias, relation);
                        self.backtracks += 1;
                        return Ok(Step::Backtrack { to: at(use_start), ban: false });
                    }
                    Verdict::Dead { word_start: Some(start) } if first_allowed && self.backtracks < MAX_BACKTRACKS && at(start) < position => {
                        // The word the model wanted ends here and names nothing: choose another
                        // word where it began.
                        self.backtracks += 1;
                        return Ok(Step::Backtrack { to: at(start), ban: true });
                    }
                    Verdict::Conflict { .. } | Verdict::Dead { .. } => first_allowed = false,
                }
            }
        }
        // Nothing keeps the statement possible (the schema cannot answer this): let the model write
        // what it wants; the checker and the repair turn deal with it.
        Ok(Step::Token(best))
    }
}

pub(crate) fn complete(
    model: &Model,
    cache: &mut PrefixCache,
    prompt: &ChatPrompt,
    max_new_tokens: usize,
    constraint: Option<&SchemaConstraint>,
    observer: &mut dyn Observer,
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
        checkpoint(observer)?;
        logits = Some(model.qwen2.forward(chunk, &mut kv)?);
    }
    let mut logits = logits.expect("at least one prompt token is always computed");
    let prefill = started.elapsed();

    let decode_started = Instant::now();
    let prompt_tokens = prompt_ids.len();
    // `fed` always matches the positions in `kv`, so the cache can store it as is.
    let mut fed = prompt_ids;
    let mut reply = Reply { tokens: Vec::new(), text: Vec::new(), ends: Vec::new() };
    let mut constrained = constraint.map(|constraint| Constrained { constraint, bans: HashMap::new(), hypotheses: HashMap::new(), backtracks: 0 });
    let mut decode_steps = 0;
    let finish = loop {
        let step = match constrained.as_mut() {
            Some(constrained) => constrained.choose(model, &logits, &reply)?,
            None => Step::Token(argmax(&logits)?),
        };
        let (token, last) = match step {
            Step::Token(token) => (token, false),
            Step::Last(token) => (token, true),
            Step::Backtrack { to, ban } => {
                if ban {
                    let banned = reply.tokens[to];
                    constrained.as_mut().expect("only the constraint backtracks").bans.entry(to).or_default().push(banned);
                }
                // Keep the attention state up to the token before `to`, then recompute that one
                // token's logits (the first reply token's come from the last prompt token).
                reply.truncate(to);
                fed.truncate(prompt_tokens + to);
                let last_fed = fed.pop().expect("the prompt is never empty");
                kv.truncate(fed.len())?;
                checkpoint(observer)?;
                logits = model.qwen2.forward(&[last_fed], &mut kv)?;
                fed.push(last_fed);
                decode_steps += 1;
                observer.reply(reply.shown());
                continue;
            }
        };
        if model.tokenizer.is_stop(token) {
            break Finish::Stop;
        }
        reply.push(model, token);
        observer.reply(reply.shown());
        if last {
            break Finish::Stop;
        }
        if reply.tokens.len() == max_new_tokens {
            break Finish::Length;
        }
        checkpoint(observer)?;
        logits = model.qwen2.forward(&[token], &mut kv)?;
        fed.push(token);
        decode_steps += 1;
    };
    let decode = decode_started.elapsed();

    let completion = Completion {
        text: model.tokenizer.decode(&reply.tokens)?,
        prompt_tokens,
        cached_tokens,
        generated_tokens: reply.tokens.len(),
        decode_steps,
        finish,
        timings: Timings { prefill, decode },
    };
    cache.store(fed, kv);
    Ok(completion)
}
