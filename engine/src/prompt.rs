//! Prompts in Qwen's ChatML format, and the text-to-SQL prompt itself.

use crate::conversation::{Attempt, Feedback};
use crate::error::Result;
use crate::question::Question;
use crate::schema::Schema;
use crate::tokens::{ChatTokenizer, IM_END, IM_START};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A conversation that ends where the assistant is to speak next.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatPrompt {
    pub messages: Vec<Message>,
}

impl ChatPrompt {
    pub fn push(&mut self, role: Role, content: impl Into<String>) {
        self.messages.push(Message { role, content: content.into() });
    }


    /// The prompt as text, exactly as the model sees it (for display and debugging).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            out.push_str(&format!("{IM_START}{}\n{}{IM_END}\n", m.role.name(), m.content));
        }
        out.push_str(&format!("{IM_START}assistant\n"));
        out
    }

    /// Token ids of [`ChatPrompt::text`]: message text is encoded as plain text and the control
    /// tokens are inserted by id, so text can never forge a control token.
    pub fn tokens(&self, tokenizer: &ChatTokenizer) -> Result<Vec<u32>> {
        let ids = tokenizer.ids;
        let mut out = Vec::new();
        for m in &self.messages {
            out.push(ids.im_start);
            out.extend(tokenizer.encode(&format!("{}\n{}", m.role.name(), m.content))?);
            out.push(ids.im_end);
            out.extend(tokenizer.encode("\n")?);
        }
        out.push(ids.im_start);
        out.extend(tokenizer.encode("assistant\n")?);
        Ok(out)
    }
}

/// The system prompt fixes the dialect: small models otherwise drift into MySQL or T-SQL.
const SQL_SYSTEM_PROMPT: &str = "\
You are an expert PostgreSQL data analyst. Write one PostgreSQL query that answers the user's question, using only the tables and columns of this database:

{schema}

Rules:
- Write PostgreSQL only. Dates: EXTRACT(YEAR FROM d), EXTRACT(MONTH FROM d), EXTRACT(DOW FROM d) (0 = Sunday ... 6 = Saturday), date_trunc('month', d), to_char(d, 'YYYY-MM'), CURRENT_DATE, d - INTERVAL '7 days'. Never use MONTH(), YEAR(), DAYOFWEEK(), DATEPART(), DATEDIFF(), TOP or backticks.
- Counting: 'how many', 'most bought', 'most popular' and 'sold the most' count rows with COUNT(*) (or SUM a quantity column if there is one); 'revenue', 'sales amount' and 'earned' SUM a price or amount column.
- Case-insensitive text matching: ILIKE. Division: cast to numeric or float to avoid integer division.
- Exactly one SELECT statement (WITH ... SELECT is fine). Never modify data or the schema.
- Use only the tables and columns above, spelled and quoted exactly as shown. Qualify column names with table aliases when joining.
- Answer with the SQL in a ```sql code block and nothing else.";

/// Everything the model is told about one question: the one request builder behind both
/// answering and `nl2sql_prompt()`, so the prompt shown is the prompt used.
#[derive(Debug, Clone, Copy)]
pub struct SqlRequest<'a> {
    /// The database, rendered as CREATE TABLE text in the prompt.
    pub schema: &'a Schema,
    pub question: &'a Question,
    /// Extra guidance from the user or the benchmark ("instructions" in sql-eval).
    pub instructions: Option<&'a str>,
    /// Whether generation may only name tables and columns of `schema` (see constraint.rs).
    pub constrained: bool,
    /// Terms of this database and what they mean, shown after the schema.
    pub glossary: &'a [GlossaryEntry],
    /// Verified questions with their SQL, most similar first, shown as earlier turns.
    pub examples: &'a [Example],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlossaryEntry {
    pub term: String,
    pub meaning: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub question: String,
    pub sql: String,
}

impl<'a> SqlRequest<'a> {
    pub fn new(schema: &'a Schema, question: &'a Question) -> Self {
        Self { schema, question, instructions: None, constrained: true, glossary: &[], examples: &[] }
    }

    /// The prompt: system message = rules + schema + glossary (the same for every question on a
    /// database, so the prefix cache reuses it), then the examples as earlier question-and-SQL
    /// turns, then the question with the database values it names; after a failed attempt, that attempt as the assistant's turn and
    /// what went wrong as the user's next turn.
    pub fn prompt(&self, failed: Option<&Attempt>) -> ChatPrompt {
        let mut prompt = ChatPrompt::default();
        let mut schema = self.schema.render().trim_end().to_owned();
        if !self.glossary.is_empty() {
            schema.push_str("\n\nGlossary of this database:");
            for entry in self.glossary {
                schema.push_str(&format!("\n- {}: {}", one_line(&entry.term), one_line(&entry.meaning)));
            }
        }
        prompt.push(Role::System, SQL_SYSTEM_PROMPT.replace("{schema}", &schema));
        for example in self.examples {
            prompt.push(Role::User, example.question.trim());
            prompt.push(Role::Assistant, format!("```sql\n{}\n```", example.sql.trim()));
        }
        let mut user = self.question.as_str().to_owned();
        let mentioned = self.schema.mentioned_values();
        if !mentioned.is_empty() {
            user.push_str(&format!("\n\nValues in the database that the question names: {}", mentioned.join(", ")));
        }
        if let Some(instructions) = self.instructions.map(str::trim).filter(|i| !i.is_empty()) {
            user.push_str(&format!("\n\nInstructions: {instructions}"));
        }
        prompt.push(Role::User, user);
        if let Some(attempt) = failed {
            let (said, told) = repair_turn(attempt);
            prompt.push(Role::Assistant, said);
            prompt.push(Role::User, told);
        }
        prompt
    }
}

/// Text that stays on one line of the prompt.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

const REPAIR_REQUEST: &str = "Write a corrected query that answers the original question.";

/// The failed attempt as the assistant's turn, and the user's answer to it. A reply without SQL
/// is shown as the prose it was (fencing it as SQL would teach the model that prose is SQL).
fn repair_turn(attempt: &Attempt) -> (String, String) {
    let fenced = |sql: &str| format!("```sql\n{}\n```", sql.trim());
    match (&attempt.feedback, attempt.sql.as_deref()) {
        (Feedback::NoSql, _) | (_, None) => (
            attempt.reply.trim().to_owned(),
            "Your reply contained no SQL query. Answer with one PostgreSQL SELECT statement in a ```sql code block.".to_owned(),
        ),
        (Feedback::Refused { reason }, Some(sql)) => {
            (fenced(sql), format!("nl2sql cannot run that query: {reason}\n{REPAIR_REQUEST}"))
        }
        (failed @ Feedback::Failed { .. }, Some(sql)) => {
            (fenced(sql), format!("That query failed in PostgreSQL:\n{}\n{REPAIR_REQUEST}", failed.describe()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Table};

    fn schema() -> Schema {
        Schema {
            tables: vec![Table {
                name: "sales".into(),
                columns: vec![Column { name: "price".into(), data_type: "numeric".into(), nullable: false, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    /// The whole prompt, byte for byte: a change to the rules shows up as a diff here.
    #[test]
    fn renders_golden_chatml() {
        let schema = schema();
        let question = Question::parse("  Total revenue?  ").unwrap();
        let text = SqlRequest::new(&schema, &question).prompt(None).text();
        assert_eq!(text, include_str!("../tests/golden/sql_prompt.txt"));
    }

    #[test]
    fn glossary_follows_the_schema_and_examples_come_before_the_question() {
        let schema = schema();
        let question = Question::parse("Total?").unwrap();
        let glossary = [GlossaryEntry { term: "revenue".into(), meaning: "sum of price\nover sales".into() }];
        let examples = [Example { question: "How many sales?".into(), sql: "SELECT count(*) FROM sales".into() }];
        let mut request = SqlRequest::new(&schema, &question);
        request.glossary = &glossary;
        request.examples = &examples;
        let prompt = request.prompt(None);
        assert!(prompt.messages[0].content.contains(");\n\nGlossary of this database:\n- revenue: sum of price over sales\n\nRules:"), "{}", prompt.messages[0].content);
        let turns: Vec<(Role, &str)> = prompt.messages[1..].iter().map(|m| (m.role, m.content.as_str())).collect();
        assert_eq!(turns, [(Role::User, "How many sales?"), (Role::Assistant, "```sql\nSELECT count(*) FROM sales\n```"), (Role::User, "Total?")]);
    }

    #[test]
    fn values_the_question_names_go_with_the_question_not_into_the_schema() {
        let mut schema = schema();
        let question = Question::parse("Sales at 9.99?").unwrap();
        let plain = SqlRequest::new(&schema, &question).prompt(None);
        schema.tables[0].columns[0].mentioned_values = vec!["9.99".into(), "it's".into()];
        let marked = SqlRequest::new(&schema, &question).prompt(None);
        assert_eq!(marked.messages[0], plain.messages[0], "the system turn (the cached prefix) is unchanged");
        assert_eq!(
            marked.messages[1].content,
            "Sales at 9.99?\n\nValues in the database that the question names: sales.price = '9.99', sales.price = 'it''s'"
        );
    }

    #[test]
    fn instructions_go_after_the_question() {
        let schema = schema();
        let question = Question::parse("Total?").unwrap();
        let mut request = SqlRequest::new(&schema, &question);
        request.instructions = Some("Round to 2 decimals.");
        assert_eq!(request.prompt(None).messages[1].content, "Total?\n\nInstructions: Round to 2 decimals.");
        request.instructions = Some("   ");
        assert_eq!(request.prompt(None).messages[1].content, "Total?", "blank instructions are ignored");
    }
}
