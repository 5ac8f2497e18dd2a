//! How a question is answered: read the schema the caller may see, let the engine's conversation
//! write SQL, and judge each statement here (its integer division made exact, then checked and
//! planned, or checked and run); the engine shows failures back to the model as
//! nl2sql.repair_attempts allows.

use crate::backend_model::{with_model, Backend};
use crate::errors::{Nl2sqlError, Result};
use crate::exact_arithmetic;
use crate::progress::{self, Phase};
use crate::provenance::AllowedSchemas;
use crate::statement::{self, ResultSet, StatementFailure};
use crate::gucs;
use crate::question_context::Context;
use nl2sql_engine::{converse, Answer, Failure, Feedback, Question, RepairPolicy, Verdict};
use pgrx::PgSqlErrorCode;

/// Writes SQL for the question that checks and plans; the SQL and its output columns. With
/// several candidates the vote compares their results, so each is run (read-only, as the caller).
pub fn plan_sql(question: &Question, instructions: Option<&str>, observer: &mut Backend) -> Result<Answer<Vec<String>>> {
    if gucs::candidates() > 1 {
        let Answer { sql, value, failed, candidates, votes, generation, judging } = run_sql(question, instructions, observer)?;
        return Ok(Answer { sql, value: value.columns, failed, candidates, votes, generation, judging });
    }
    let allowed = AllowedSchemas::new(&gucs::allowed_function_schemas());
    answer_with(question, instructions, observer, |sql| judge_revised(sql, |sql| statement::plan(sql, &allowed)), |a, b| a == b)
}

/// Writes SQL for the question and runs it; the SQL and its result.
pub fn run_sql(question: &Question, instructions: Option<&str>, observer: &mut Backend) -> Result<Answer<ResultSet>> {
    let allowed = AllowedSchemas::new(&gucs::allowed_function_schemas());
    let (max_rows, timeout_ms, progress) = (gucs::max_rows(), gucs::statement_timeout_ms(), observer.progress);
    answer_with(question, instructions, observer, |sql| {
        if progress {
            progress::phase(Phase::Running);
        }
        judge_revised(sql, |sql| statement::run(sql, &allowed, max_rows, timeout_ms))
    }, ResultSet::same_answer)
}

/// Judges the statement with its arithmetic made exact (see exact_arithmetic), or as written
/// when there is nothing to revise or nl2sql.exact_arithmetic is off.
fn judge_revised<T>(sql: &str, outcome: impl FnOnce(&str) -> std::result::Result<T, StatementFailure>) -> Verdict<T, Nl2sqlError> {
    match gucs::exact_arithmetic().then(|| exact_arithmetic::revise(sql)).flatten() {
        None => judge(outcome(sql)),
        Some(revision) => match judge(outcome(&revision)) {
            Verdict::Accept(value) => Verdict::AcceptRevised { sql: revision, value },
            other => other,
        },
    }
}

/// A statement's fate as the conversation needs it: accepted, worth a repair, or the end.
fn judge<T>(outcome: std::result::Result<T, StatementFailure>) -> Verdict<T, Nl2sqlError> {
    match outcome {
        Ok(value) => Verdict::Accept(value),
        Err(StatementFailure::Refused(reason)) => Verdict::Repair(Feedback::Refused { reason }),
        Err(StatementFailure::Failed(error)) => Verdict::Repair(error.feedback()),
        Err(StatementFailure::TimedOut) => Verdict::Stop(
            Nl2sqlError::new(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                format!("the generated query ran longer than nl2sql.statement_timeout ({} ms) and was stopped", gucs::statement_timeout_ms()),
            )
            .hint("Ask a narrower question (a date range, a LIMIT), or raise nl2sql.statement_timeout for this session."),
        ),
    }
}

fn answer_with<T>(
    question: &Question,
    instructions: Option<&str>,
    observer: &mut Backend,
    judge: impl FnMut(&str) -> Verdict<T, Nl2sqlError>,
    same_answer: impl Fn(&T, &T) -> bool,
) -> Result<Answer<T>> {
    let context = Context::read(question, observer)?;
    let request = context.request(question, instructions);
    let policy = RepairPolicy { repair_attempts: gucs::repair_attempts(), candidates: gucs::candidates(), rescue: gucs::rescue_candidates() };
    match with_model(|model| converse(model, &request, policy, observer, judge, same_answer))? {
        Ok(answer) => Ok(answer),
        Err(Failure::Engine(error)) => Err(error.into()),
        Err(Failure::Stopped { sql, error }) => Err(error.detail(format!("SQL: {sql}"))),
        Err(Failure::NoValidQuery { attempts }) => {
            let last = attempts.last().expect("a conversation makes at least one attempt");
            let sql = last.sql.as_deref().unwrap_or("(none: the reply held no SQL)");
            Err(Nl2sqlError::new(
                PgSqlErrorCode::ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
                format!("could not write a valid query for this question in {} attempt(s)", attempts.len()),
            )
            .detail(format!("last SQL: {sql}\nreason: {}", last.feedback.describe()))
            .hint("Rephrase the question using the names of tables and columns, or allow more retries with SET nl2sql.repair_attempts = 2."))
        }
    }
}
