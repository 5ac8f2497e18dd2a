//! Every way the engine can fail, each with a message that says what went wrong and what to do.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Serializable so that a failure in the model worker reaches its caller as the same error
/// ([`crate::worker`]).
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error("model file {path} does not exist; run scripts/fetch-model to download the default model, or point the model path at a Qwen2-architecture GGUF file")]
    ModelNotFound { path: PathBuf },

    #[error("the embedding model is not in {path}; run scripts/fetch-model --embedding to download all-MiniLM-L6-v2")]
    EmbeddingModelNotFound { path: PathBuf },

    #[error("model file {path} cannot be used: {reason}; run scripts/fetch-model again to get a verified copy, or point the model path at a complete GGUF file")]
    ModelUnreadable { path: PathBuf, reason: String },

    #[error("model file {path} has architecture '{architecture}', but nl2sql runs only Qwen2-architecture GGUF models (such as Qwen2.5-Coder-1.5B-Instruct)")]
    UnsupportedArchitecture { path: PathBuf, architecture: String },

    #[error("not enough memory to load model file {path}: loading it needs about {needed_mib} MiB, and {limit} leaves {room_mib} MiB")]
    NotEnoughMemory { path: PathBuf, needed_mib: u64, room_mib: u64, limit: String },

    #[error("invalid setting: {0}")]
    InvalidSetting(String),

    #[error("the schema text cannot be read: {0}")]
    InvalidSchema(String),

    #[error("the question is empty; ask something about the data, e.g. 'How many orders were placed in July?'")]
    EmptyQuestion,

    #[error("the question is {chars} characters long; the limit is {limit}: ask a shorter question")]
    QuestionTooLong { chars: usize, limit: usize },

    #[error("the prompt is {prompt_tokens} tokens and up to {max_new_tokens} more may be generated, but the model's context holds {context} tokens; use fewer tables (search_path) or a shorter question")]
    PromptTooLong { prompt_tokens: usize, max_new_tokens: usize, context: usize },

    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    /// candle's error as text: it cannot cross a socket as a value.
    #[error("model computation failed: {0}")]
    Candle(String),

    #[error("the inference server at {endpoint} could not be used after {tries} tries: {reason}")]
    RemoteUnavailable { endpoint: String, tries: u32, reason: String },

    #[error("the inference server at {endpoint} did not answer within {timeout_ms} ms")]
    RemoteTimeout { endpoint: String, timeout_ms: u64 },

    #[error("the inference server at {endpoint} refused the API key (HTTP {status})")]
    RemoteUnauthorized { endpoint: String, status: u16 },

    #[error("the inference server at {endpoint} rejected the request (HTTP {status}): {reply}")]
    RemoteRejected { endpoint: String, status: u16, reply: String },

    #[error("the inference server at {endpoint} failed {failures} requests in a row; nl2sql does not call it again for {retry_in_secs} s")]
    RemoteCircuitOpen { endpoint: String, failures: u32, retry_in_secs: u64 },

    #[error("the inference server's reply cannot be read: {0}")]
    RemoteReply(String),

    #[error("the model worker at {socket} cannot be used: {reason}")]
    WorkerUnavailable { socket: PathBuf, reason: String },

    #[error("generation was cancelled")]
    Cancelled,
}

impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::Candle(error.to_string())
    }
}
