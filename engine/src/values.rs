//! Which indexed values a question names: "papers in Machine Learning" names the value
//! 'Machine Learning' of domain.name. Matching is on words, ignoring case and punctuation, so
//! "machine-learning" and "Machine Learning" agree, and "ML" does not match "HTML".

/// Values shorter than this (after normalising) are too common as words to mean anything.
const MIN_VALUE_CHARS: usize = 3;

/// Lower-case words of `text`, letters and digits only.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Whether the question's words contain the value's words as a consecutive run.
fn names(question: &[String], value: &[String]) -> bool {
    !value.is_empty() && question.windows(value.len()).any(|window| window == value)
}

/// The values (with the caller's key for each) whose words the question contains, longest first;
/// at most `limit`. A value contained in a longer matched value is left out ('York' in 'New York').
pub fn mentioned<'a, K>(question: &str, values: &'a [(K, String)], limit: usize) -> Vec<&'a (K, String)> {
    let question = words(question);
    let mut found: Vec<(&(K, String), Vec<String>)> = values
        .iter()
        .map(|entry| (entry, words(&entry.1)))
        .filter(|(_, w)| w.iter().map(String::len).sum::<usize>() >= MIN_VALUE_CHARS && names(&question, w))
        .collect();
    found.sort_by_key(|(_, w)| std::cmp::Reverse(w.len()));
    let mut kept: Vec<(&(K, String), Vec<String>)> = Vec::new();
    for (entry, w) in found {
        if !kept.iter().any(|(_, longer)| longer.len() > w.len() && names(longer, &w)) {
            kept.push((entry, w));
        }
    }
    kept.into_iter().take(limit).map(|(entry, _)| entry).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<(u32, String)> {
        ["Machine Learning", "HTML", "New York", "York", "ok", "Boston", "United Airlines"].iter().enumerate().map(|(i, v)| (i as u32, v.to_string())).collect()
    }

    #[test]
    fn finds_values_by_words_ignoring_case_and_punctuation() {
        let values = values();
        let found: Vec<&str> = mentioned("How many papers on machine-learning were written in New York?", &values, 10).iter().map(|e| e.1.as_str()).collect();
        assert_eq!(found, ["Machine Learning", "New York"], "'York' is part of 'New York'");
        assert!(mentioned("What is ML?", &values, 10).is_empty(), "HTML is not named by ML");
        assert!(mentioned("is it ok?", &values, 10).is_empty(), "too short to mean anything");
        assert_eq!(mentioned("flights from boston on united airlines", &values, 1).len(), 1, "at most the limit");
    }
}
