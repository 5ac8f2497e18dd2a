//! Reuse of attention state across prompts that begin alike.
//!
//! Every question on one database starts with the same system prompt and schema, which is most of
//! the prompt. Keeping the KV cache of recent sequences lets the next prompt compute only the
//! tokens after the longest shared prefix. A few entries are kept because callers alternate
//! between prompt families (SQL generation, then narration of its result).

use crate::qwen2::{Config, KvCache};

/// Sequences sharing fewer tokens than this are different families (only the ChatML header and a
/// word or two in common), so a new one gets its own entry instead of replacing the other.
const SAME_FAMILY_TOKENS: usize = 32;

struct Entry {
    tokens: Vec<u32>,
    kv: KvCache,
    last_used: u64,
}

pub(crate) struct PrefixCache {
    entries: Vec<Entry>,
    capacity: usize,
    clock: u64,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: Vec::new(), capacity: capacity.max(1), clock: 0 }
    }

    /// A KV cache holding the longest cached prefix of `tokens`, and its length. At least one
    /// token is always left to compute, since the model must produce logits for the last one.
    pub(crate) fn lookup(&mut self, tokens: &[u32], config: &Config) -> candle_core::Result<(KvCache, usize)> {
        self.clock += 1;
        let limit = tokens.len().saturating_sub(1);
        let best = self
            .entries
            .iter_mut()
            .map(|e| (common_prefix(&e.tokens, tokens).min(limit), e))
            .max_by_key(|(shared, _)| *shared);
        match best {
            Some((shared, entry)) if shared > 0 => {
                entry.last_used = self.clock;
                let mut kv = entry.kv.clone();
                kv.truncate(shared)?;
                Ok((kv, shared))
            }
            _ => Ok((KvCache::new(config), 0)),
        }
    }

    /// Remembers `kv`, which holds exactly `tokens`.
    pub(crate) fn store(&mut self, tokens: Vec<u32>, kv: KvCache) {
        debug_assert_eq!(tokens.len(), kv.len());
        self.clock += 1;
        let entry = Entry { tokens, kv, last_used: self.clock };
        let same_family = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, &entry.tokens)))
            .filter(|(_, shared)| *shared >= SAME_FAMILY_TOKENS)
            .max_by_key(|(_, shared)| *shared);
        if let Some((i, _)) = same_family {
            self.entries[i] = entry;
        } else {
            if self.entries.len() == self.capacity {
                let oldest = (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used).unwrap_or(0);
                self.entries.swap_remove(oldest);
            }
            self.entries.push(entry);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Token positions held, over all entries (shared tensors counted once per entry).
    #[cfg(test)]
    pub(crate) fn cached_tokens(&self) -> usize {
        self.entries.iter().map(|e| e.tokens.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            block_count: 2,
            head_count: 2,
            head_count_kv: 1,
            embedding_length: 8,
            context_length: 64,
            rms_norm_eps: 1e-6,
            rope_freq_base: 10_000.0,
        }
    }

    /// A KvCache claiming `len` positions (no tensors: these tests look at bookkeeping only).
    fn kv(len: usize) -> KvCache {
        let mut kv = KvCache::new(&config());
        kv.set_len_for_tests(len);
        kv
    }

    fn seq(family: u32, len: usize) -> Vec<u32> {
        (0..len as u32).map(|i| if i < 40 { family * 1000 + i } else { i }).collect()
    }

    #[test]
    fn reuses_the_longest_shared_prefix_but_leaves_one_token() {
        let mut cache = PrefixCache::new(4);
        cache.store(seq(1, 50), kv(50));
        let mut other = seq(1, 45);
        other.push(7);
        assert_eq!(cache.lookup(&other, &config()).unwrap().1, 45);
        assert_eq!(cache.lookup(&seq(1, 50), &config()).unwrap().1, 49);
        assert_eq!(cache.lookup(&seq(2, 50), &config()).unwrap().1, 0);
    }

    #[test]
    fn same_family_replaces_and_other_families_coexist_up_to_capacity() {
        let mut cache = PrefixCache::new(2);
        cache.store(seq(1, 50), kv(50));
        cache.store(seq(1, 60), kv(60));
        assert_eq!(cache.cached_tokens(), 60);
        cache.store(seq(2, 41), kv(41));
        assert_eq!(cache.cached_tokens(), 101);
        cache.lookup(&seq(1, 50), &config()).unwrap(); // family 1 is now the most recent
        cache.store(seq(3, 41), kv(41)); // evicts family 2
        assert_eq!(cache.lookup(&seq(2, 41), &config()).unwrap().1, 0);
        assert_eq!(cache.lookup(&seq(1, 50), &config()).unwrap().1, 49);
    }
}
