//! Runtime settings of the engine, validated in one place.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(ordinal)) => Ok(Self::Cuda(ordinal)),
                _ => Err(Error::InvalidSetting(format!(
                    "device '{s}' is not one of 'cpu', 'cuda' or 'cuda:N'"
                ))),
            },
        }
    }
}

impl DeviceChoice {
    pub fn open(self) -> Result<candle_core::Device> {
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

pub const MAX_THREADS: usize = 256;
pub const MAX_NEW_TOKENS_LIMIT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// CPU threads for the matrix kernels. candle's pool spin-waits, so on a busy machine fewer
    /// threads can be faster (measured: 1 thread beat 2 when the other core was loaded).
    pub threads: usize,
    /// Upper bound on generated tokens per answer; a SELECT rarely needs more than 200.
    pub max_new_tokens: usize,
    pub device: DeviceChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Self { threads: 2, max_new_tokens: 256, device: DeviceChoice::Cpu }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<()> {
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(Error::InvalidSetting(format!(
                "threads is {}; use 1 to {MAX_THREADS} (usually the number of physical cores)",
                self.threads
            )));
        }
        if self.max_new_tokens == 0 || self.max_new_tokens > MAX_NEW_TOKENS_LIMIT {
            return Err(Error::InvalidSetting(format!(
                "max_new_tokens is {}; use 1 to {MAX_NEW_TOKENS_LIMIT}",
                self.max_new_tokens
            )));
        }
        Ok(())
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
        // Safe in practice: called before candle starts any thread, from the thread that loads
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
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn zero_threads_is_rejected_with_the_range() {
        let err = Settings { threads: 0, ..Settings::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("use 1 to 256"), "{err}");
    }

    #[test]
    fn too_many_new_tokens_is_rejected() {
        let err = Settings { max_new_tokens: 100_000, ..Settings::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("max_new_tokens is 100000"), "{err}");
    }

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(" CUDA ".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
        let err = "tpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.to_string().contains("'cpu', 'cuda' or 'cuda:N'"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = DeviceChoice::Cuda(0).open().unwrap_err();
        assert!(err.to_string().contains("rebuild with the cargo feature 'cuda'"), "{err}");
    }
}
