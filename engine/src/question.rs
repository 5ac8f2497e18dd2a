//! A question as the engine accepts it: trimmed, its runs of white space made one space (so the
//! same question typed twice is the same prompt, and the same statement-cache key), not empty,
//! not over-long. Checked once, where it
//! enters; every prompt built from a [`Question`] is then infallible.

use crate::error::{Error, Result};

/// Longer questions are almost always pasted by mistake, and each token costs prompt time.
pub const MAX_QUESTION_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question(String);

impl Question {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(Error::EmptyQuestion);
        }
        let chars = text.chars().count();
        if chars > MAX_QUESTION_CHARS {
            return Err(Error::QuestionTooLong { chars, limit: MAX_QUESTION_CHARS });
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_trimmed_and_its_white_space_made_single_spaces() {
        assert_eq!(Question::parse("  Total revenue?\n").unwrap().as_str(), "Total revenue?");
        assert_eq!(Question::parse("Total\t revenue\n\nby  month?").unwrap().as_str(), "Total revenue by month?");
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
