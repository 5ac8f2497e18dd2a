//! A question as the engine accepts it: trimmed, not empty, not over-long. Checked once, where it
//! enters; every prompt built from a [`Question`] is then infallible.

use crate::error::{Error, Result};

/// Longer questions are almost always pasted by mistake, and each token costs prompt time.
pub const MAX_QUESTION_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question(String);

impl Question {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::EmptyQuestion);
        }
        let chars = text.chars().count();
        if chars > MAX_QUESTION_CHARS {
            return Err(Error::QuestionTooLong { chars, limit: MAX_QUESTION_CHARS });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_trimmed() {
        assert_eq!(Question::parse("  Total revenue?\n").unwrap().as_str(), "Total revenue?");
    }

    #[test]
    fn empty_and_whitespace_questions_are_rejected() {
        for q in ["", "   ", "\n\t"] {
            assert!(matches!(Question::parse(q), Err(Error::EmptyQuestion)), "{q:?}");
        }
    }

    #[test]
    fn over_long_question_is_rejected_with_the_limit() {
        let err = Question::parse(&"how much ".repeat(12_000)).unwrap_err();
        assert!(err.to_string().contains("the limit is 2000"), "{err}");
        assert!(Question::parse(&"x".repeat(MAX_QUESTION_CHARS)).is_ok(), "the limit itself is allowed");
    }
}
