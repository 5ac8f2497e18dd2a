//! Where nl2sql keeps downloaded files: the one place the cache directory is decided, shared by
//! the engine, the extension and the eval (scripts/fetch-model follows the same rule in bash).

use std::path::PathBuf;

/// File name of the default model in the cache (the same name `scripts/fetch-model` writes).
pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$NL2SQL_CACHE_DIR`, else `$XDG_CACHE_HOME/nl2sql`, else `~/.cache/nl2sql`.
pub fn cache_dir() -> PathBuf {
    var("NL2SQL_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("nl2sql")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("nl2sql")))
        .unwrap_or_else(|| PathBuf::from(".cache/nl2sql"))
}

/// Where the default model is: `$NL2SQL_MODEL` if set, else the cache.
pub fn default_model_path() -> PathBuf {
    var("NL2SQL_MODEL").unwrap_or_else(|| cache_dir().join(DEFAULT_MODEL_FILE))
}
