//! nl2sql.* settings (GUCs): registered when the library loads, read on every call.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;
use std::path::PathBuf;

pub static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static DEVICE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static MAX_NEW_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(256);
pub static MAX_ROWS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static STATEMENT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static REPAIR_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(1);

pub fn register() {
    // Superuser-only: the path decides which file every backend reads into memory (3 GB).
    GucRegistry::define_string_guc(
        c"nl2sql.model_path",
        c"GGUF model file (Qwen2 architecture) that nl2sql loads.",
        c"Empty means $NL2SQL_MODEL, else the cache of scripts/fetch-model in the server user's home. Takes effect on the next call; each backend loads the model once.",
        &MODEL_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"nl2sql.device",
        c"Where the model runs: cpu, cuda or cuda:N.",
        c"cuda needs an extension built with the cargo feature 'cuda'. Fixed when the backend loads the model.",
        &DEVICE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nl2sql.threads",
        c"CPU threads the model uses in this backend.",
        c"Fixed when the backend first loads the model. On a busy server 1 can beat 2: the kernels spin-wait.",
        &THREADS,
        1,
        64,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nl2sql.max_new_tokens",
        c"Most tokens the model may generate per answer.",
        c"",
        &MAX_NEW_TOKENS,
        16,
        4096,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nl2sql.max_rows",
        c"Most rows nl2sql() returns; a NOTICE says when a result was cut.",
        c"",
        &MAX_ROWS,
        1,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nl2sql.statement_timeout",
        c"Longest time a generated query may run.",
        c"Applies to the generated statement only, not to generation or to the caller's other statements.",
        &STATEMENT_TIMEOUT_MS,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"nl2sql.repair_attempts",
        c"How often the model may retry after its SQL failed to check or plan.",
        c"Each retry shows the model the error message.",
        &REPAIR_ATTEMPTS,
        0,
        5,
        GucContext::Userset,
        GucFlags::default(),
    );
}

fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|s| s.to_string_lossy().trim().to_owned()).filter(|s| !s.is_empty())
}

pub fn model_path() -> PathBuf {
    string(&MODEL_PATH).map(PathBuf::from).unwrap_or_else(nl2sql_engine::model::default_model_path)
}

pub fn device() -> String {
    string(&DEVICE).unwrap_or_else(|| "cpu".to_owned())
}

pub fn threads() -> usize {
    THREADS.get() as usize
}

pub fn max_new_tokens() -> usize {
    MAX_NEW_TOKENS.get() as usize
}

pub fn max_rows() -> usize {
    MAX_ROWS.get() as usize
}

pub fn statement_timeout_ms() -> i32 {
    STATEMENT_TIMEOUT_MS.get()
}

pub fn repair_attempts() -> usize {
    REPAIR_ATTEMPTS.get() as usize
}
