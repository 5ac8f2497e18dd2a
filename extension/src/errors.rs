//! The one error type of the extension: a SQLSTATE, a message that says what went wrong, and
//! optionally a detail and a hint that says what to do. Our own failures, the engine's, and
//! PostgreSQL errors caught inside a subtransaction all take this shape; the SQL functions return
//! it and pgrx raises it as an ERROR with every field intact.

use nl2sql_engine::{Error as EngineError, Feedback};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nl2sqlError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type Result<T, E = Nl2sqlError> = std::result::Result<T, E>;

impl Nl2sqlError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), detail: None, hint: None }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
    }

    /// A failure of SQL the extension runs itself (catalog reads, the CSV loader's statements).
    pub fn internal(what: &str, error: impl std::fmt::Display) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("{what} failed: {error}"))
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A PostgreSQL error about a generated statement, as the model is shown it for repair.
    pub fn feedback(&self) -> Feedback {
        Feedback::Failed { message: self.message.clone(), detail: self.detail.clone(), hint: self.hint.clone() }
    }
}

/// Raised by pgrx when a SQL function returns it: `nl2sql: ` marks the message as ours, and the
/// report's location is where the error crossed into SQL.
impl From<Nl2sqlError> for ErrorReport {
    #[track_caller]
    fn from(error: Nl2sqlError) -> Self {
        let mut report = ErrorReport::new(error.code, format!("nl2sql: {}", error.message), "nl2sql");
        if let Some(detail) = error.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = error.hint {
            report = report.set_hint(hint);
        }
        report
    }
}

pub const FETCH_HINT: &str = "Run scripts/fetch-model as the database server's OS user (it prints the path), then as a superuser: ALTER SYSTEM SET nl2sql.model_path = '<that path>'; SELECT pg_reload_conf();";

impl From<EngineError> for Nl2sqlError {
    fn from(err: EngineError) -> Self {
        let message = err.to_string();
        match err {
            EngineError::ModelNotFound { .. } | EngineError::ModelUnreadable { .. } | EngineError::UnsupportedArchitecture { .. } | EngineError::EmbeddingModelNotFound { .. } => {
                Self::new(PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, message).hint(FETCH_HINT)
            }
            EngineError::NotEnoughMemory { .. } => Self::new(PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY, message).hint(
                "Free memory on the database server or raise the limit named, or serve the model from an inference server (nl2sql.backend = 'openai').",
            ),
            EngineError::EmptyQuestion | EngineError::QuestionTooLong { .. } | EngineError::InvalidSetting(_) | EngineError::InvalidSchema(_) => {
                Self::invalid_input(message)
            }
            EngineError::PromptTooLong { .. } => Self::new(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, message)
                .hint("Set search_path to the schemas the question is about, or ask in a database with fewer tables."),
            EngineError::Cancelled => Self::new(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, message),
            EngineError::RemoteTimeout { .. } => Self::new(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, message)
                .hint("The inference server may be overloaded; raise nl2sql.request_timeout, or check the server."),
            // 08001, as postgres_fdw and dblink report a remote server they cannot reach.
            EngineError::RemoteUnavailable { .. } => Self::new(PgSqlErrorCode::ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, message)
                .hint("Check that the inference server is running and that nl2sql.endpoint points at it (SELECT nl2sql_status())."),
            EngineError::WorkerUnavailable { .. } => Self::new(PgSqlErrorCode::ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, message)
                .hint("The model worker restarts by itself after a crash: try again in a few seconds. If it persists, see the server log."),
            EngineError::RemoteCircuitOpen { .. } => Self::new(PgSqlErrorCode::ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, message)
                .hint("Fix or restart the inference server; nl2sql tries it again after the pause. A new connection tries at once."),
            EngineError::RemoteUnauthorized { .. } => Self::new(PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, message)
                .hint("A superuser sets the key with ALTER SYSTEM SET nl2sql.api_key = '...'; SELECT pg_reload_conf();"),
            EngineError::RemoteRejected { .. } | EngineError::RemoteReply(_) => {
                Self::new(PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, message)
                    .hint("Check nl2sql.endpoint and nl2sql.model_name against what the server serves.")
            }
            EngineError::Tokenizer(_) | EngineError::Candle(_) => {
                Self::new(PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, message)
            }
        }
    }
}

/// Sends a NOTICE or WARNING to the client. PostgreSQL's errfinish() checks for interrupts after
/// emitting a message, and pgrx calls it unguarded: a query cancel arriving then would longjmp
/// over Rust frames without running their destructors (a borrowed model would stay borrowed for
/// the rest of the session). So interrupts are held while the message goes out, and a cancel is
/// then processed here, where it unwinds properly.
pub fn report(level: PgLogLevel, message: &str, detail: Option<&str>) {
    debug_assert!(level < PgLogLevel::ERROR, "ERRORs are returned, not reported");
    let mut report = ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, message.to_owned(), "nl2sql");
    if let Some(detail) = detail {
        report = report.set_detail(detail.to_owned());
    }
    // SAFETY: HOLD_INTERRUPTS / RESUME_INTERRUPTS as the C macros do, on the backend's thread.
    unsafe { pg_sys::InterruptHoldoffCount += 1 };
    report.report(level);
    unsafe { pg_sys::InterruptHoldoffCount -= 1 };
    pg_sys::check_for_interrupts!();
}
