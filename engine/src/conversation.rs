//! The conversation that turns a question into a statement the database accepts: ask the model,
//! let the caller judge its SQL (check, plan or run it), and when the caller asks for a repair,
//! show the model what went wrong and ask again, up to the repair policy's limit.
//!
//! The engine owns the whole exchange (what the model is told after each kind of failure, how
//! many tries it gets); the caller only says what happened to a statement, as [`Feedback`].

use crate::error::{Error, Result};
use crate::extract::extract_sql;
use crate::generate::{Completion, Observer};
use crate::constraint::SchemaConstraint;
use crate::prompt::{ChatPrompt, SqlRequest};
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
    /// It failed in a way the model may be able to fix.
    Repair(Feedback),
    /// It failed in a way no rewrite will fix (e.g. it ran past its timeout): stop here.
    Stop(E),
}

/// Anything that completes a chat prompt, optionally under a schema constraint: the real
/// [`crate::Engine`], or a scripted stand-in.
pub trait SqlModel {
    fn complete(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion>;
}

/// How many times a failed statement is shown back to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairPolicy {
    pub repair_attempts: usize,
}

/// An accepted statement and what the caller made of it.
#[derive(Debug)]
pub struct Answer<T> {
    pub sql: String,
    pub value: T,
    /// The attempts that failed before this one.
    pub failed: Vec<Attempt>,
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
/// small model, tends to make it repeat earlier mistakes.
pub fn converse<T, E>(
    model: &mut dyn SqlModel,
    request: &SqlRequest,
    policy: RepairPolicy,
    observer: &mut dyn Observer,
    mut judge: impl FnMut(&str) -> Verdict<T, E>,
) -> std::result::Result<Answer<T>, Failure<E>> {
    let mut failed: Vec<Attempt> = Vec::new();
    let (mut generation, mut judging) = (Duration::ZERO, Duration::ZERO);
    let constraint = request.constrained.then(|| SchemaConstraint::new(request.schema));
    for attempt in 1..=1 + policy.repair_attempts {
        observer.attempt(attempt);
        let started = Instant::now();
        let completion = model.complete(&request.prompt(failed.last()), constraint.as_ref(), observer)?;
        generation += started.elapsed();
        let Some(sql) = extract_sql(&completion.text) else {
            failed.push(Attempt { reply: completion.text, sql: None, feedback: Feedback::NoSql });
            continue;
        };
        let started = Instant::now();
        let verdict = judge(&sql);
        judging += started.elapsed();
        match verdict {
            Verdict::Accept(value) => return Ok(Answer { sql, value, failed, generation, judging }),
            Verdict::Stop(error) => return Err(Failure::Stopped { sql, error }),
            Verdict::Repair(feedback) => failed.push(Attempt { reply: completion.text, sql: Some(sql), feedback }),
        }
    }
    Err(Failure::NoValidQuery { attempts: failed })
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
    }

    impl ScriptedModel {
        pub(crate) fn new(replies: &[&'static str]) -> Self {
            Self { replies: replies.iter().rev().copied().collect(), prompts: Vec::new() }
        }
    }

    impl SqlModel for ScriptedModel {
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

    const ONE_REPAIR: RepairPolicy = RepairPolicy { repair_attempts: 1 };

    #[test]
    fn a_good_first_statement_is_accepted_without_repair() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["```sql\nSELECT sum(price) FROM sales;\n```"]);
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge).unwrap();
        assert_eq!(answer.sql, "SELECT sum(price) FROM sales");
        assert_eq!(answer.attempts(), 1);
        assert_eq!(model.prompts.len(), 1);
    }

    #[test]
    fn a_failed_statement_is_shown_back_with_the_error_detail_and_hint() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["```sql\nSELECT sum(prize) FROM sales\n```", "```sql\nSELECT sum(price) FROM sales\n```"]);
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge).unwrap();
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
        let answer = converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge).unwrap();
        assert_eq!(answer.failed[0].feedback, Feedback::NoSql);
        let repair = &model.prompts[1].messages;
        assert_eq!(repair[2].content, "I am not sure which table you mean.", "the reply verbatim, not fenced as SQL");
        assert!(repair[3].content.starts_with("Your reply contained no SQL query."), "{}", repair[3].content);
        assert!(!repair[3].content.contains("failed in PostgreSQL"), "{}", repair[3].content);
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
        converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, refuse).unwrap();
        let repair = &model.prompts[1].messages[3].content;
        assert!(repair.starts_with("nl2sql cannot run that query: DELETE statements are not allowed"), "{repair}");
    }

    #[test]
    fn repairs_stop_at_the_policy_limit_and_every_attempt_is_reported() {
        let question = Question::parse("Total?").unwrap();
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales", "no idea", "SELECT prize2 FROM sales"]);
        let policy = RepairPolicy { repair_attempts: 2 };
        match converse(&mut model, &request(&sales(), &question), policy, &mut Quiet, judge) {
            Err(Failure::NoValidQuery { attempts }) => {
                let sql: Vec<Option<&str>> = attempts.iter().map(|a| a.sql.as_deref()).collect();
                assert_eq!(sql, [Some("SELECT prize FROM sales"), None, Some("SELECT prize2 FROM sales")]);
            }
            other => panic!("expected NoValidQuery, got {other:?}"),
        }
        assert_eq!(model.prompts.len(), 3);
        let none = RepairPolicy { repair_attempts: 0 };
        let mut model = ScriptedModel::new(&["SELECT prize FROM sales"]);
        assert!(matches!(converse(&mut model, &request(&sales(), &question), none, &mut Quiet, judge), Err(Failure::NoValidQuery { .. })));
    }

    #[test]
    fn a_stop_verdict_ends_the_conversation_at_once() {
        let question = Question::parse("Everything").unwrap();
        let mut model = ScriptedModel::new(&["SELECT price FROM sales -- timeout"]);
        match converse(&mut model, &request(&sales(), &question), ONE_REPAIR, &mut Quiet, judge) {
            Err(Failure::Stopped { sql, error }) => assert_eq!((sql.as_str(), error.as_str()), ("SELECT price FROM sales -- timeout", "too slow")),
            other => panic!("expected Stopped, got {other:?}"),
        }
        assert_eq!(model.prompts.len(), 1);
    }
}
