//! Prompts in Qwen's ChatML format, and the text-to-SQL prompt itself.

use crate::error::{Error, Result};
use crate::tokens::{ChatTokenizer, IM_END, IM_START};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A conversation that ends where the assistant is to speak next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// Longer questions are almost always pasted by mistake, and each token costs prompt time.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// Trims the question and rejects empty or over-long ones.
pub fn check_question(question: &str) -> Result<&str> {
    let question = question.trim();
    if question.is_empty() {
        return Err(Error::EmptyQuestion);
    }
    let chars = question.chars().count();
    if chars > MAX_QUESTION_CHARS {
        return Err(Error::QuestionTooLong { chars, limit: MAX_QUESTION_CHARS });
    }
    Ok(question)
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

/// A previous attempt that failed, shown to the model so it can repair it.
#[derive(Debug, Clone, Copy)]
pub struct FailedAttempt<'a> {
    pub sql: &'a str,
    pub error: &'a str,
}

#[derive(Debug, Clone, Copy)]
pub struct SqlRequest<'a> {
    /// The database as CREATE TABLE text ([`crate::Schema::render`], or DDL written by hand).
    pub schema: &'a str,
    pub question: &'a str,
    /// Extra guidance from the user or the benchmark ("instructions" in sql-eval).
    pub instructions: Option<&'a str>,
    pub failed: Option<FailedAttempt<'a>>,
}

impl<'a> SqlRequest<'a> {
    pub fn new(schema: &'a str, question: &'a str) -> Self {
        Self { schema, question, instructions: None, failed: None }
    }

    /// The prompt: system message = rules + schema (the same for every question on a database,
    /// so the prefix cache reuses it), user message = the question.
    pub fn prompt(&self) -> Result<ChatPrompt> {
        let question = check_question(self.question)?;
        let mut prompt = ChatPrompt::default();
        prompt.push(Role::System, SQL_SYSTEM_PROMPT.replace("{schema}", self.schema.trim_end()));
        let mut user = question.to_owned();
        if let Some(instructions) = self.instructions.map(str::trim).filter(|i| !i.is_empty()) {
            user.push_str(&format!("\n\nInstructions: {instructions}"));
        }
        prompt.push(Role::User, user);
        if let Some(failed) = self.failed {
            prompt.push(Role::Assistant, format!("```sql\n{}\n```", failed.sql.trim()));
            prompt.push(
                Role::User,
                format!(
                    "That query failed in PostgreSQL with this error:\n{}\nWrite a corrected query that answers the original question.",
                    failed.error.trim()
                ),
            );
        }
        Ok(prompt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Schema, Table};

    fn schema() -> String {
        Schema {
            tables: vec![Table {
                name: "sales".into(),
                columns: vec![Column { name: "price".into(), data_type: "numeric".into(), nullable: false, ..Default::default() }],
                ..Default::default()
            }],
        }
        .render()
    }

    #[test]
    fn renders_golden_chatml() {
        let schema = schema();
        let text = SqlRequest::new(&schema, "  Total revenue?  ").prompt().unwrap().text();
        let expected = format!(
            "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\nTotal revenue?<|im_end|>\n<|im_start|>assistant\n",
            SQL_SYSTEM_PROMPT.replace("{schema}", "CREATE TABLE sales (\n  price numeric NOT NULL\n);")
        );
        assert_eq!(text, expected);
        assert!(text.contains("EXTRACT(MONTH FROM d)") && text.contains("Never use MONTH()"));
    }

    #[test]
    fn instructions_and_repair_are_added() {
        let schema = schema();
        let mut request = SqlRequest::new(&schema, "Total?");
        request.instructions = Some("Round to 2 decimals.");
        request.failed = Some(FailedAttempt { sql: "SELECT sum(prize) FROM sales;", error: "column \"prize\" does not exist" });
        let prompt = request.prompt().unwrap();
        let roles: Vec<Role> = prompt.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
        assert_eq!(prompt.messages[1].content, "Total?\n\nInstructions: Round to 2 decimals.");
        assert_eq!(prompt.messages[2].content, "```sql\nSELECT sum(prize) FROM sales;\n```");
        assert!(prompt.messages[3].content.contains("column \"prize\" does not exist"));
    }

    #[test]
    fn blank_instructions_are_ignored() {
        let schema = schema();
        let mut request = SqlRequest::new(&schema, "Total?");
        request.instructions = Some("   ");
        assert_eq!(request.prompt().unwrap().messages[1].content, "Total?");
    }

    #[test]
    fn empty_and_whitespace_questions_are_rejected() {
        let schema = schema();
        for q in ["", "   ", "\n\t"] {
            let err = SqlRequest::new(&schema, q).prompt().unwrap_err();
            assert!(matches!(err, Error::EmptyQuestion), "{q:?}: {err}");
        }
    }

    #[test]
    fn over_long_question_is_rejected_with_the_limit() {
        let schema = schema();
        let question = "how much ".repeat(12_000);
        let err = SqlRequest::new(&schema, &question).prompt().unwrap_err();
        assert!(err.to_string().contains("the limit is 2000"), "{err}");
    }
}
