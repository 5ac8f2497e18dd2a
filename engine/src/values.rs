//! Which indexed values a question names: "papers in Machine Learning" names the value
//! 'Machine Learning' of domain.name. Matching is on words, ignoring case and punctuation, so
//! "machine-learning" and "Machine Learning" agree, and "ML" does not match "HTML".
//!
//! A value that several columns hold ('Computer Science' as a department, a program, an area and
//! a student's major) is shown for the columns the question points to nearest to where it names
//! the value ("courses in the Computer Science department": `course.department`), by the words of
//! their table's or their own name; for all of them when it points to none. Listed for every
//! column, a 1.5B model took each listing for a condition to write, and ANDed them all. Words of
//! other values do not count as distance ("from New York (JFK)"), and at the same distance a word
//! before the value wins ("from LAX to ORD": `from_airport` for LAX, `to_airport` for ORD).

use crate::name_words::{name_words, singular, words};

/// Values shorter than this (after normalising) are too common as words to mean anything.
const MIN_VALUE_CHARS: usize = 3;

/// A column, by its table's name and its own.
pub type ColumnName = (String, String);

/// Where the question's words contain the value's words as a consecutive run: the run's start.
fn position(question: &[String], value: &[String]) -> Option<usize> {
    match value.is_empty() {
        true => None,
        false => question.windows(value.len()).position(|window| window == value),
    }
}

/// How near the question names the column's table or the column itself to the value's run
/// (`start`, `len` words): the words from it to the nearest such word, not counting `covered`
/// ones (other values' words), and whether that word comes after the value (a word before wins a
/// tie). None when no word names it.
fn nearness(question: &[String], covered: &[bool], start: usize, len: usize, column: &ColumnName) -> Option<(usize, bool)> {
    let named: Vec<String> = name_words(&column.0).into_iter().chain(name_words(&column.1)).collect();
    let between = |from: usize, to: usize| (from..to).filter(|&i| !covered[i]).count();
    question
        .iter()
        .enumerate()
        .filter(|(i, word)| (*i < start || *i >= start + len) && !covered[*i] && named.contains(&singular(word)))
        .map(|(i, _)| match i < start {
            true => (between(i + 1, start) + 1, false),
            false => (between(start + len, i) + 1, true),
        })
        .min()
}

/// The values (with the column that holds each) whose words the question contains, longest
/// first; at most `limit`. A value contained in a longer matched value is left out ('York' in
/// 'New York'); one that several columns hold is kept for the columns the question points to
/// nearest (see above).
pub fn mentioned<'a>(question: &str, values: &'a [(ColumnName, String)], limit: usize) -> Vec<&'a (ColumnName, String)> {
    let question = words(question);
    let mut found: Vec<(&(ColumnName, String), Vec<String>, usize)> = values
        .iter()
        .map(|entry| (entry, words(&entry.1)))
        .filter(|(_, w)| w.iter().map(String::len).sum::<usize>() >= MIN_VALUE_CHARS)
        .filter_map(|(entry, w)| position(&question, &w).map(|start| (entry, w, start)))
        .collect();
    found.sort_by_key(|(_, w, _)| std::cmp::Reverse(w.len()));
    let mut kept: Vec<(&(ColumnName, String), Vec<String>, usize)> = Vec::new();
    for (entry, w, start) in found {
        if !kept.iter().any(|(_, longer, _)| longer.len() > w.len() && position(longer, &w).is_some()) {
            kept.push((entry, w, start));
        }
    }
    let mut covered = vec![false; question.len()];
    for (_, w, start) in &kept {
        covered[*start..*start + w.len()].iter_mut().for_each(|c| *c = true);
    }
    let distances: Vec<Option<(usize, bool)>> = kept.iter().map(|(entry, w, start)| nearness(&question, &covered, *start, w.len(), &entry.0)).collect();
    // Per value, the nearest any of its columns is named; None: the question names none of them.
    let nearest = |w: &Vec<String>| kept.iter().zip(&distances).filter(|((_, other, _), _)| other == w).filter_map(|(_, d)| *d).min();
    kept.iter()
        .zip(&distances)
        .filter(|((_, w, _), d)| nearest(w).is_none_or(|best| **d == Some(best)))
        .take(limit)
        .map(|((entry, _, _), _)| *entry)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(table: &str, column: &str) -> ColumnName {
        (table.to_owned(), column.to_owned())
    }

    fn values() -> Vec<(ColumnName, String)> {
        ["Machine Learning", "HTML", "New York", "York", "ok", "Boston", "United Airlines"].iter().map(|v| (column("t", "c"), v.to_string())).collect()
    }

    fn found<'a>(question: &str, values: &'a [(ColumnName, String)]) -> Vec<(&'a str, &'a str, &'a str)> {
        mentioned(question, values, 10).iter().map(|((table, column), value)| (table.as_str(), column.as_str(), value.as_str())).collect()
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

    #[test]
    fn a_value_several_columns_hold_is_kept_for_the_columns_the_question_points_to() {
        let science = "Computer Science";
        let values = vec![
            (column("area", "area"), science.to_owned()),
            (column("course", "department"), science.to_owned()),
            (column("program", "name"), science.to_owned()),
            (column("student", "declare_major"), science.to_owned()),
            (column("city", "city_name"), "Boston".to_owned()),
            (column("airport", "airport_name"), "Boston Logan".to_owned()),
        ];
        assert_eq!(found("Which courses does the Computer Science department offer?", &values), [("course", "department", science)], "its own name, next to the value");
        assert_eq!(found("Who studies in the Computer Science program?", &values), [("program", "name", science)], "its table's name");
        assert_eq!(
            found("Which students are in the Computer Science program?", &values),
            [("program", "name", science)],
            "the nearest: 'students' is four words away, 'program' one"
        );
        assert_eq!(found("What is Computer Science about?", &values).len(), 4, "named by none: all of them");
        assert_eq!(found("Flights to boston this week in cities", &values), [("city", "city_name", "Boston")], "one column: kept whatever the question says");
    }

    #[test]
    fn a_word_before_the_value_wins_and_other_values_are_no_distance() {
        let mut values = Vec::new();
        for code in ["LAX", "ORD", "JFK"] {
            for (table, column_name) in [("fare", "from_airport"), ("fare", "to_airport"), ("flight", "from_airport"), ("flight", "to_airport")] {
                values.push((column(table, column_name), code.to_owned()));
            }
        }
        values.push((column("city", "city_name"), "New York".to_owned()));
        values.push((column("state", "state_name"), "New York".to_owned()));
        let from_lax_to_ord = found("Which airlines offer flights from LAX to ORD?", &values);
        assert_eq!(
            from_lax_to_ord,
            [("fare", "from_airport", "LAX"), ("flight", "from_airport", "LAX"), ("fare", "to_airport", "ORD"), ("flight", "to_airport", "ORD")],
            "'from' and 'to' are both one word from LAX: the one before it wins"
        );
        let parenthesised = found("Total round-trip cost from New York (JFK) to Los Angeles?", &values);
        assert!(parenthesised.contains(&("fare", "from_airport", "JFK")) && !parenthesised.contains(&("fare", "to_airport", "JFK")), "'New York' is no distance: {parenthesised:?}");
        assert_eq!(parenthesised.iter().filter(|(_, _, value)| *value == "New York").count(), 2, "named by neither: both");
    }
}
