//! The decoder's side of the schema constraint: of the tokens a model ranks next, take the most
//! likely one that keeps the statement possible, and go back a few tokens when a word turns out to
//! name nothing. Shared by local decoding (generate.rs, every token of the vocabulary ranked by
//! its logits) and remote decoding (remote.rs, the top candidates a server reports per token).

use crate::constraint::{is_word_byte, SchemaConstraint, Verdict};
use std::collections::HashMap;

/// Backtracks allowed per reply: each re-generates a few tokens; past this, the constraint only
/// rejects candidates (it never loops), until none is allowed (see `Constrained::dead_end`).
const MAX_BACKTRACKS: usize = 12;
/// A model that writes the same tokens this many times in a row loops (to the token limit).
const LOOP_COPIES: usize = 3;
/// The fewest tokens a loop's copy has: shorter runs are SQL (`)))`, `, ,`), not a loop.
const LOOP_MIN_TOKENS: usize = 4;
/// Candidates ranked at once when the most likely token is refused; all of them if none of
/// these is allowed.
const RANKED_CANDIDATES: usize = 256;

/// What token ids spell.
pub(crate) trait Vocabulary {
    /// The bytes token `id` stands for (nothing for control tokens).
    fn spelling(&self, id: u32) -> &[u8];
    /// Whether `id` ends the reply.
    fn is_stop(&self, id: u32) -> bool;
}

/// The candidates for the next token, best first.
pub(crate) trait Ranking {
    /// How many there are.
    fn len(&self) -> usize;
    /// The `count` best (`count` ≤ [`Ranking::len`]), best first.
    fn best(&self, count: usize) -> Vec<u32>;
}

/// Candidates already ranked, best first (what a server reports per token).
pub(crate) struct Ranked(pub(crate) Vec<u32>);

impl Ranking for Ranked {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn best(&self, count: usize) -> Vec<u32> {
        self.0[..count].to_vec()
    }
}

/// What the decoder does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Emit this token.
    Token(u32),
    /// Emit this token; the statement is complete, stop after it.
    Last(u32),
    /// Go back to generated token `to` (forbidding what was there when `ban` is set).
    Backtrack { to: usize, ban: bool },
    /// Stop: no token keeps the statement possible, no backtrack is left, and the decoder was
    /// told to stop there ([`Constrained::stopping_at_dead_end`]).
    GiveUp,
}

/// The reply so far, as the constraint and the observer see it.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub(crate) tokens: Vec<u32>,
    /// Its bytes, and where each token's bytes end.
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Reply {
    pub(crate) fn push(&mut self, vocabulary: &dyn Vocabulary, token: u32) {
        self.tokens.push(token);
        self.text.extend_from_slice(vocabulary.spelling(token));
        self.ends.push(self.text.len());
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
        self.ends.truncate(len);
        self.text.truncate(self.ends.last().copied().unwrap_or(0));
    }

    /// Drops the last tokens while the text ends inside a character (a reply continued elsewhere
    /// is sent as text).
    pub(crate) fn drop_partial_character(&mut self) {
        while let Err(e) = std::str::from_utf8(&self.text) {
            if e.error_len().is_some() || self.tokens.is_empty() {
                break;
            }
            self.truncate(self.tokens.len() - 1);
        }
    }

    /// The text as far as it is whole characters (a token can end inside one).
    pub(crate) fn shown(&self) -> &str {
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

    /// The generated token where the SQL's last name begins (a qualified one, `x.col`, at its
    /// qualifier), or the last token when the SQL does not end in a name; `None` before the SQL.
    fn last_name_token(&self) -> Option<usize> {
        let sql_start = Self::sql_start(&self.text)?;
        let sql = &self.text[sql_start..];
        let word_start = |end: usize| end - sql[..end].iter().rev().take_while(|&&b| is_word_byte(b)).count();
        let mut start = word_start(sql.len());
        while start > 0 && sql[start - 1] == b'.' {
            start = word_start(start - 1);
        }
        if start == sql.len() {
            start = start.checked_sub(1)?;
        }
        Some(self.token_at(sql_start + start))
    }

    /// The index of the token whose bytes hold byte `at`.
    fn token_at(&self, at: usize) -> usize {
        self.ends.partition_point(|&end| end <= at)
    }
}

/// The schema constraint and what it learnt while backtracking.
pub(crate) struct Constrained<'c> {
    constraint: &'c SchemaConstraint,
    /// Tokens refused at a position (by generated index) after backtracking from there.
    bans: HashMap<usize, Vec<u32>>,
    /// Aliases known to be bound to tables (found later in the statement, then backtracked).
    hypotheses: HashMap<String, usize>,
    backtracks: usize,
    /// No token kept the statement possible and no backtrack was left: no continuation can be
    /// possible either, so the rest is the model's own, unchecked (a check of all 151,936
    /// candidates per token took seconds, for nothing).
    dead_end: bool,
    /// Give up at the dead end instead of letting the model write on.
    stops_at_dead_end: bool,
}

impl<'c> Constrained<'c> {
    pub(crate) fn new(constraint: &'c SchemaConstraint) -> Self {
        Self { constraint, bans: HashMap::new(), hypotheses: HashMap::new(), backtracks: 0, dead_end: false, stops_at_dead_end: false }
    }

    /// Gives up at the dead end: for a drawn candidate, whose statement is then refused anyway
    /// (conversation.rs does not accept what the constraint refuses) and whose failure is never
    /// shown to the model; the greedy one writes on, for PostgreSQL's error in the repair turn.
    pub(crate) fn stopping_at_dead_end(self) -> Self {
        Self { stops_at_dead_end: true, ..self }
    }

    /// Goes back to generated token `to`, forbidding the token there when `ban` is set.
    pub(crate) fn backtrack(&mut self, reply: &mut Reply, to: usize, ban: bool) {
        if ban {
            self.bans.entry(to).or_default().push(reply.tokens[to]);
        }
        reply.truncate(to);
    }

    /// The most likely token that keeps the statement possible.
    pub(crate) fn choose(&mut self, vocabulary: &dyn Vocabulary, ranking: &dyn Ranking, reply: &Reply) -> Step {
        let position = reply.tokens.len();
        // A greedy model that repeats itself verbatim (`ratio_of_x_ratio_of_x_ratio_of_x`, one
        // condition in every parenthesis) goes on to the token limit: write the second copy
        // again, with its first token banned.
        if self.backtracks < MAX_BACKTRACKS {
            if let Some(to) = loop_start(&reply.tokens) {
                self.backtracks += 1;
                return Step::Backtrack { to, ban: true };
            }
        }
        // Stopping is judged as closing the code block there.
        let spelled = |token: u32| match vocabulary.is_stop(token) {
            true => b"\n```".as_slice(),
            false => vocabulary.spelling(token),
        };
        // A token banned here bans its spelling in any case: SQL names are case-insensitive, and
        // a model refused `oid` writes `OID`, then `Oid`, until the backtracks run out.
        let banned: Vec<&[u8]> = self.bans.get(&position).into_iter().flatten().map(|&t| spelled(t)).collect();
        let Some(&best) = ranking.best(1).first() else { return Step::Token(0) };
        if self.dead_end {
            return Step::Token(best);
        }
        let mut first_allowed = true;
        let mut candidate_text = reply.text.clone();
        let mut tried = 0;
        for round in [1, RANKED_CANDIDATES, ranking.len()] {
            let round = round.min(ranking.len());
            if round <= tried {
                continue;
            }
            let candidates = if round == 1 { vec![best] } else { ranking.best(round) };
            for &token in candidates.iter().skip(tried) {
                let spelling = spelled(token);
                if banned.iter().any(|b| b.eq_ignore_ascii_case(spelling)) {
                    continue;
                }
                candidate_text.truncate(reply.text.len());
                candidate_text.extend_from_slice(spelling);
                let Some(sql_start) = Reply::sql_start(&candidate_text) else {
                    return Step::Token(token); // still the ```sql line
                };
                // Byte offsets of the verdict are the SQL's; the reply's are `sql_start` further on.
                let at = |offset: usize| reply.token_at(sql_start + offset);
                match self.constraint.check(&candidate_text[sql_start..], &self.hypotheses) {
                    Verdict::Viable | Verdict::Complete { .. } if vocabulary.is_stop(token) => return Step::Token(token),
                    Verdict::Viable => return Step::Token(token),
                    Verdict::Complete { .. } => return Step::Last(token),
                    Verdict::Conflict { alias, relation, use_start } if self.backtracks < MAX_BACKTRACKS => {
                        // The model bound `alias` to this table; an earlier `alias.column` does not
                        // fit it. Write that part again, knowing the binding.
                        self.hypotheses.insert(alias, relation);
                        self.backtracks += 1;
                        return Step::Backtrack { to: at(use_start), ban: false };
                    }
                    Verdict::Dead { word_start: Some(start) } if first_allowed && self.backtracks < MAX_BACKTRACKS && at(start) < position => {
                        // The word the model wanted ends here and names nothing: choose another
                        // word where it began.
                        self.backtracks += 1;
                        return Step::Backtrack { to: at(start), ban: true };
                    }
                    Verdict::Conflict { .. } | Verdict::Dead { .. } => first_allowed = false,
                }
            }
            tried = round;
        }
        // None of the candidates keeps the statement possible. A server reports only its best 20:
        // the name being written leads nowhere among them, so write another one where it began.
        if self.backtracks < MAX_BACKTRACKS {
            if let Some(to) = reply.last_name_token() {
                self.backtracks += 1;
                return Step::Backtrack { to, ban: true };
            }
        }
        // Out of backtracks (the schema cannot answer this): let the model write what it wants;
        // the checker and the repair turn deal with it.
        self.dead_end = self.backtracks >= MAX_BACKTRACKS;
        match self.dead_end && self.stops_at_dead_end {
            true => Step::GiveUp,
            false => Step::Token(best),
        }
    }
}

/// When `tokens` end with [`LOOP_COPIES`] copies of the same [`LOOP_MIN_TOKENS`] or more
/// tokens: where the second copy begins.
fn loop_start(tokens: &[u32]) -> Option<usize> {
    let n = tokens.len();
    (LOOP_MIN_TOKENS..=n / LOOP_COPIES).find_map(|period| {
        let last = &tokens[n - period..];
        let repeated = (2..=LOOP_COPIES).all(|copy| &tokens[n - copy * period..n - (copy - 1) * period] == last);
        repeated.then(|| n - (LOOP_COPIES - 1) * period)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    /// A vocabulary of whole words, numbered as first seen; `<stop>` ends the reply.
    #[derive(Default)]
    struct Words(Vec<&'static str>);

    impl Words {
        fn id(&mut self, word: &'static str) -> u32 {
            match self.0.iter().position(|w| *w == word) {
                Some(id) => id as u32,
                None => {
                    self.0.push(word);
                    self.0.len() as u32 - 1
                }
            }
        }
    }

    impl Vocabulary for Words {
        fn spelling(&self, id: u32) -> &[u8] {
            if self.is_stop(id) { b"" } else { self.0[id as usize].as_bytes() }
        }

        fn is_stop(&self, id: u32) -> bool {
            self.0[id as usize] == "<stop>"
        }
    }

    /// Decodes under the sales schema's constraint with a stub model: `prefers` ranks the next
    /// words given the text so far.
    fn decode(prefers: impl Fn(&str) -> Vec<&'static str>) -> String {
        decode_counting(prefers).0
    }

    /// [`decode`], and how many times the decoder went back.
    fn decode_counting(prefers: impl Fn(&str) -> Vec<&'static str>) -> (String, usize) {
        let constraint = SchemaConstraint::new(&Schema::from_ddl(include_str!("../examples/sales.sql")).unwrap());
        let mut decoder = Constrained::new(&constraint);
        let (mut words, mut reply) = (Words::default(), Reply::default());
        for _ in 0..64 {
            let ranked = Ranked(prefers(reply.shown()).into_iter().map(|w| words.id(w)).collect());
            match decoder.choose(&words, &ranked, &reply) {
                Step::Token(token) if words.is_stop(token) => break,
                Step::Token(token) => reply.push(&words, token),
                Step::Last(token) => {
                    reply.push(&words, token);
                    break;
                }
                Step::Backtrack { to, ban } => decoder.backtrack(&mut reply, to, ban),
                Step::GiveUp => unreachable!("this decoder writes on past a dead end"),
            }
        }
        (reply.shown().to_owned(), decoder.backtracks)
    }

    #[test]
    fn a_model_that_prefers_an_invented_column_is_steered_to_a_real_one() {
        let sql = decode(|text| match text {
            "" => vec!["SELECT count(*) FROM products WHERE"],
            t if t.ends_with("WHERE") => vec![" colour", " category"],
            t if t.ends_with("colour") || t.ends_with("category") => vec![" = 'toys'"],
            _ => vec!["<stop>"],
        });
        assert_eq!(sql, "SELECT count(*) FROM products WHERE category = 'toys'");
    }

    #[test]
    fn when_no_candidate_is_allowed_the_name_being_written_is_written_again() {
        // A server's few candidates after `p.` name no column of products: the decoder goes back
        // to the qualifier `p`, banned there, and the model's next choice is taken.
        let sql = decode(|text| match text {
            "" => vec!["SELECT"],
            "SELECT" => vec![" name"],
            "SELECT name" => vec![" FROM"],
            "SELECT name FROM" => vec![" products"],
            "SELECT name FROM products" => vec![" p"],
            "SELECT name FROM products p" => vec![" WHERE"],
            "SELECT name FROM products p WHERE" => vec![" p", " category"],
            t if t.ends_with(" p") => vec!["."],
            t if t.ends_with("p.") => vec!["colour", "color"],
            t if t.ends_with("category") => vec![" = 'toys'"],
            _ => vec!["<stop>"],
        });
        assert_eq!(sql, "SELECT name FROM products p WHERE category = 'toys'");
    }

    #[test]
    fn a_refused_key_join_is_written_again_and_its_name_in_other_case_is_banned_too() {
        // The model joins two ids no foreign key links, then tries the same name upper-cased:
        // both are refused where the name begins, and its next choice, the key, is taken.
        let (sql, backtracks) = decode_counting(|text| match text {
            "" => vec!["SELECT 1 FROM orders o JOIN customers c ON c.id = o."],
            t if t.ends_with("o.") => vec!["id", "ID", "customer_id"],
            t if t.ends_with("id") || t.ends_with("ID") => vec!["\n```"],
            _ => vec!["<stop>"],
        });
        assert_eq!(sql, "SELECT 1 FROM orders o JOIN customers c ON c.id = o.customer_id\n```");
        assert_eq!(backtracks, 1, "`ID` is banned with `id`");
    }

    #[test]
    fn a_model_that_loops_is_made_to_write_something_else_after_one_copy() {
        let (sql, backtracks) = decode_counting(|text| match text {
            "" => vec!["SELECT count(*) AS total"],
            t if t.ends_with("total") => vec!["_of", " FROM products"],
            t if t.ends_with("_of") => vec!["_all"],
            t if t.ends_with("_all") => vec!["_the"],
            t if t.ends_with("_the") => vec!["_total"],
            t if t.ends_with("products") => vec!["\n```"],
            _ => vec!["<stop>"],
        });
        assert_eq!(sql, "SELECT count(*) AS total_of_all_the_total FROM products\n```");
        assert_eq!(backtracks, 1);
        assert_eq!(loop_start(&[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]), Some(4));
        assert_eq!(loop_start(&[9, 1, 2, 3, 4, 1, 2, 3, 4]), None, "two copies are no loop");
        assert_eq!(loop_start(&[7, 7, 7, 7, 7, 7]), None, "nor runs shorter than the fewest tokens");
    }

    /// Candidates already ranked, counting how often all of them are asked for.
    struct Counted<'r>(Ranked, &'r std::cell::Cell<usize>);

    impl Ranking for Counted<'_> {
        fn len(&self) -> usize {
            self.0.len()
        }

        fn best(&self, count: usize) -> Vec<u32> {
            if count == self.0.len() && count > 1 {
                self.1.set(self.1.get() + 1);
            }
            self.0.best(count)
        }
    }

    #[test]
    fn after_a_dead_end_with_no_backtrack_left_no_candidate_is_checked_again() {
        let constraint = SchemaConstraint::new(&Schema::from_ddl(include_str!("../examples/sales.sql")).unwrap());
        let mut decoder = Constrained::new(&constraint);
        let (mut words, mut reply) = (Words::default(), Reply::default());
        let full_scans = std::cell::Cell::new(0);
        // A model that only ever wants columns products does not have.
        let prefers = |text: &str| match text {
            "" => vec!["SELECT count(*) FROM products WHERE"],
            _ => vec![" colour", " size", " weight"],
        };
        let mut scans_at_the_dead_end = None;
        for _ in 0..80 {
            let ranked = Counted(Ranked(prefers(reply.shown()).into_iter().map(|w| words.id(w)).collect()), &full_scans);
            match decoder.choose(&words, &ranked, &reply) {
                Step::Token(token) | Step::Last(token) => reply.push(&words, token),
                Step::Backtrack { to, ban } => decoder.backtrack(&mut reply, to, ban),
                Step::GiveUp => unreachable!("this decoder writes on past a dead end"),
            }
            if decoder.dead_end && scans_at_the_dead_end.is_none() {
                scans_at_the_dead_end = Some(full_scans.get());
            }
        }
        assert_eq!(decoder.backtracks, MAX_BACKTRACKS);
        assert_eq!(scans_at_the_dead_end, Some(full_scans.get()), "no scan after the dead end");
        assert!(reply.shown().ends_with("colour colour colour"), "the model's own words after it: {}", reply.shown());

        // A drawn candidate's decoder gives up there instead.
        let mut decoder = Constrained::new(&constraint).stopping_at_dead_end();
        let mut reply = Reply::default();
        let gave_up = (0..80).find(|_| {
            let ranked = Ranked(prefers(reply.shown()).into_iter().map(|w| words.id(w)).collect());
            match decoder.choose(&words, &ranked, &reply) {
                Step::Token(token) | Step::Last(token) => reply.push(&words, token),
                Step::Backtrack { to, ban } => decoder.backtrack(&mut reply, to, ban),
                Step::GiveUp => return true,
            }
            false
        });
        assert!(gave_up.is_some() && decoder.dead_end, "it gave up at the dead end");
        assert_eq!(decoder.backtracks, MAX_BACKTRACKS);
        assert!(!reply.shown().contains("colour"), "nothing refused was written: {}", reply.shown());
    }

    #[test]
    fn extract_over_an_integer_goes_back_to_extract_itself() {
        // The model wants EXTRACT(YEAR FROM quantity); refused at `)`, it goes back to EXTRACT,
        // which is then banned there, and takes its next choice.
        let sql = decode(|text| match text {
            "" => vec!["SELECT"],
            "SELECT" => vec![" EXTRACT(YEAR FROM", " quantity"],
            t if t.ends_with("FROM") && t.contains("EXTRACT") => vec![" quantity"],
            t if t.ends_with("EXTRACT(YEAR FROM quantity") => vec![")"],
            t if t.ends_with("quantity") || t.ends_with(')') => vec![" FROM order_items"],
            _ => vec!["\n```"],
        });
        assert_eq!(sql, "SELECT quantity FROM order_items\n```");
    }
}
