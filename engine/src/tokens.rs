//! The tokenizer of the GGUF file, and the ChatML control tokens Qwen2.5 is trained with.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;

/// The three control tokens of Qwen's chat format, looked up by name (never hard-coded ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChatTokenIds {
    pub im_start: u32,
    pub im_end: u32,
    pub end_of_text: u32,
}

pub(crate) const IM_START: &str = "<|im_start|>";
pub(crate) const IM_END: &str = "<|im_end|>";
pub(crate) const END_OF_TEXT: &str = "<|endoftext|>";

pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    pub(crate) ids: ChatTokenIds,
    /// What each token id spells, as bytes (computed once: the schema constraint appends a
    /// candidate's bytes to the statement for every token it considers).
    spelling: Vec<Vec<u8>>,
}

/// GPT-2's byte-level BPE writes each byte as a printable character; this is its inverse, from
/// that character back to the byte (the table of `bytes_to_unicode` in GPT-2's encoder.py).
fn byte_level_inverse() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut shifted = 0u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).expect("a valid code point")
            };
            (c, b)
        })
        .collect()
}

impl ChatTokenizer {
    /// The tokenizer of a model file, without loading its weights.
    pub fn from_model_file(path: &std::path::Path) -> Result<Self> {
        Self::from_gguf(&crate::model::read_header(path)?.0)
    }

    pub(crate) fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_gguf(content)
            .map_err(|e| Error::Tokenizer(format!("cannot build the tokenizer from the GGUF metadata: {e}")))?;
        let id = |name: &str| {
            tokenizer.token_to_id(name).ok_or_else(|| {
                Error::Tokenizer(format!("the vocabulary has no {name} token: this is not a Qwen chat (Instruct) model"))
            })
        };
        let ids = ChatTokenIds { im_start: id(IM_START)?, im_end: id(IM_END)?, end_of_text: id(END_OF_TEXT)? };
        // Text is always encoded as text: a question containing "<|im_end|>" must not be able to
        // close its own message and smuggle in instructions. Control tokens are inserted by id.
        tokenizer.set_encode_special_tokens(true);
        let inverse = byte_level_inverse();
        let spelling = (0..tokenizer.get_vocab_size(true) as u32)
            .map(|id| match tokenizer.id_to_token(id) {
                // Added tokens (<|im_end|> and the like) are not byte-level text: they spell nothing.
                Some(token) if token.chars().all(|c| inverse.contains_key(&c)) => token.chars().map(|c| inverse[&c]).collect(),
                _ => Vec::new(),
            })
            .collect();
        Ok(Self { tokenizer, ids, spelling })
    }

    /// The bytes token `id` stands for.
    pub fn spelling(&self, id: u32) -> &[u8] {
        self.spelling.get(id as usize).map_or(&[], Vec::as_slice)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    pub(crate) fn is_stop(&self, id: u32) -> bool {
        id == self.ids.im_end || id == self.ids.end_of_text
    }
}

impl crate::constrained::Vocabulary for ChatTokenizer {
    fn spelling(&self, id: u32) -> &[u8] {
        ChatTokenizer::spelling(self, id)
    }

    fn is_stop(&self, id: u32) -> bool {
        ChatTokenizer::is_stop(self, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token spellings, concatenated, give back the text (the schema constraint relies on it).
    #[test]
    fn spellings_concatenate_to_the_text() {
        let tokenizer = ChatTokenizer::from_model_file(&crate::paths::default_model_path())
            .unwrap_or_else(|e| panic!("this test needs the real model (scripts/fetch-model): {e}"));
        for text in ["SELECT \"größe\", count(*) FROM t\nWHERE a <> 'x;y' -- ünï\n```", "  \t x.y::date", "日本語 🍕"] {
            let spelled: Vec<u8> = tokenizer.encode(text).unwrap().iter().flat_map(|&id| tokenizer.spelling(id).to_vec()).collect();
            assert_eq!(String::from_utf8(spelled).unwrap(), text);
        }
        assert!(tokenizer.spelling(tokenizer.ids.im_end).iter().all(|b| b.is_ascii()), "control tokens spell their ASCII names at most");
    }
}
