//! The engine's settings: their defaults and bounds are defined here once; the extension
//! registers its GUCs from these constants, and [`Settings::validate`] checks against them.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceChoice {
    Cpu,
    /// An NVIDIA GPU by ordinal; needs the crate feature `cuda`.
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(ordinal)) => Ok(Self::Cuda(ordinal)),
                _ => Err(Error::InvalidSetting(format!("device '{s}' is not one of 'cpu', 'cuda' or 'cuda:N'"))),
            },
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(0) => f.write_str("cuda"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    pub(crate) fn open(self) -> Result<candle_core::Device> {
        match self {
            Self::Cpu => Ok(candle_core::Device::Cpu),
            #[cfg(feature = "cuda")]
            Self::Cuda(ordinal) => Ok(candle_core::Device::new_cuda(ordinal)?),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => Err(Error::InvalidSetting(
                "device 'cuda' was requested, but this build has no CUDA support; rebuild with the cargo feature 'cuda' or use 'cpu'".into(),
            )),
        }
    }
}

/// A whole-number setting: its default and its allowed range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub default: usize,
    pub min: usize,
    pub max: usize,
}

impl Bounds {
    fn check(&self, name: &str, value: usize, advice: &str) -> Result<()> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(Error::InvalidSetting(format!("{name} is {value}; use {} to {}{advice}", self.min, self.max)))
        }
    }
}

/// CPU threads for the matrix kernels. candle's pool spin-waits, so on a busy machine fewer
/// threads can be faster (measured: 1 thread beat 2 when the other core was loaded).
pub const THREADS: Bounds = Bounds { default: 2, min: 1, max: 64 };
/// Tokens generated per reply at most; a SELECT rarely needs more than 200.
pub const MAX_NEW_TOKENS: Bounds = Bounds { default: 256, min: 16, max: 4096 };
/// Times a failed statement is shown back to the model for repair.
pub const REPAIR_ATTEMPTS: Bounds = Bounds { default: 1, min: 0, max: 5 };
/// Requests the model worker answers at once, their forward passes batched. On 2 CPU cores one
/// pass over 8 sequences costs about 2x a pass over one (engine-bench), so 8 in flight write ~4x
/// the tokens per second of one; more adds little there and makes each question slower. A GPU
/// gains from many more.
pub const WORKER_BATCH: Bounds = Bounds { default: 8, min: 1, max: 256 };
/// Replies the first turn writes, to vote between by their results (conversation.rs): the
/// greedy one and the rest drawn. The model worker decodes them together (4 rows cost ~1.7x one
/// pass on 2 CPU cores), a backend without it one after the other.
pub const CANDIDATES: Bounds = Bounds { default: 1, min: 1, max: 8 };
/// Replies drawn when the greedy statement and every repair failed, to vote between before the
/// question ends in an error (conversation.rs); 0 turns the rescue off. It costs nothing where
/// the first statement is good. 3: with the greedy candidate, the 4 that gained 5.5 points on
/// sql-eval dev when every question drew them (`nl2sql.candidates = 4`, README).
pub const RESCUE_CANDIDATES: Bounds = Bounds { default: 3, min: 0, max: 7 };
/// Tokens guessed from the prompt and fed with each decoding step, to be kept while the model
/// agrees (generate.rs's prompt-lookup drafts); 0 turns guessing off. Off by default: on 2 CPU
/// cores a pass over 5 rows cost 1.7–2.3x a pass over one, and only 9.3% of engine-bench's tokens
/// were guessed right, so 4 guesses decoded 9.7 tokens/s against 11.1 without. Where extra rows
/// cost little (a GPU) every kept guess is a pass saved.
pub const DRAFT_TOKENS: Bounds = Bounds { default: 0, min: 0, max: 8 };

/// What is fixed when the model is loaded (threads, device, draft tokens) and what may change
/// per call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub threads: usize,
    pub max_new_tokens: usize,
    pub device: DeviceChoice,
    #[serde(default = "default_draft_tokens")]
    pub draft_tokens: usize,
}

fn default_draft_tokens() -> usize {
    DRAFT_TOKENS.default
}

impl Default for Settings {
    fn default() -> Self {
        Self { threads: THREADS.default, max_new_tokens: MAX_NEW_TOKENS.default, device: DeviceChoice::Cpu, draft_tokens: DRAFT_TOKENS.default }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<()> {
        THREADS.check("threads", self.threads, " (usually the number of physical cores)")?;
        MAX_NEW_TOKENS.check("max_new_tokens", self.max_new_tokens, "")?;
        DRAFT_TOKENS.check("draft_tokens", self.draft_tokens, " (0 turns guessing off)")
    }

    /// These settings with another token limit (the one setting that may change per call),
    /// checked.
    pub fn with_max_new_tokens(&self, max_new_tokens: usize) -> Result<Self> {
        let settings = Self { max_new_tokens, ..self.clone() };
        settings.validate()?;
        Ok(settings)
    }
}

static APPLIED_THREADS: OnceLock<usize> = OnceLock::new();

/// Fixes candle's CPU thread count for this process and returns the count in force.
///
/// candle sizes its kernel pool once per process from CANDLE_NUM_THREADS / RAYON_NUM_THREADS, on
/// first use; so the first call wins and later calls with another count change nothing (the
/// caller can tell the user, since the returned count differs from the requested one).
pub fn apply_threads(threads: usize) -> usize {
    *APPLIED_THREADS.get_or_init(|| {
        // SAFETY (set_var): called before candle starts any thread, from the thread that loads
        // the model; nothing else in the process reads these variables concurrently.
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        threads
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_inside_their_bounds() {
        Settings::default().validate().unwrap();
        for bounds in [THREADS, MAX_NEW_TOKENS, REPAIR_ATTEMPTS, WORKER_BATCH, CANDIDATES, RESCUE_CANDIDATES, DRAFT_TOKENS] {
            assert!(bounds.min <= bounds.default && bounds.default <= bounds.max, "{bounds:?}");
        }
    }

    #[test]
    fn values_outside_the_bounds_are_rejected_with_the_range() {
        let err = Settings { threads: 0, ..Settings::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("threads is 0; use 1 to 64"), "{err}");
        let err = Settings { threads: 65, ..Settings::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("threads is 65"), "{err}");
        let err = Settings { max_new_tokens: 15, ..Settings::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("max_new_tokens is 15; use 16 to 4096"), "{err}");
        let err = Settings { draft_tokens: 9, ..Settings::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("draft_tokens is 9; use 0 to 8"), "{err}");
    }

    #[test]
    fn device_names_parse_and_print() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(" CUDA ".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
        assert_eq!(DeviceChoice::Cuda(1).to_string(), "cuda:1");
        let err = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.to_string().contains("'cpu', 'cuda' or 'cuda:N'"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = DeviceChoice::Cuda(0).open().unwrap_err();
        assert!(err.to_string().contains("rebuild with the cargo feature 'cuda'"), "{err}");
    }
}
