//! The conversation that turns a question into a statement the database accepts: ask the model,
//! let the caller judge its SQL (check, plan or run it), and when the caller asks for a repair,
//! show the model what went wrong and ask again, up to the repair policy's limit.
//!
//! The engine owns the whole exchange (what the model is told after each kind of failure, how
//! many tries it gets); the caller only says what happened to a statement, as [`Feedback`].
//!
//! With several candidates (`RepairPolicy::candidates`), the first turn writes the greedy reply
//! and more replies drawn from the model's distribution; the caller judges each one (runs it),
//! and the answer that the most accepted candidates agree on wins, the greedy one's on a tie
//! (execution-based self-consistency: a small model's likeliest reply is often wrong where its
//! replies disagree, and statements that do not run drop out of the vote). Repairs stay one
//! reply each, of the greedy candidate's failure.
//!
//! When every turn failed, a last one draws more replies to the first prompt
//! (`RepairPolicy::rescue`) and takes what they vote for, as above, before the question ends in
//! an error: a small model's greedy reply and its repair often fail the same way, and another
//! draw may not. On sql-eval dev, of the 14 questions whose greedy statement and repair both
//! failed, 11 had a drawn candidate that ran, and 4 of those were correct.

use crate::error::{Error, Result};
use crate::extract::extract_sql;
use crate::generate::{Completion, Observer};
use crate::constraint::SchemaConstraint;
use crate::prompt::{ChatPrompt, SqlRequest};
use std::ops::Range;
use std::time::{Duration, Instant};

/// What happened to one attempt, in terms the model can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// The reply held no SQL statement.
    NoSql,
    /// nl2sql refused the statement before running it (not one read-only SELECT, a function
    /// outside the allowed schemas, ...).
    Refused { reason: String },
    /// PostgreSQL raised an error while analysing, planning or running it.
    Failed { message: String, detail: Option<String>, hint: Option<String> },
}

impl Feedback {
    /// The failure as psql would print it: what the model and the user are shown.
    pub fn describe(&self) -> String {
        match self {
            Feedback::NoSql => "the reply contained no SQL statement".to_owned(),
            Feedback::Refused { reason } => format!("refused: {reason}"),
            Feedback::Failed { message, detail, hint } => {
                let mut text = format!("ERROR: {message}");
                if let Some(detail) = detail {
                    text.push_str(&format!("\nDETAIL: {detail}"));
                }
                if let Some(hint) = hint {
                    text.push_str(&format!("\nHINT: {hint}"));
                }
                text
            }
        }
    }
}

/// One try that did not give an accepted statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The model's reply, verbatim.
    pub reply: String,
    /// The SQL found in the reply, if any.
    pub sql: Option<String>,
    pub feedback: Feedback,
}

/// The caller's judgement of one statement.
#[derive(Debug)]
pub enum Verdict<T, E> {
    /// The statement is good; this is what became of it (a plan, a result set...).
    Accept(T),
    /// The caller revised the statement (the extension makes integer division exact) and the
    /// revision is good: the answer's SQL is the revision, so what is shown is what ran.
    AcceptRevised { sql: String, value: T },
    /// It failed in a way the model may be able to fix.
    Repair(Feedback),
    /// It failed in a way no rewrite will fix (e.g. it ran past its timeout): stop here.
    Stop(E),
}

/// Anything that completes a chat prompt, optionally under a schema constraint: the real
/// [`crate::Engine`], or a scripted stand-in.
pub trait SqlModel {
    fn complete(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion>;

    /// Replies to the same prompt by their place in a turn: candidate 0 is the greedy one, candidate
    /// `i` is drawn with [`crate::Sampling::candidate`]`(i)`, so a later turn can ask for the ones
    /// after those an earlier turn had. A model that cannot draw them (an inference server whose
    /// sampling is its own) gives the greedy one only, when asked for it.
    fn complete_candidates(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, candidates: Range<usize>, observer: &mut dyn Observer) -> Result<Vec<Completion>> {
        match candidates.contains(&0) {
            true => Ok(vec![self.complete(prompt, constraint, observer)?]),
            false => Ok(Vec::new()),
        }
    }

    /// Whether [`SqlModel::complete_candidates`] draws replies beyond the greedy one: without
    /// draws a rescue turn would only write the greedy reply again.
    fn draws_candidates(&self) -> bool {
        false
    }
}

/// How many times a failed statement is shown back to the model, how many candidates the first
/// turn writes, and how many more are drawn when every turn failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairPolicy {
    pub repair_attempts: usize,
    /// 1: the greedy reply alone.
    pub candidates: usize,
    /// Replies drawn to the first prompt after the last repair failed; 0: none.
    pub rescue: usize,
}

impl RepairPolicy {
    /// Repairs as given, one candidate, no rescue.
    pub const fn repairs(repair_attempts: usize) -> Self {
        Self { repair_attempts, candidates: 1, rescue: 0 }
    }
}

/// An accepted statement and what the caller made of it.
#[derive(Debug)]
pub struct Answer<T> {
    pub sql: String,
    pub value: T,
    /// The attempts that failed before this one.
    pub failed: Vec<Attempt>,
    /// Candidates written in the turn that gave this statement, and how many of the accepted
    /// ones agreed with it (1 and 1 without candidates).
    pub candidates: usize,
    pub votes: usize,
    /// Time spent in the model, and in the caller's judgement, over all attempts.
    pub generation: Duration,
    pub judging: Duration,
}

impl<T> Answer<T> {
    pub fn attempts(&self) -> usize {
        self.failed.len() + 1
    }
}

#[derive(Debug)]
pub enum Failure<E> {
    /// The model could not run (a bad file, a cancel, ...).
    Engine(Error),
    /// The caller stopped the conversation on this statement.
    Stopped { sql: String, error: E },
    /// Every attempt failed; the last one is last.
    NoValidQuery { attempts: Vec<Attempt> },
}

impl<E> From<Error> for Failure<E> {
    fn from(error: Error) -> Self {
        Failure::Engine(error)
    }
}

/// Asks for SQL, hands each statement to `judge`, and repairs as the policy allows. Only the
/// last failed attempt is shown to the model: a longer history costs prompt time and, with a
/// small model, tends to make it repeat earlier mistakes. `same_answer` says whether two accepted
/// statements' outcomes agree, for the vote between candidates.
pub fn converse<T, E>(
    model: &mut dyn SqlModel,
    request: &SqlRequest,
    policy: RepairPolicy,
    observer: &mut dyn Observer,
    mut judge: impl FnMut(&str) -> Verdict<T, E>,
    same_answer: impl Fn(&T, &T) -> bool,
) -> std::result::Result<Answer<T>, Failure<E>> {
    let mut failed: Vec<Attempt> = Vec::new();
    let (mut generation, mut judging) = (Duration::ZERO, Duration::ZERO);
    let constraint = request.constrained.then(|| SchemaConstraint::new(request.schema));
    // Judges a turn's candidates: the accepted ones, and the failure of the first one.
    let mut judge_turn = |completions: Vec<Completion>, judging: &mut Duration| {
        let mut accepted: Vec<(String, T)> = Vec::new();
        let mut first: Option<std::result::Result<Attempt, (String, E)>> = None;
        for completion in completions {
            let outcome = match extract_sql(&completion.text) {
                None => Err(Ok(Attempt { reply: completion.text, sql: None, feedback: Feedback::NoSql })),
                Some(sql) => {
                    let started = Instant::now();
                    let verdict = judge(&sql);
                    *judging += started.elapsed();
                    // A statement the decoder wrote past its dead end, and that runs: PostgreSQL
                    // found nothing wrong, the constraint did (what fails in PostgreSQL is shown
                    // with PostgreSQL's error, which says more).
                    let refused = |sql: &str| constraint.as_ref().and_then(|constraint| constraint.refusal(sql));
                    match verdict {
                        Verdict::Accept(_) | Verdict::AcceptRevised { .. } if let Some(reason) = refused(&sql) => {
                            Err(Ok(Attempt { reply: completion.text, sql: Some(sql), feedback: Feedback::Refused { reason } }))
                        }
                        Verdict::Accept(value) => Ok((sql, value)),
                        Verdict::AcceptRevised { sql, value } => Ok((sql, value)),
                        Verdict::Repair(feedback) => Err(Ok(Attempt { reply: completion.text, sql: Some(sql), feedback })),
                        Verdict::Stop(error) => Err(Err((sql, error))),
                    }
                }
            };
            match outcome {
                Ok(statement) => accepted.push(statement),
                Err(failure) if first.is_none() => first = Some(failure),
                Err(_) => {}
            }
        }
        (accepted, first)
    };
    for attempt in 1..=1 + policy.repair_attempts {
        observer.attempt(attempt);
        let started = Instant::now();
        let prompt = request.prompt(failed.last());
        let completions = match policy.candidates {
            count if attempt == 1 && count > 1 => model.complete_candidates(&prompt, constraint.as_ref(), 0..count, observer)?,
            _ => vec![model.complete(&prompt, constraint.as_ref(), observer)?],
        };
        generation += started.elapsed();
        let candidates = completions.len();
        let (accepted, first) = judge_turn(completions, &mut judging);
        if let Some((sql, value, votes)) = vote(accepted, &same_answer) {
            return Ok(Answer { sql, value, failed, candidates, votes, generation, judging });
        }
        // The greedy candidate's failure is what a repair shows (or what stops).
        match first.expect("a turn without an accepted statement has a failed first candidate") {
            Ok(attempt) => failed.push(attempt),
            Err((sql, error)) => return Err(Failure::Stopped { sql, error }),
        }
    }
    if policy.rescue > 0 && model.draws_candidates() {
        observer.attempt(failed.len() + 1);
        let started = Instant::now();
        // Draws after the first turn's candidates (those were judged already).
        let first_turn = policy.candidates.max(1);
        let drawn = first_turn..first_turn + policy.rescue;
        let completions = model.complete_candidates(&request.prompt(None), constraint.as_ref(), drawn, observer)?;
        generation += started.elapsed();
        let candidates = completions.len();
        // A rescue candidate that stops (ran past its timeout) just does not vote.
        let (accepted, _) = judge_turn(completions, &mut judging);
        if let Some((sql, value, votes)) = vote(accepted, &same_answer) {
            return Ok(Answer { sql, value, failed, candidates, votes, generation, judging });
        }
    }
    Err(Failure::NoValidQuery { attempts: failed })
}

/// The accepted statement whose outcome the most others share, and how many share it (itself
/// included); on a tie, the earliest (the greedy candidate comes first).
fn vote<T>(accepted: Vec<(String, T)>, same_answer: &impl Fn(&T, &T) -> bool) -> Option<(String, T, usize)> {
    let agreeing = |i: usize| accepted.iter().filter(|(_, other)| same_answer(&accepted[i].1, other)).count();
    let votes: Vec<usize> = (0..accepted.len()).map(agreeing).collect();
    let best = (0..accepted.len()).max_by(|&a, &b| votes[a].cmp(&votes[b]).then(b.cmp(&a)))?;
    let (sql, value) = accepted.into_iter().nth(best).expect("an index of the accepted");
    Some((sql, value, votes[best]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::generate::{Finish, Quiet, Timings};
    use crate::prompt::Role;
    use crate::question::Question;

    /// Answers each prompt with the next scripted reply and records the prompts it was given.
    pub(crate) struct ScriptedModel {
        pub(crate) replies: Vec<&'static str>,
        pub(crate) prompts: Vec<ChatPrompt>,
        /// The candidates each turn of several asked for.
        pub(crate) asked: Vec<Range<usize>>,
    }

    impl ScriptedModel {
        pub(crate) fn new(replies: &[&'static str]) -> Self {
            Self { replies: replies.iter().rev().copied().collect(), prompts: Vec::new(), asked: Vec::new() }
        }
    }

    impl SqlModel for ScriptedModel {
        fn draws_candidates(&self) -> bool {
            true
        }

        /// The next replies, one per candidate asked for, as candidates of one turn.
        fn complete_candidates(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, candidates: Range<usize>, observer: &mut dyn Observer) -> Result<Vec<Completion>> {
            self.asked.push(candidates.clone());
            candidates.map(|_| self.complete(prompt, constraint, observer)).collect()
        }

        fn complete(&mut self, prompt: &ChatPrompt, _: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion> {
            self.prompts.push(prompt.clone());
            let text = self.replies.pop().expect("the script has a reply for every prompt").to_owned();
            observer.reply(&text);
            Ok(Completion {
                text,
                prompt_tokens: 0,
                cached_tokens: 0,
                generated_tokens: 0,
                decode_steps: 0,
                drafted_tokens: 0,
                finish: Finish::Stop,
                timings: Timings::default(),
                from_cache: false,
            })
        }
    }

    fn request<'a>(schema: &'a crate::Schema, question: &'a Question) -> SqlRequest<'a> {
        SqlRequest::new(schema, question)
    }

    fn sales() -> crate::Schema {
        crate::Schema::from_ddl("CREATE TABLE sales (\n  price numeric\n);").unwrap()
    }

    /// A judge that accepts SQL mentioning `price` and asks for a repair otherwise.
    fn judge(sql: &str) -> Verdict<usize, String> {
        if sql.contains("timeout") {
            Verdict::Stop("too slow".into())
        } else if sql.contains("price") {
            Verdict::Accept(sql.len())
        } else {
            Verdict::Repair(Feedback::Failed {
                message: "column \"prize\" does not exist".into(),
                detail: None,
                hint: Some("Perhaps you meant to reference the column \"sales.price\".".into()),
            })
        }
    }

    const ONE_REPAIR: RepairPolicy = RepairPolicy::repairs(1);

    #[test]
    fn a_revision_the_judge_accepted_is_the_answer() {
        let question = Question::parse("Share?").unwrap();
        let mut model = ScriptedModel::new(&["```sql\nSELECT count(*) / 2 FROM sales\n```"]);
        let revise = |sql: &str| Verdict::<usize, String>::AcceptRevised { sql: sql.replace(" / ", "::numeric / "), value: 1 };
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, revise, |a, b| a == b).unwrap();
        assert_eq!(answer.sql, "SELECT count(*)::numeric / 2 FROM sales");
        assert_eq!((answer.value, answer.attempts()), (1, 1));
    }

    #[test]
    fn a_good_first_statement_is_accepted_without_repair() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["```sql\nSELECT sum(price) FROM sales;\n```"]);
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge, |a, b| a == b).unwrap();
        assert_eq!(answer.sql, "SELECT sum(price) FROM sales");
        assert_eq!(answer.attempts(), 1);
        assert_eq!(model.prompts.len(), 1);
    }

    #[test]
    fn a_failed_statement_is_shown_back_with_the_error_detail_and_hint() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["```sql\nSELECT sum(prize) FROM sales\n```", "```sql\nSELECT sum(price) FROM sales\n```"]);
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge, |a, b| a == b).unwrap();
        assert_eq!(answer.attempts(), 2);
        let repair = &model.prompts[1].messages;
        let roles: Vec<Role> = repair.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
        assert_eq!(repair[2].content, "```sql\nSELECT sum(prize) FROM sales\n```");
        assert_eq!(
            repair[3].content,
            "That query failed in PostgreSQL:\nERROR: column \"prize\" does not exist\nHINT: Perhaps you meant to reference the column \"sales.price\".\nWrite a corrected query that answers the original question."
        );
    }

    #[test]
    fn a_reply_without_sql_is_shown_back_as_prose_not_as_sql() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["I am not sure which table you mean.", "SELECT sum(price) FROM sales"]);
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge, |a, b| a == b).unwrap();
        assert_eq!(answer.failed[0].feedback, Feedback::NoSql);
        let repair = &model.prompts[1].messages;
        assert_eq!(repair[2].content, "I am not sure which table you mean.", "the reply verbatim, not fenced as SQL");
        assert!(repair[3].content.starts_with("Your reply contained no SQL query."), "{}", repair[3].content);
        assert!(!repair[3].content.contains("failed in PostgreSQL"), "{}", repair[3].content);
    }

    #[test]
    fn a_statement_that_runs_but_the_constraint_refuses_gets_a_repair_turn() {
        let question = Question::parse("Which prices are cheap?").unwrap();
        // What the decoder writes past a dead end: it runs, and compares a number with a word.
        let script = ["SELECT price FROM sales WHERE price = 'cheap'", "SELECT price FROM sales WHERE price < 5"];
        let mut model = ScriptedModel::new(&script);
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.attempts()), ("SELECT price FROM sales WHERE price < 5", 2));
        match &answer.failed[0].feedback {
            Feedback::Refused { reason } => assert!(reason.starts_with("`price` (after `...SELECT price FROM sales WHERE`) does not fit the schema there"), "{reason}"),
            other => panic!("expected the constraint's refusal, got {other:?}"),
        }
        // Without the constraint (nl2sql.constrained_decoding = off) it is the answer.
        let mut model = ScriptedModel::new(&script);
        let schema = sales();
        let unconstrained = SqlRequest { constrained: false, ..request(&schema, &question) };
        let answer = converse(&mut model, &unconstrained, ONE_REPAIR, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.attempts()), (script[0], 1));
    }

    #[test]
    fn a_refusal_is_explained_as_a_refusal() {
        let question = Question::parse("Delete everything").unwrap();
        let mut model = ScriptedModel::new(&["```sql\nDELETE FROM sales\n```", "SELECT count(price) FROM sales"]);
        let refuse = |sql: &str| -> Verdict<(), String> {
            if sql.starts_with("DELETE") {
                Verdict::Repair(Feedback::Refused { reason: "DELETE statements are not allowed; only SELECT is".into() })
            } else {
                Verdict::Accept(())
            }
        };
        converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, refuse, |a, b| a == b).unwrap();
        let repair = &model.prompts[1].messages[3].content;
        assert!(repair.starts_with("nl2sql cannot run that query: DELETE statements are not allowed"), "{repair}");
    }

    #[test]
    fn repairs_stop_at_the_policy_limit_and_every_attempt_is_reported() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "no idea", "SELECT prize2 FROM sales"]);
        let policy = RepairPolicy::repairs(2);
        match converse(&mut model, &request(&sales(), &question), policy, &mut Quiet, judge, |a, b| a == b) {
            Err(Failure::NoValidQuery { attempts }) => {
                let sql: Vec<Option<&str>> = attempts.iter().map(|a| a.sql.as_deref()).collect();
                assert_eq!(sql, [Some("SELECT prize FROM sales"), None, Some("SELECT prize2 FROM sales")]);
            }
            other => panic!("expected NoValidQuery, got {other:?}"),
        }
        assert_eq!(model.prompts.len(), 3);
        let none = RepairPolicy::repairs(0);
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales"]);
        assert!(matches!(converse(&mut model, &request(&sales(), &question), none, &mut Quiet, judge, |a, b| a == b), Err(Failure::NoValidQuery { .. })));
    }

    #[test]
    fn a_stop_verdict_ends_the_conversation_at_once() {
        let question = Question::parse("Everything").unwrap();
        let mut model = ScriptedModel::new(&["SELECT price FROM sales -- timeout"]);
        match converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge, |a, b| a == b) {
            Err(Failure::Stopped { sql, error }) => assert_eq!((sql.as_str(), error.as_str()), ("SELECT price FROM sales -- timeout", "too slow")),
            other => panic!("expected Stopped, got {other:?}"),
        }
        assert_eq!(model.prompts.len(), 1);
    }

    /// A judge that "runs" a statement: its answer is the number after `SELECT`, and SQL with
    /// `prize` fails.
    fn run(sql: &str) -> Verdict<String, String> {
        match sql.contains("prize") {
            true => Verdict::Repair(Feedback::Failed { message: "column \"prize\" does not exist".into(), detail: None, hint: None }),
            false => Verdict::Accept(sql.split_whitespace().nth(1).unwrap_or_default().to_owned()),
        }
    }

    const THREE_CANDIDATES: RepairPolicy = RepairPolicy { repair_attempts: 1, candidates: 3, rescue: 0 };

    #[test]
    fn the_answer_most_candidates_agree_on_wins_over_the_greedy_one() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["SELECT 1 FROM sales", "SELECT 2 FROM sales", "SELECT 2 AS total FROM sales"]);
        let answer = converse(&mut model, &request(&sales(), &question), THREE_CANDIDATES, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.value.as_str()), ("SELECT 2 FROM sales", "2"));
        assert_eq!((answer.candidates, answer.votes, answer.attempts()), (3, 2, 1));
        assert_eq!(model.prompts.len(), 3);
        assert!(model.prompts.iter().all(|prompt| *prompt == model.prompts[0]), "the candidates answer one prompt");
    }

    #[test]
    fn on_a_tie_the_greedy_candidate_wins_and_statements_that_fail_do_not_vote() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["SELECT 1 FROM sales", "SELECT prize FROM sales", "SELECT 2 FROM sales"]);
        let answer = converse(&mut model, &request(&sales(), &question), THREE_CANDIDATES, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.votes), ("SELECT 1 FROM sales", 1));

        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "no SQL here", "SELECT 2 FROM sales"]);
        let answer = converse(&mut model, &request(&sales(), &question), THREE_CANDIDATES, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.attempts()), ("SELECT 2 FROM sales", 1), "a sampled candidate saves a greedy one that fails");
    }

    #[test]
    fn when_no_candidate_runs_the_greedy_ones_failure_is_repaired_with_one_reply() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "SELECT prize + 1 FROM sales", "nothing", "SELECT 3 FROM sales"]);
        let answer = converse(&mut model, &request(&sales(), &question), THREE_CANDIDATES, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.candidates, answer.attempts()), ("SELECT 3 FROM sales", 1, 2));
        assert_eq!(answer.failed[0].sql.as_deref(), Some("SELECT prize FROM sales"), "the greedy candidate's failure is shown back");
        assert_eq!(model.prompts.len(), 4);
        assert_eq!(model.prompts[3].messages[2].content, "```sql\nSELECT prize FROM sales\n```");
    }

    #[test]
    fn when_every_turn_failed_drawn_replies_to_the_first_prompt_rescue_the_question() {
        let question = Question::parse("Total?").unwrap();
        let rescue = RepairPolicy { rescue: 3, ..ONE_REPAIR };
        // The greedy reply, its repair, then the rescue turn: three drawn, two of which agree.
        let script = ["SELECT prize FROM sales", "SELECT prize + 1 FROM sales", "SELECT 4 FROM sales", "SELECT 5 FROM sales", "SELECT 5 AS n FROM sales"];
        let mut model = ScriptedModel::new(&script);
        let mut judged: Vec<String> = Vec::new();
        let counting = |sql: &str| {
            judged.push(sql.to_owned());
            run(sql)
        };
        let answer = converse(&mut model, &request(&sales(), &question), rescue, &mut Quiet, counting, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.candidates, answer.votes, answer.attempts()), ("SELECT 5 FROM sales", 3, 2, 3));
        assert_eq!(judged.len(), 5, "the greedy reply is judged once: {judged:?}");
        assert_eq!((model.asked.len(), model.asked[0].clone()), (1, 1..4), "the rescue draws after the greedy candidate, not it again");
        assert_eq!(model.prompts.len(), 5);
        assert!(model.prompts[2..].iter().all(|prompt| *prompt == model.prompts[0]), "the rescue answers the first prompt, not the repair");

        // After a first turn of three candidates, the rescue draws the three after those.
        let policy = RepairPolicy { repair_attempts: 0, candidates: 3, rescue: 3 };
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "no SQL", "SELECT prize * 2 FROM sales", "SELECT 7 FROM sales", "nothing", "nothing"]);
        let answer = converse(&mut model, &request(&sales(), &question), policy, &mut Quiet, run, |a, b| a == b).unwrap();
        assert_eq!((answer.sql.as_str(), answer.candidates, answer.votes, answer.attempts()), ("SELECT 7 FROM sales", 3, 1, 2));
        assert_eq!(model.asked, [0..3, 3..6]);

        // Nothing drawn runs: the question fails with the turns' attempts, as without a rescue.
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "SELECT prize + 1 FROM sales", "no SQL", "SELECT prize * 2 FROM sales", "SELECT prize / 2 FROM sales"]);
        match converse(&mut model, &request(&sales(), &question), rescue, &mut Quiet, run, |a, b| a == b) {
            Err(Failure::NoValidQuery { attempts }) => assert_eq!(attempts.len(), 2),
            other => panic!("expected NoValidQuery, got {other:?}"),
        }
        // With no rescue, or a model that cannot draw, the model is not asked again.
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "SELECT prize + 1 FROM sales"]);
        assert!(matches!(converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, run, |a, b| a == b), Err(Failure::NoValidQuery { .. })));
        assert_eq!(model.prompts.len(), 2);
        let mut greedy_only = GreedyOnly(ScriptedModel::new(&["SELECT prize FROM sales", "SELECT prize + 1 FROM sales"]));
        assert!(matches!(converse(&mut greedy_only, &request(&sales(), &question), rescue, &mut Quiet, run, |a, b| a == b), Err(Failure::NoValidQuery { .. })));
        assert_eq!(greedy_only.0.prompts.len(), 2, "an inference server's model is not asked for the greedy reply a third time");
    }

    /// A model that writes its greedy reply only, as an inference server does.
    struct GreedyOnly(ScriptedModel);

    impl SqlModel for GreedyOnly {
        fn complete(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion> {
            self.0.complete(prompt, constraint, observer)
        }
    }
}
