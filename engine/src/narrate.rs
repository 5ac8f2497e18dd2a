//! Turning result rows into a one- or two-sentence answer: the prompt that shows the model a
//! capped sample of the rows and asks it to answer from them alone.

use crate::conversation::SqlModel;
use crate::error::Result;
use crate::generate::{Completion, Observer};
use crate::prompt::{ChatPrompt, Role};
use crate::question::Question;
use serde_json::Value;

/// Rows beyond this are summarised by count only: they would cost prompt time, and a one-sentence
/// answer cannot use them anyway.
pub(crate) const MAX_NARRATED_ROWS: usize = 20;
const MAX_CELL_CHARS: usize = 80;

const NARRATION_SYSTEM_PROMPT: &str = "\
You answer questions about a database in plain English. You are given a question and the result of the query that answers it. Write one or two short sentences that answer the question from the result.
- State names and numbers exactly as they appear in the result; never compute, round or invent a number.
- Do not add units or currency symbols that the result does not show: a column name is not a unit.
- If the result has no rows, say that no matching data was found.
- Do not mention SQL, queries, tables or columns.";

#[derive(Debug, Clone, Copy)]
pub struct NarrationRequest<'a> {
    pub question: &'a Question,
    pub columns: &'a [String],
    pub rows: &'a [Vec<Value>],
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "NULL".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX_CELL_CHARS {
        format!("{}…", text.chars().take(MAX_CELL_CHARS).collect::<String>())
    } else {
        text
    }
}

impl NarrationRequest<'_> {
    /// The rows as a pipe-separated table with a header, at most [`MAX_NARRATED_ROWS`] of them.
    pub fn result_table(&self) -> String {
        let mut out = format!("{}\n", self.columns.join(" | "));
        for row in self.rows.iter().take(MAX_NARRATED_ROWS) {
            out.push_str(&row.iter().map(cell).collect::<Vec<_>>().join(" | "));
            out.push('\n');
        }
        out
    }

    pub fn prompt(&self) -> ChatPrompt {
        let question = self.question.as_str();
        let shown = self.rows.len().min(MAX_NARRATED_ROWS);
        let count = match self.rows.len() {
            0 => "The result has no rows.".to_owned(),
            n if n == shown => format!("The result has {n} row{}:", if n == 1 { "" } else { "s" }),
            n => format!("The result has {n} rows; the first {shown} are:"),
        };
        let table = if self.rows.is_empty() { String::new() } else { self.result_table() };
        let mut prompt = ChatPrompt::default();
        prompt.push(Role::System, NARRATION_SYSTEM_PROMPT);
        prompt.push(Role::User, format!("Question: {question}\n\n{count}\n{table}"));
        prompt
    }

    /// One or two sentences, written by `model`, that answer the question from the rows.
    pub fn answer(&self, model: &mut dyn SqlModel, observer: &mut dyn Observer) -> Result<Completion> {
        let mut completion = model.complete(&self.prompt(), None, observer)?;
        completion.text = completion.text.trim().to_owned();
        Ok(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_golden_prompt() {
        let columns = vec!["name".to_owned(), "sold".to_owned()];
        let rows = vec![vec![json!("big_meat"), json!(1914)], vec![json!(null), json!(2.5)]];
        let question = Question::parse("Best seller?").unwrap();
        let request = NarrationRequest { question: &question, columns: &columns, rows: &rows };
        let prompt = request.prompt();
        assert_eq!(prompt.messages[1].content, "Question: Best seller?\n\nThe result has 2 rows:\nname | sold\nbig_meat | 1914\nNULL | 2.5\n");
    }

    #[test]
    fn caps_rows_and_says_how_many_there_were() {
        let columns = vec!["n".to_owned()];
        let rows: Vec<Vec<Value>> = (0..100).map(|i| vec![json!(i)]).collect();
        let question = Question::parse("Numbers?").unwrap();
        let request = NarrationRequest { question: &question, columns: &columns, rows: &rows };
        let content = request.prompt().messages[1].content.clone();
        assert!(content.contains("The result has 100 rows; the first 20 are:"), "{content}");
        assert!(content.contains("\n19\n") && !content.contains("\n20\n"), "{content}");
    }

    #[test]
    fn empty_result_is_stated() {
        let columns = vec!["n".to_owned()];
        let question = Question::parse("Any?").unwrap();
        let request = NarrationRequest { question: &question, columns: &columns, rows: &[] };
        assert!(request.prompt().messages[1].content.ends_with("The result has no rows.\n"));
    }

    #[test]
    fn long_cells_are_cut() {
        assert_eq!(cell(&json!("x".repeat(200))).chars().count(), MAX_CELL_CHARS + 1);
        assert_eq!(cell(&json!("two\nlines")), "two lines");
    }
}
