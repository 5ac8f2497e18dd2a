//! nl2sql.* settings (GUCs): registered when the library loads, read on every call. The engine's
//! settings take their defaults and bounds from the engine's own constants, so there is one
//! definition of each. The `nl2sql` prefix is reserved: a misspelt `SET nl2sql.max_row` is an
//! error, not a silently ignored placeholder.

use nl2sql_engine::settings::{Bounds, CANDIDATES, DRAFT_TOKENS, MAX_NEW_TOKENS, REPAIR_ATTEMPTS, RESCUE_CANDIDATES, THREADS, WORKER_BATCH};
use nl2sql_engine::{DeviceChoice, Settings};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use std::ffi::{CStr, CString};
use std::path::PathBuf;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Device {
    #[name = c"cpu"]
    Cpu,
    #[name = c"cuda"]
    Cuda,
}

/// Where questions are answered: this backend's own copy of the model, or an OpenAI-compatible
/// inference server (llama.cpp's server, vLLM, ...).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModelBackend {
    #[name = c"local"]
    Local,
    #[name = c"openai"]
    Openai,
}

const fn default(bounds: Bounds) -> i32 {
    bounds.default as i32
}

pub static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static DEVICE: GucSetting<Device> = GucSetting::<Device>::new(Device::Cpu);
pub static THREADS_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(THREADS));
pub static MAX_NEW_TOKENS_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(MAX_NEW_TOKENS));
pub static REPAIR_ATTEMPTS_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(REPAIR_ATTEMPTS));
pub static CANDIDATES_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(CANDIDATES));
pub static RESCUE_CANDIDATES_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(RESCUE_CANDIDATES));
pub static WORKER_BATCH_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(WORKER_BATCH));
pub static DRAFT_TOKENS_SETTING: GucSetting<i32> = GucSetting::<i32>::new(default(DRAFT_TOKENS));
pub static MAX_ROWS: GucSetting<i32> = GucSetting::<i32>::new(1000);
pub static STATEMENT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static ALLOWED_FUNCTION_SCHEMAS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CONSTRAINED_DECODING: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static MENTION_VALUES: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static STATEMENT_CACHE: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static EXACT_ARITHMETIC: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Measured on sql-eval dev (eval/results/dev-context*): linking 18-25-table schemas (2,200-2,700
/// tokens) down to 1,200 gained nothing (17 vs 18 of 60 correct) and cost 2.4x latency, because a
/// schema that changes per question defeats the prefix cache. So only larger schemas are linked.
pub static SCHEMA_BUDGET_TOKENS: GucSetting<i32> = GucSetting::<i32>::new(4000);
pub static EXAMPLES: GucSetting<i32> = GucSetting::<i32>::new(3);
pub static EMBEDDING_MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static BACKEND: GucSetting<ModelBackend> = GucSetting::<ModelBackend>::new(ModelBackend::Local);
pub static ENDPOINT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MODEL_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static API_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// A reply of max_new_tokens (256) takes about 10 s from llama.cpp on 2 CPU cores; a minute
/// leaves room for a busy server's queue without letting a hung one hold a session for long.
pub static REQUEST_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
pub static CSV_MAX_SIZE_KB: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
pub static CSV_MAX_LINE_KB: GucSetting<i32> = GucSetting::<i32>::new(1024);

fn define_bounded(name: &'static CStr, short: &'static CStr, long: &'static CStr, setting: &'static GucSetting<i32>, bounds: Bounds) {
    GucRegistry::define_int_guc(name, short, long, setting, bounds.min as i32, bounds.max as i32, GucContext::Userset, GucFlags::default());
}

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
    GucRegistry::define_enum_guc(
        c"nl2sql.device",
        c"Where the model runs: cpu or cuda.",
        c"cuda needs an extension built with the cargo feature 'cuda' (GPU 0; choose another with CUDA_VISIBLE_DEVICES). Fixed when the backend loads the model.",
        &DEVICE,
        GucContext::Suset,
        GucFlags::default(),
    );
    define_bounded(
        c"nl2sql.threads",
        c"CPU threads the model uses in this backend.",
        c"Fixed when the backend first loads the model. On a busy server 1 can beat 2: the kernels spin-wait.",
        &THREADS_SETTING,
        THREADS,
    );
    define_bounded(
        c"nl2sql.draft_tokens",
        c"Tokens guessed from the prompt and checked with each decoding step; 0 turns guessing off.",
        c"Where the last tokens written occur earlier in the prompt or reply, what followed them there is fed with the next token and kept while the model agrees: fewer forward passes for the same statement. Fixed when the model is loaded (for the model worker: the server's value).",
        &DRAFT_TOKENS_SETTING,
        DRAFT_TOKENS,
    );
    define_bounded(c"nl2sql.max_new_tokens", c"Most tokens the model may generate per answer.", c"", &MAX_NEW_TOKENS_SETTING, MAX_NEW_TOKENS);
    define_bounded(
        c"nl2sql.repair_attempts",
        c"How often the model may retry after its SQL failed to check, plan or run.",
        c"Each retry shows the model what went wrong (PostgreSQL's message, detail and hint).",
        &REPAIR_ATTEMPTS_SETTING,
        REPAIR_ATTEMPTS,
    );
    define_bounded(
        c"nl2sql.candidates",
        c"Statements the model writes for a question, to vote between by their results.",
        c"The greedy statement and the rest drawn from the model's distribution; each is run read-only (also by nl2sql_sql), and the result most of them give wins, the greedy one's on a tie. The model worker decodes them together.",
        &CANDIDATES_SETTING,
        CANDIDATES,
    );
    define_bounded(
        c"nl2sql.rescue_candidates",
        c"Statements drawn when the model's statement and every repair failed, before the question ends in an error.",
        c"Drawn from the model's distribution for the first prompt and judged like the first (checked and planned, or run); the one most of them agree on is the answer. 0: the question ends in an error. Costs nothing where the first statement is good.",
        &RESCUE_CANDIDATES_SETTING,
        RESCUE_CANDIDATES,
    );
    // The server's, not a session's: it shapes the one model process all sessions share.
    GucRegistry::define_int_guc(
        c"nl2sql.worker_batch",
        c"Questions the model worker answers at once, decoding them together in shared forward passes.",
        c"More questions wait their turn, in the order they came. A change restarts the model process (SELECT pg_reload_conf()). On 2 CPU cores 8 gave 2.5x the questions per minute of one at a time; a GPU gains from more.",
        &WORKER_BATCH_SETTING,
        WORKER_BATCH.min as i32,
        WORKER_BATCH.max as i32,
        GucContext::Sighup,
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
    GucRegistry::define_bool_guc(
        c"nl2sql.constrained_decoding",
        c"Whether the model may only write names of tables and columns the caller may read.",
        c"On: generation is kept to the schema given to the model (tables after FROM, columns of the right table after alias., date columns in EXTRACT, one statement). Off: the model writes freely and the checker alone judges.",
        &CONSTRAINED_DECODING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"nl2sql.exact_arithmetic",
        c"Whether generated SQL's integer divisions by a non-constant and casts to real are made exact before it runs.",
        c"PostgreSQL truncates 7 / 2 to 3, which a ratio asked in words never means: count(*) / count(DISTINCT d) runs as count(*)::numeric / count(DISTINCT d). CAST(x AS REAL), an 8-byte float in SQLite where models learned it, is 4 bytes here: it runs as CAST(x AS double precision). The SQL shown is the SQL that ran. A division by a constant (seconds / 60) is left alone. Off: generated SQL runs as written.",
        &EXACT_ARITHMETIC,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"nl2sql.statement_cache",
        c"Whether SQL the model already wrote for the very same request is given again without generating it.",
        c"The key is the whole prompt (the schema the caller may read, glossary, examples, the question with its white space normalized, instructions) and the settings that shape the reply, so a changed catalog or another role's schema misses by itself. Answers in words are never cached. Kept by the model worker for the server, else per backend.",
        &STATEMENT_CACHE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nl2sql.schema_budget_tokens",
        c"Largest schema shown to the model whole; past it, only the tables relevant to the question.",
        c"Relevance: embedding similarity of each column's name and comment to the question, names and indexed values the question mentions; the tables that join the chosen ones are kept. 0 shows the whole schema always.",
        &SCHEMA_BUDGET_TOKENS,
        0,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"nl2sql.mention_values",
        c"Whether values the question names (from the value index) are listed, with their columns, after the question in the prompt.",
        c"The index is built by nl2sql_index_values(), or by the first question after the tables change.",
        &MENTION_VALUES,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"nl2sql.examples",
        c"Most verified examples (nl2sql_examples) shown to the model per question.",
        c"The most similar examples whose tables the caller may read; 0 shows none.",
        &EXAMPLES,
        0,
        10,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"nl2sql.embedding_model_path",
        c"Folder of the all-MiniLM-L6-v2 embedding model used for schema linking and example search.",
        c"Empty means $NL2SQL_EMBEDDING_MODEL, else the cache of scripts/fetch-model --embedding. Without it, linking uses names and values only.",
        &EMBEDDING_MODEL_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Superuser-only: listing a schema lets generated SQL, which nobody reviews, run its code.
    GucRegistry::define_string_guc(
        c"nl2sql.allowed_function_schemas",
        c"Schemas besides pg_catalog whose functions, operators and types generated SQL may use.",
        c"A comma-separated list of schema names. Empty (the default): pg_catalog only, so no user-defined function or operator is ever called by generated SQL.",
        &ALLOWED_FUNCTION_SCHEMAS,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Superuser-only, the three of them: they decide where every question, schema and result
    // sample is sent, and an endpoint a user could choose would let the server call any host.
    GucRegistry::define_enum_guc(
        c"nl2sql.backend",
        c"Where questions are answered: local (the model in this backend) or openai (an OpenAI-compatible server at nl2sql.endpoint).",
        c"openai sends the same prompts (schema, question, examples, result samples for narration) to the server; checking and running the SQL stay in the database, as the caller.",
        &BACKEND,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"nl2sql.endpoint",
        c"Base URL of the OpenAI-compatible inference server, e.g. http://127.0.0.1:8080/v1.",
        c"Used when nl2sql.backend = openai; requests go to <endpoint>/chat/completions.",
        &ENDPOINT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"nl2sql.model_name",
        c"The model name sent to the inference server (vLLM needs the served name; llama.cpp ignores it).",
        c"",
        &MODEL_NAME,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Hidden from everyone but superusers (SHOW, pg_settings, current_setting), and never shown by
    // nl2sql_status() or in errors. Set it with ALTER SYSTEM: postgresql.auto.conf is readable by
    // the server's OS user only, where a SET could reach the log through log_statement.
    GucRegistry::define_string_guc(
        c"nl2sql.api_key",
        c"Bearer token for the inference server, if it needs one.",
        c"",
        &API_KEY,
        GucContext::Suset,
        GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_int_guc(
        c"nl2sql.request_timeout",
        c"Longest time one request to the inference server may take, retries included.",
        c"Past it the question fails with an ERROR; a query cancel or statement_timeout stops the request sooner.",
        &REQUEST_TIMEOUT_MS,
        100,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"nl2sql.csv_max_size",
        c"Largest file nl2sql_load_csv reads.",
        c"Reading stops with an error past this size; nothing is created.",
        &CSV_MAX_SIZE_KB,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"nl2sql.csv_max_line_length",
        c"Longest line nl2sql_load_csv accepts.",
        c"A longer line (or a file without line breaks) is an error; nothing is created.",
        &CSV_MAX_LINE_KB,
        1,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    // SAFETY: called from _PG_init, after our GUCs are defined; removes placeholders others set.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"nl2sql".as_ptr()) };
}

fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|s| s.to_string_lossy().trim().to_owned()).filter(|s| !s.is_empty())
}

pub fn model_path() -> PathBuf {
    string(&MODEL_PATH).map(PathBuf::from).unwrap_or_else(nl2sql_engine::paths::default_model_path)
}

/// The engine settings this session asks for (threads and device only apply at load).
pub fn engine_settings() -> Settings {
    Settings {
        threads: THREADS_SETTING.get() as usize,
        max_new_tokens: max_new_tokens(),
        device: match DEVICE.get() {
            Device::Cpu => DeviceChoice::Cpu,
            Device::Cuda => DeviceChoice::Cuda(0),
        },
        draft_tokens: DRAFT_TOKENS_SETTING.get() as usize,
    }
}

pub fn max_new_tokens() -> usize {
    MAX_NEW_TOKENS_SETTING.get() as usize
}

/// Questions the model worker answers at once (nl2sql.worker_batch).
pub fn worker_batch() -> usize {
    WORKER_BATCH_SETTING.get() as usize
}

pub fn repair_attempts() -> usize {
    REPAIR_ATTEMPTS_SETTING.get() as usize
}

pub fn candidates() -> usize {
    CANDIDATES_SETTING.get() as usize
}

pub fn rescue_candidates() -> usize {
    RESCUE_CANDIDATES_SETTING.get() as usize
}

pub fn max_rows() -> usize {
    MAX_ROWS.get() as usize
}

pub fn statement_timeout_ms() -> i32 {
    STATEMENT_TIMEOUT_MS.get()
}

pub fn schema_budget_tokens() -> usize {
    SCHEMA_BUDGET_TOKENS.get() as usize
}

pub fn mention_values() -> bool {
    MENTION_VALUES.get()
}

pub fn examples() -> usize {
    EXAMPLES.get() as usize
}

pub fn embedding_model_path() -> PathBuf {
    string(&EMBEDDING_MODEL_PATH).map(PathBuf::from).unwrap_or_else(nl2sql_engine::embedding::default_embedding_model_dir)
}

pub fn constrained_decoding() -> bool {
    CONSTRAINED_DECODING.get()
}

pub fn statement_cache() -> bool {
    STATEMENT_CACHE.get()
}

pub fn exact_arithmetic() -> bool {
    EXACT_ARITHMETIC.get()
}

pub fn allowed_function_schemas() -> String {
    string(&ALLOWED_FUNCTION_SCHEMAS).unwrap_or_default()
}

pub fn backend() -> ModelBackend {
    BACKEND.get()
}

/// The inference server this session would call (nl2sql.backend = openai); `None` until an
/// endpoint is set.
pub fn remote_settings() -> Option<nl2sql_engine::remote::RemoteSettings> {
    Some(nl2sql_engine::remote::RemoteSettings {
        endpoint: string(&ENDPOINT)?,
        model: string(&MODEL_NAME).unwrap_or_else(|| "default".to_owned()),
        api_key: string(&API_KEY),
        timeout: std::time::Duration::from_millis(request_timeout_ms() as u64),
    })
}

pub fn request_timeout_ms() -> i32 {
    REQUEST_TIMEOUT_MS.get()
}

pub fn csv_max_bytes() -> u64 {
    CSV_MAX_SIZE_KB.get() as u64 * 1024
}

pub fn csv_max_line_bytes() -> usize {
    CSV_MAX_LINE_KB.get() as usize * 1024
}
