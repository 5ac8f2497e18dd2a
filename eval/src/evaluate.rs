//! One question: generate with nl2sql_sql (instructions as extra instructions), run the generated
//! and the gold queries read-only with a timeout, and score with sql-eval's rules.

use crate::questions::Question;
use crate::scoring::{asks_for_order, gold_queries, is_correct, Cell, Table};
use postgres::{Client, SimpleQueryMessage};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Correct,
    Incorrect,
    /// nl2sql produced no SQL (it raised an error).
    GenerationFailed,
    /// The generated SQL did not run.
    ExecutionFailed,
    /// No gold query ran: the question cannot be scored.
    GoldFailed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuestionResult {
    pub index: usize,
    pub db_name: String,
    pub category: String,
    pub question: String,
    pub gold: String,
    pub sql: Option<String>,
    pub verdict: Verdict,
    pub error: Option<String>,
    /// Time nl2sql_sql took (generation, checking, planning).
    pub latency_ms: f64,
}

/// Runs `sql` in a read-only transaction with a timeout; values in PostgreSQL's text format.
pub fn run_query(client: &mut Client, sql: &str, timeout_ms: u64) -> Result<Table, String> {
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.batch_execute(&format!("SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {timeout_ms}")).map_err(|e| e.to_string())?;
    let messages = tx.simple_query(sql).map_err(|e| e.as_db_error().map_or(e.to_string(), |d| d.message().to_owned()))?;
    let mut table = Table { columns: Vec::new(), rows: Vec::new() };
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => table.columns = columns.iter().map(|c| c.name().to_owned()).collect(),
            SimpleQueryMessage::Row(row) => {
                if table.columns.is_empty() {
                    table.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                table.rows.push((0..row.len()).map(|i| Cell::from_text(row.get(i))).collect());
            }
            _ => {}
        }
    }
    Ok(table)
}

pub fn evaluate(client: &mut Client, index: usize, q: &Question, timeout_ms: u64) -> QuestionResult {
    let mut result = QuestionResult {
        index,
        db_name: q.db_name.clone(),
        category: q.query_category.clone(),
        question: q.question.clone(),
        gold: q.query.clone(),
        sql: None,
        verdict: Verdict::GenerationFailed,
        error: None,
        latency_ms: 0.0,
    };
    let instructions = q.instructions.as_deref().map(str::trim).filter(|i| !i.is_empty());
    let started = Instant::now();
    let generated = client.query_one("SELECT nl2sql_sql($1, $2)", &[&q.question, &instructions]);
    result.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let sql: String = match generated {
        Ok(row) => row.get(0),
        Err(e) => {
            result.error = Some(e.as_db_error().map_or(e.to_string(), |d| format!("{}; {}", d.message(), d.detail().unwrap_or(""))));
            return result;
        }
    };
    result.sql = Some(sql.clone());
    let generated_table = match run_query(client, &sql, timeout_ms) {
        Ok(table) => table,
        Err(e) => {
            result.verdict = Verdict::ExecutionFailed;
            result.error = Some(e);
            return result;
        }
    };
    let ordered = asks_for_order(&q.query_category, &q.question);
    let mut gold_ran = false;
    let mut gold_errors = Vec::new();
    for gold in gold_queries(&q.query) {
        match run_query(client, &gold, timeout_ms) {
            Ok(gold_table) => {
                gold_ran = true;
                if is_correct(&gold_table, &generated_table, ordered) {
                    result.verdict = Verdict::Correct;
                    return result;
                }
            }
            Err(e) => gold_errors.push(e),
        }
    }
    result.verdict = if gold_ran { Verdict::Incorrect } else { Verdict::GoldFailed };
    if !gold_ran {
        result.error = Some(format!("no gold query ran: {}", gold_errors.join("; ")));
    }
    result
}
