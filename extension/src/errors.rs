//! One error type for the SQL surface: a SQLSTATE, a message that says what went wrong, and a
//! hint that says what to do. Raised as a PostgreSQL ERROR at the function boundary.

use nl2sql_engine::Error as EngineError;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;

#[derive(Debug, Clone)]
pub struct Nl2sqlError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Nl2sqlError>;

impl Nl2sqlError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), detail: None, hint: None }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises this as a PostgreSQL ERROR; the caller's statement is aborted.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, format!("nl2sql: {}", self.message), pgrx::function_name!());
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

pub const FETCH_HINT: &str = "Run scripts/fetch-model as the database server's OS user (it prints the path), then as a superuser: ALTER SYSTEM SET nl2sql.model_path = '<that path>'; SELECT pg_reload_conf();";

impl From<EngineError> for Nl2sqlError {
    fn from(err: EngineError) -> Self {
        let message = err.to_string();
        match err {
            EngineError::ModelNotFound { .. } | EngineError::ModelUnreadable { .. } | EngineError::UnsupportedArchitecture { .. } => {
                Self::new(PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, message).hint(FETCH_HINT)
            }
            EngineError::EmptyQuestion | EngineError::QuestionTooLong { .. } => Self::invalid_input(message),
            EngineError::InvalidSetting(_) => Self::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message),
            EngineError::PromptTooLong { .. } => Self::new(PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED, message)
                .hint("Set search_path to the schemas the question is about, or ask in a database with fewer tables."),
            EngineError::Cancelled(_) => Self::new(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, message),
            EngineError::NoSql { .. } | EngineError::Tokenizer(_) | EngineError::Candle(_) => {
                Self::new(PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, message)
            }
        }
    }
}
