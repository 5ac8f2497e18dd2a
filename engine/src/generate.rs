//! Decoding: feed the prompt (minus what the prefix cache already holds), then pick the most
//! likely token (or, for a sampled candidate, a token drawn from the model's distribution) until
//! a stop token or the token limit.

use crate::error::{Error, Result};
use crate::lock;
use crate::model::Model;
use crate::prefix_cache::PrefixCache;
use crate::prompt::ChatPrompt;
use crate::constraint::SchemaConstraint;
use crate::constrained::{Constrained, Ranking, Reply, Step};
use crate::qwen2::{argmax, KvCache, Qwen2};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prompt tokens are fed in chunks: attention scores for a chunk take chunk x context floats per
/// head.
pub(crate) const PREFILL_CHUNK: usize = 256;

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
    pub finish: Finish,
    pub timings: Timings,
    /// The statement cache gave it: nothing was computed (see statement_cache.rs).
    #[serde(default)]
    pub from_cache: bool,
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
    /// Feeds `tokens` after the positions in `kv` and returns the logits after the last one, or
    /// `None` when `stop` said so before the end (`kv` must then be dropped).
    fn forward(&self, tokens: &[u32], kv: &mut KvCache, stop: &mut dyn FnMut() -> bool) -> Result<Option<Tensor>>;
}

impl Passes for Qwen2 {
    fn forward(&self, tokens: &[u32], kv: &mut KvCache, stop: &mut dyn FnMut() -> bool) -> Result<Option<Tensor>> {
        Ok(self.forward_unless(tokens, kv, stop)?)
    }
}

/// One token through `passes`, never stopped midway (a decoding step takes a few tens of ms).
fn feed_one(passes: &dyn Passes, token: u32, kv: &mut KvCache) -> Result<Tensor> {
    Ok(passes.forward(&[token], kv, &mut || false)?.expect("never stopped"))
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
        let computed = passes.forward(chunk, &mut kv, &mut || observer.checkpoint().is_break())?;
        logits = Some(computed.ok_or(Error::Cancelled)?);
    }
    let logits = logits.expect("at least one prompt token is always computed");
    Ok(Prefilled { prompt_ids, kv, logits, cached_tokens, prefill: started.elapsed() })
}

/// Writes the reply to a computed prompt (greedily, or drawn as `sampling` says), with the
/// model's forward passes run by `passes`; the whole sequence goes into `cache` at the end (the
/// lock is held only then, so generations in flight share it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode(
    model: &Model,
    passes: &dyn Passes,
    cache: &Mutex<PrefixCache>,
    prefilled: Prefilled,
    max_new_tokens: usize,
    constraint: Option<&SchemaConstraint>,
    sampling: Option<Sampling>,
    observer: &mut dyn Observer,
) -> Result<Completion> {
    let Prefilled { prompt_ids, mut kv, mut logits, cached_tokens, prefill } = prefilled;
    let decode_started = Instant::now();
    let prompt_tokens = prompt_ids.len();
    // `fed` always matches the positions in `kv`, so the cache can store it as is.
    let mut fed = prompt_ids;
    let mut reply = Reply::default();
    let mut constrained = constraint.map(Constrained::new);
    let mut decode_steps = 0;
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
            Step::Backtrack { to, ban } => {
                constrained.as_mut().expect("only the constraint backtracks").backtrack(&mut reply, to, ban);
                // Keep the attention state up to the token before `to`, then recompute that one
                // token's logits (the first reply token's come from the last prompt token).
                fed.truncate(prompt_tokens + to);
                let last_fed = fed.pop().expect("the prompt is never empty");
                kv.truncate(fed.len())?;
                checkpoint(observer)?;
                logits = feed_one(passes, last_fed, &mut kv)?;
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
        logits = feed_one(passes, token, &mut kv)?;
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
        from_cache: false,
    };
    lock(cache).store(fed, kv);
    Ok(completion)
}

#[cfg(test)]
mod tests {
    use super::*;

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
