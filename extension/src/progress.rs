//! Progress of one question, for clients that show it while the model works (the web page):
//! NOTICEs whose message is `nl2sql progress` and whose DETAIL is one JSON object: `{"phase":
//! ...}`, `{"text": ...}` (the SQL reply so far, after each token; it can also shrink, when the
//! schema constraint goes back to rewrite a few tokens) or `{"answer": ...}` (the answer in words
//! so far). PostgreSQL flushes
//! every NOTICE to the client at once, so they arrive while the call is still running. Off unless
//! the caller asks for it (nl2sql_ask(..., progress => true)).

use crate::errors::report;
use pgrx::PgLogLevel;
use serde_json::json;

/// The message every progress NOTICE carries (what a client filters on).
pub const MESSAGE: &str = "nl2sql progress";

pub enum Phase {
    ReadingSchema,
    WritingSql { attempt: usize },
    Running,
    Explaining,
}

fn notice(detail: serde_json::Value) {
    report(PgLogLevel::NOTICE, MESSAGE, Some(&detail.to_string()));
}

pub fn phase(phase: Phase) {
    notice(match phase {
        Phase::ReadingSchema => json!({ "phase": "reading_schema" }),
        Phase::WritingSql { attempt } => json!({ "phase": "writing_sql", "attempt": attempt }),
        Phase::Running => json!({ "phase": "running" }),
        Phase::Explaining => json!({ "phase": "explaining" }),
    });
}

pub fn reply(text: &str) {
    notice(json!({ "text": text }));
}

pub fn answer(text: &str) {
    notice(json!({ "answer": text }));
}
