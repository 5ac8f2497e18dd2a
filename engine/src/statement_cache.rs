//! SQL already written, by its exact request. Decoding is greedy, or sampled with a fixed seed,
//! so the same prompt, schema constraint, token limit and sampling give the same reply: a hit is
//! the reply the model would write, without writing it.
//!
//! The key is the whole request: the prompt (instructions to the model, the schema the caller may
//! read with its comments and named values, glossary, examples, the question as
//! [`crate::Question`] normalizes it, the caller's instructions), the constraint's schema, the
//! token limit and the sampling (none for the greedy reply, a seed for each other candidate). So a changed catalog, another role that sees another schema, or other
//! instructions miss by construction, and there is nothing to invalidate. Only requests with a
//! schema constraint are kept, i.e. SQL: narrations carry result rows, which are not kept.

use crate::generate::{Completion, Sampling};
use crate::prompt::ChatPrompt;
use crate::schema::Schema;
use std::collections::{HashMap, VecDeque};

/// Statements kept; the oldest goes first. A key is a prompt (a few KB), so this is a few MB.
const CAPACITY: usize = 256;

#[derive(Default)]
pub(crate) struct StatementCache {
    entries: HashMap<String, Completion>,
    /// Keys, oldest first.
    order: VecDeque<String>,
}

/// The request as one string (JSON of its parts), or `None` for a request that is not kept.
pub(crate) fn key(prompt: &ChatPrompt, schema: Option<&Schema>, max_new_tokens: usize, sampling: Option<Sampling>) -> Option<String> {
    let schema = schema?;
    serde_json::to_string(&(prompt, schema, max_new_tokens, sampling)).ok()
}

impl StatementCache {
    /// The completion stored under `key`, marked as coming from here: no time spent, and every
    /// prompt token as good as cached.
    pub(crate) fn get(&self, key: &str) -> Option<Completion> {
        let stored = self.entries.get(key)?;
        Some(Completion {
            from_cache: true,
            cached_tokens: stored.prompt_tokens,
            decode_steps: 0,
            drafted_tokens: 0,
            timings: Default::default(),
            ..stored.clone()
        })
    }

    pub(crate) fn put(&mut self, key: String, completion: &Completion) {
        if self.entries.insert(key.clone(), completion.clone()).is_none() {
            self.order.push_back(key);
            if self.order.len() > CAPACITY {
                let oldest = self.order.pop_front().expect("over capacity");
                self.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Finish, Timings};
    use crate::prompt::Role;
    use std::time::Duration;

    fn completion(text: &str) -> Completion {
        Completion {
            text: text.into(),
            prompt_tokens: 100,
            cached_tokens: 20,
            generated_tokens: 12,
            decode_steps: 11,
            drafted_tokens: 0,
            finish: Finish::Stop,
            timings: Timings { prefill: Duration::from_millis(500), decode: Duration::from_millis(900) },
            from_cache: false,
        }
    }

    fn prompt(question: &str) -> ChatPrompt {
        let mut prompt = ChatPrompt::default();
        prompt.push(Role::User, question);
        prompt
    }

    #[test]
    fn a_hit_is_the_same_reply_at_no_cost_and_any_part_of_the_request_misses() {
        let schema = Schema::from_ddl("CREATE TABLE t (\n  a int\n);").unwrap();
        let mut cache = StatementCache::default();
        let stored = key(&prompt("How many?"), Some(&schema), 256, None).unwrap();
        cache.put(stored.clone(), &completion("SELECT count(*) FROM t"));
        let hit = cache.get(&stored).unwrap();
        assert_eq!((hit.text.as_str(), hit.from_cache, hit.generated_tokens), ("SELECT count(*) FROM t", true, 12));
        assert_eq!((hit.cached_tokens, hit.decode_steps, hit.timings), (100, 0, Timings::default()));

        let other_schema = Schema::from_ddl("CREATE TABLE t (\n  a int,\n  b text\n);").unwrap();
        for other in [
            key(&prompt("How many rows?"), Some(&schema), 256, None),
            key(&prompt("How many?"), Some(&other_schema), 256, None),
            key(&prompt("How many?"), Some(&schema), 128, None),
            key(&prompt("How many?"), Some(&schema), 256, Some(Sampling::candidate(1))),
        ] {
            assert!(cache.get(&other.unwrap()).is_none());
        }
        assert_eq!(key(&prompt("How many?"), None, 256, None), None, "no constraint (a narration): not kept");
    }

    #[test]
    fn the_oldest_statement_goes_first() {
        let schema = Schema::from_ddl("CREATE TABLE t (\n  a int\n);").unwrap();
        let mut cache = StatementCache::default();
        let keys: Vec<String> = (0..=CAPACITY).map(|i| key(&prompt(&format!("q{i}")), Some(&schema), 256, None).unwrap()).collect();
        for k in &keys {
            cache.put(k.clone(), &completion("SELECT 1"));
        }
        assert!(cache.get(&keys[0]).is_none());
        assert!(cache.get(&keys[1]).is_some() && cache.get(&keys[CAPACITY]).is_some());
        assert_eq!(cache.entries.len(), CAPACITY);
    }
}
