//! Decoding: feed the prompt (minus what the prefix cache already holds), then pick the most
//! likely token (or, for a sampled candidate, a token drawn from the model's distribution) until
//! a stop token or the token limit.
//!
//! Prompt-lookup drafts: a statement copies much of its prompt (table and column names, the
//! schema's join keys, values the question quotes), so where the last tokens written also occur
//! earlier in the prompt or the reply, the tokens that followed them there are a guess at what
//! comes next. Each step feeds its token with up to `draft_tokens` (a setting) such guesses in one
//! pass and gets the logits after each; the choice at each position is made exactly as without
//! guesses (the constraint, a candidate's draw), and a guess is kept while it is what was chosen.
//! (Saxena's prompt lookup decoding; llama.cpp's `lookup` example.) A pass over 5 rows costs
//! 1.7–2.3 times a pass over one on 2 CPU cores (engine-bench's pass cost), so there guesses do
//! not pay at the share engine-bench measured (9.3% of tokens kept; the setting is off by
//! default); where extra rows cost little, as on a GPU, every kept guess saves a whole pass. The
//! guessed rows go through the multi-row kernels, whose rounding differs slightly (see batch.rs),
//! so a near tie can tip the other way than without guesses.

use crate::error::{Error, Result};
use crate::lock;
use crate::model::Model;
use crate::prefix_cache::PrefixCache;
use crate::prompt::ChatPrompt;
use crate::constraint::SchemaConstraint;
use crate::constrained::{Constrained, Ranking, Reply, Step};
use crate::qwen2::{argmax, KvCache, Qwen2, Segment};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prompt tokens are fed in chunks: attention scores for a chunk take chunk x context floats per
/// head.
pub(crate) const PREFILL_CHUNK: usize = 256;

/// How many of the last tokens must occur earlier for what followed them to be guessed: the
/// longest match is tried first, down to [`DRAFT_MATCH_SHORTEST`].
const DRAFT_MATCH_LONGEST: usize = 3;
const DRAFT_MATCH_SHORTEST: usize = 2;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// The model ended its message.
    Stop,
    /// The token limit was reached first.
    Length,
    /// A drawn candidate reached the schema constraint's dead end (no token allowed, no
    /// backtrack left) and stopped there: what it would write on is refused anyway.
    DeadEnd,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Computing the prompt tokens not found in the prefix cache; ends with the first new token.
    pub prefill: Duration,
    /// Generating every token after the first.
    pub decode: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose attention state came from the prefix cache.
    pub cached_tokens: usize,
    pub generated_tokens: usize,
    /// Forward passes after the prompt (the first token comes from the prompt's pass).
    pub decode_steps: usize,
    /// Tokens of the reply that were guessed (prompt-lookup drafts) and so cost no pass of
    /// their own.
    #[serde(default)]
    pub drafted_tokens: usize,
    pub finish: Finish,
    pub timings: Timings,
    /// The statement cache gave it: nothing was computed (see statement_cache.rs).
    #[serde(default)]
    pub from_cache: bool,
}

impl Completion {
    /// Tokens written per second after the first: decoding passes, plus the guessed tokens
    /// they kept.
    pub fn decode_tokens_per_second(&self) -> f64 {
        let secs = self.timings.decode.as_secs_f64();
        if secs > 0.0 { (self.decode_steps + self.drafted_tokens) as f64 / secs } else { 0.0 }
    }

    pub fn prefill_tokens_per_second(&self) -> f64 {
        let secs = self.timings.prefill.as_secs_f64();
        if secs > 0.0 { (self.prompt_tokens - self.cached_tokens) as f64 / secs } else { 0.0 }
    }
}

/// How a candidate other than the greedy one draws its tokens: from the model's distribution
/// over its [`Sampling::TOP_K`] likeliest tokens at `temperature`, with a generator seeded by
/// `seed`, so the same prompt and seed give the same reply (the statement cache and the tests rely
/// on it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: f32,
    pub seed: u64,
}

impl Sampling {
    /// Qwen2.5-Coder's own generation defaults (its generation_config.json): temperature 0.7 and
    /// the 20 likeliest tokens. Diverse enough that candidates differ where the model is unsure,
    /// sharp enough that each stays a likely statement.
    pub const TEMPERATURE: f32 = 0.7;
    pub const TOP_K: usize = 20;

    /// The sampling of candidate `index` (1-based: candidate 0 is the greedy one).
    pub fn candidate(index: usize) -> Self {
        Self { temperature: Self::TEMPERATURE, seed: index as u64 }
    }

    /// The logits reordered so that ranking them ranks tokens as drawn. The top-k tokens get
    /// `logit / temperature + Gumbel noise`: the most likely of those scores is a draw from
    /// softmax(logits / temperature) over the top k (the Gumbel-max trick), and, what the schema
    /// constraint needs, the most likely of any subset is a draw restricted to that subset. So the
    /// constraint works on a drawn ranking exactly as on a greedy one. Every other token ranks
    /// after them, in the logits' order, for the constraint's wider rounds. Noise for the whole
    /// vocabulary (152k draws) took ~5 ms a token: longer than the batcher waits for a
    /// generation, so drawn candidates missed the passes they should have shared.
    fn perturb(&self, mut logits: Vec<f32>, rng: &mut impl Rng) -> Vec<f32> {
        let k = Self::TOP_K.min(logits.len());
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.select_nth_unstable_by(k - 1, |a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
        let threshold = logits[order[k - 1] as usize];
        // The rest keep their order, below every top-k score (Gumbel noise exceeds -20 with
        // probability 1 - e^-(e^20), i.e. always).
        let drawn: Vec<(usize, f32)> = order[..k]
            .iter()
            .map(|&token| {
                let uniform: f32 = rng.random_range(f32::MIN_POSITIVE..1.0);
                (token as usize, logits[token as usize] / self.temperature - (-uniform.ln()).ln())
            })
            .collect();
        let below = threshold / self.temperature - 1e4;
        for logit in logits.iter_mut() {
            *logit = below + (*logit - threshold);
        }
        for (token, score) in drawn {
            logits[token] = score;
        }
        logits
    }
}

/// Every token of the vocabulary, ranked by its logit.
struct Logits(Vec<f32>);

impl Ranking for Logits {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn best(&self, count: usize) -> Vec<u32> {
        let scores = &self.0;
        let by_score = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]);
        if count == 1 {
            return (0..scores.len() as u32).min_by(by_score).into_iter().collect();
        }
        let mut order: Vec<u32> = (0..scores.len() as u32).collect();
        if count < order.len() {
            order.select_nth_unstable_by(count, by_score);
            order.truncate(count);
        }
        order.sort_unstable_by(by_score);
        order
    }
}

/// Where a generation's forward passes run: on the model, one sequence at a time, or in a pass
/// shared with the other generations in flight ([`crate::batch`]).
pub(crate) trait Passes {
    /// Feeds `tokens` after the positions in `kv` and returns the logits after each of the last
    /// `outputs` (1 to all) of them, shape (outputs, vocab), or `None` when `stop` said so
    /// before the end (`kv` must then be dropped).
    fn forward(&self, tokens: &[u32], outputs: usize, kv: &mut KvCache, stop: &mut dyn FnMut() -> bool) -> Result<Option<Tensor>>;
}

impl Passes for Qwen2 {
    fn forward(&self, tokens: &[u32], outputs: usize, kv: &mut KvCache, stop: &mut dyn FnMut() -> bool) -> Result<Option<Tensor>> {
        Ok(self.forward_segments(&mut [Segment { tokens, cache: kv, outputs }], stop)?)
    }
}

/// `tokens` through `passes`, never stopped midway (a decoding step takes a few tens of ms): the
/// logits after each of them, shape (tokens, vocab).
fn feed(passes: &dyn Passes, tokens: &[u32], kv: &mut KvCache) -> Result<Tensor> {
    Ok(passes.forward(tokens, tokens.len(), kv, &mut || false)?.expect("never stopped"))
}

/// What followed the latest earlier occurrence of `fed`'s last tokens (the longest match first),
/// at most `limit` tokens; empty when they occur nowhere earlier.
fn draft(fed: &[u32], limit: usize) -> &[u32] {
    for length in (DRAFT_MATCH_SHORTEST..=DRAFT_MATCH_LONGEST).rev() {
        let Some(start) = fed.len().checked_sub(length) else { continue };
        let suffix = &fed[start..];
        if let Some(earlier) = (0..start).rev().find(|&at| &fed[at..at + length] == suffix) {
            let from = earlier + length;
            return &fed[from..(from + limit).min(fed.len())];
        }
    }
    &[]
}

/// A prompt computed: the attention state of its tokens and the logits after the last one, from
/// which any number of replies can be decoded (a copy of the state is a few reference counts).
#[derive(Clone)]
pub(crate) struct Prefilled {
    prompt_ids: Vec<u32>,
    kv: KvCache,
    logits: Tensor,
    cached_tokens: usize,
    prefill: Duration,
}

/// Computes `prompt` with the model's forward passes run by `passes`, its shared prefix taken
/// from `cache` (locked only to look up).
pub(crate) fn prefill(model: &Model, passes: &dyn Passes, cache: &Mutex<PrefixCache>, prompt: &ChatPrompt, max_new_tokens: usize, observer: &mut dyn Observer) -> Result<Prefilled> {
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
    let (mut kv, cached_tokens) = lock(cache).lookup(&prompt_ids, config)?;
    let mut logits = None;
    for chunk in prompt_ids[cached_tokens..].chunks(PREFILL_CHUNK) {
        // A chunk takes up to ~2 s here: the caller may cancel between its layers too.
        let computed = passes.forward(chunk, 1, &mut kv, &mut || observer.checkpoint().is_break())?;
        logits = Some(computed.ok_or(Error::Cancelled)?.squeeze(0)?);
    }
    let logits = logits.expect("at least one prompt token is always computed");
    Ok(Prefilled { prompt_ids, kv, logits, cached_tokens, prefill: started.elapsed() })
}

/// Writes the reply to a computed prompt (greedily, or drawn as `sampling` says), with the
/// model's forward passes run by `passes`, each step with up to `draft_tokens` guesses; the whole
/// sequence goes into `cache` at the end (the lock is held only then, so generations in flight
/// share it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode(
    model: &Model,
    passes: &dyn Passes,
    cache: &Mutex<PrefixCache>,
    prefilled: Prefilled,
    max_new_tokens: usize,
    draft_tokens: usize,
    constraint: Option<&SchemaConstraint>,
    sampling: Option<Sampling>,
    observer: &mut dyn Observer,
) -> Result<Completion> {
    let Prefilled { prompt_ids, mut kv, mut logits, cached_tokens, prefill } = prefilled;
    let decode_started = Instant::now();
    let prompt_tokens = prompt_ids.len();
    // `fed` is the tokens chosen so far; `kv` holds them and then the guesses in `guessed` (each
    // with the logits after it), which are kept while they are what is chosen.
    let mut fed = prompt_ids;
    let mut guessed: VecDeque<(u32, Tensor)> = VecDeque::new();
    let mut reply = Reply::default();
    let mut constrained = constraint.map(|constraint| match sampling {
        Some(_) => Constrained::new(constraint).stopping_at_dead_end(),
        None => Constrained::new(constraint),
    });
    let (mut decode_steps, mut drafted_tokens) = (0, 0);
    let mut rng = sampling.map(|sampling| (sampling, StdRng::seed_from_u64(sampling.seed)));
    let finish = loop {
        let ranking = match rng.as_mut() {
            Some((sampling, rng)) => Some(Logits(sampling.perturb(logits.to_vec1::<f32>()?, rng))),
            None => constrained.is_some().then(|| logits.to_vec1::<f32>()).transpose()?.map(Logits),
        };
        let step = match (constrained.as_mut(), ranking) {
            (Some(constrained), Some(ranking)) => constrained.choose(&model.tokenizer, &ranking, &reply),
            (None, Some(ranking)) => Step::Token(ranking.best(1)[0]),
            (_, None) => Step::Token(argmax(&logits)?),
        };
        let (token, last) = match step {
            Step::Token(token) => (token, false),
            Step::Last(token) => (token, true),
            Step::GiveUp => break Finish::DeadEnd,
            Step::Backtrack { to, ban } => {
                constrained.as_mut().expect("only the constraint backtracks").backtrack(&mut reply, to, ban);
                // Keep the attention state up to the token before `to`, then recompute that one
                // token's logits (the first reply token's come from the last prompt token).
                guessed.clear();
                fed.truncate(prompt_tokens + to);
                let last_fed = fed.pop().expect("the prompt is never empty");
                kv.truncate(fed.len())?;
                checkpoint(observer)?;
                logits = feed(passes, &[last_fed], &mut kv)?.squeeze(0)?;
                fed.push(last_fed);
                decode_steps += 1;
                observer.reply(reply.shown());
                continue;
            }
        };
        if model.tokenizer.is_stop(token) {
            break Finish::Stop;
        }
        reply.push(&model.tokenizer, token);
        observer.reply(reply.shown());
        if last {
            break Finish::Stop;
        }
        if reply.tokens.len() == max_new_tokens {
            break Finish::Length;
        }
        checkpoint(observer)?;
        match guessed.pop_front() {
            Some((guess, after)) if guess == token => {
                fed.push(token);
                logits = after;
                drafted_tokens += 1;
                continue;
            }
            _ => guessed.clear(),
        }
        kv.truncate(fed.len())?;
        fed.push(token);
        // Guesses past the token limit could never be kept.
        let guesses = draft(&fed, draft_tokens.min(max_new_tokens - reply.tokens.len()));
        let fed_now: Vec<u32> = std::iter::once(token).chain(guesses.iter().copied()).collect();
        let rows = feed(passes, &fed_now, &mut kv)?;
        logits = rows.get(0)?;
        for (row, &guess) in guesses.iter().enumerate() {
            guessed.push_back((guess, rows.get(row + 1)?));
        }
        decode_steps += 1;
    };
    // The cache stores what was chosen, not guesses never kept.
    kv.truncate(fed.len())?;
    let decode = decode_started.elapsed();

    let completion = Completion {
        text: model.tokenizer.decode(&reply.tokens)?,
        prompt_tokens,
        cached_tokens,
        generated_tokens: reply.tokens.len(),
        decode_steps,
        drafted_tokens,
        finish,
        timings: Timings { prefill, decode },
        from_cache: false,
    };
    lock(cache).store(fed, kv);
    Ok(completion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_is_what_followed_the_latest_earlier_occurrence_of_the_last_tokens() {
        // 5 6 occurs twice before the end: the later one, followed by 3 5 6, is the guess.
        let fed = [1, 5, 6, 7, 8, 9, 2, 5, 6, 3, 5, 6];
        assert_eq!(draft(&fed, 4), &[3, 5, 6], "the latest occurrence, up to the end");
        assert_eq!(draft(&fed, 2), &[3, 5], "at most the limit");
        assert_eq!(draft(&[4, 1, 2, 9, 9, 1, 2], 4), &[9, 9, 1, 2]);
        // The longest match wins over a later shorter one: 1 2 3 occurs at the start only.
        assert_eq!(draft(&[1, 2, 3, 4, 0, 2, 3, 5, 1, 2, 3], 1), &[4]);
        assert!(draft(&[1, 2, 3, 4], 4).is_empty(), "3 4 occurs nowhere earlier");
        assert!(draft(&[7, 1, 7], 4).is_empty(), "one token alone is too weak a match");
        assert!(draft(&[], 4).is_empty() && draft(&[1], 4).is_empty());
        assert!(draft(&[5, 6, 5, 6], 0).is_empty());
    }

    /// Logits 0, 1, ..., 99: token 99 is the likeliest.
    fn ascending() -> Vec<f32> {
        (0..100).map(|i| i as f32).collect()
    }

    #[test]
    fn a_draw_ranks_the_top_k_first_shuffled_by_their_odds_and_the_rest_after_in_order() {
        let top: Vec<u32> = (100 - Sampling::TOP_K as u32..100).collect();
        let mut firsts = std::collections::BTreeMap::new();
        for seed in 0..2000 {
            let sampling = Sampling { seed, ..Sampling::candidate(1) };
            let scores = sampling.perturb(ascending(), &mut StdRng::seed_from_u64(seed));
            let ranked = Logits(scores).best(100);
            let (drawn, rest) = ranked.split_at(Sampling::TOP_K);
            let mut drawn = drawn.to_vec();
            drawn.sort_unstable();
            assert_eq!(drawn, top, "the top k come first");
            assert!(rest.windows(2).all(|pair| pair[0] == pair[1] + 1), "then the rest in the logits' order: {rest:?}");
            *firsts.entry(ranked[0]).or_insert(0) += 1;
        }
        // At temperature 0.7, token 99 is e^(1/0.7) = 4.2 times as likely as 98, 17 times 97.
        let (first, second, third) = (firsts[&99], firsts[&98], firsts.get(&97).copied().unwrap_or(0));
        assert!(first > 2 * second && second > 2 * third && third > 0, "draws follow the odds: {firsts:?}");
    }
}
