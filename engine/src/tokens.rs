//! The tokenizer of the GGUF file, and the ChatML control tokens Qwen2.5 is trained with.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;

/// The three control tokens of Qwen's chat format, looked up by name (never hard-coded ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatTokenIds {
    pub im_start: u32,
    pub im_end: u32,
    pub end_of_text: u32,
}

pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    pub ids: ChatTokenIds,
}

impl ChatTokenizer {
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let tokenizer = Tokenizer::from_gguf(content)
            .map_err(|e| Error::Tokenizer(format!("cannot build the tokenizer from the GGUF metadata: {e}")))?;
        Self::new(tokenizer)
    }

    /// An external tokenizer.json, for models whose GGUF carries an incomplete vocabulary.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("cannot read {}: {e}", path.display())))?;
        Self::new(tokenizer)
    }

    fn new(mut tokenizer: Tokenizer) -> Result<Self> {
        let id = |name: &str| {
            tokenizer.token_to_id(name).ok_or_else(|| {
                Error::Tokenizer(format!("the vocabulary has no {name} token: this is not a Qwen chat (Instruct) model"))
            })
        };
        let ids = ChatTokenIds { im_start: id(IM_START)?, im_end: id(IM_END)?, end_of_text: id(END_OF_TEXT)? };
        // Text is always encoded as text: a question containing "<|im_end|>" must not be able to
        // close its own message and smuggle in instructions. Control tokens are inserted by id.
        tokenizer.set_encode_special_tokens(true);
        Ok(Self { tokenizer, ids })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    pub fn is_stop(&self, id: u32) -> bool {
        id == self.ids.im_end || id == self.ids.end_of_text
    }
}
