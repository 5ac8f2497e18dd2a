//! Words of names and of questions, compared the same way wherever one refers to the other:
//! lower case, split at anything that is not a letter or digit, plurals as singular ("courses"
//! names `course`, "cities" `city`). Schema linking scores columns by them, value mentions go
//! to the column a question points to by them, and the schema constraint lets a column join a
//! key its name refers to (`fare.fare_airline` and `airline.airline_code`).

/// Words of a table's or column's name shorter than this refer to nothing; `to` (`to_airport`)
/// does.
const MIN_NAME_WORD_CHARS: usize = 2;

/// Words that say a name is an identifier, not what it identifies (`airline_code`, `aid`).
pub(crate) const KEY_WORDS: &[&str] = &["id", "code", "key"];

/// Lower-case words of `text`, letters and digits only.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// A word without its plural ending, so that "courses" refers to `course` and "cities" to `city`.
pub(crate) fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// The words of a name (or any text) that refer to something, as singular: `from_airports`
/// gives `from`, `airport`.
pub(crate) fn name_words(name: &str) -> Vec<String> {
    words(name).iter().filter(|w| w.len() >= MIN_NAME_WORD_CHARS).map(|w| singular(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_refer_to_their_singular() {
        assert_eq!((singular("courses"), singular("cities"), singular("class"), singular("gas")), ("course".into(), "city".into(), "class".into(), "gas".into()));
        assert_eq!(name_words("Flight_Legs.to x"), ["flight", "leg", "to"]);
    }
}
