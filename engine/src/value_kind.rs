//! What kind of value a column or type holds, as far as the schema constraint needs to know to
//! refuse what PostgreSQL would refuse: comparing values of different kinds (`text = bigint`,
//! `date = integer`), a string that is no number compared with a number, LIKE over a number,
//! and casts between numbers and dates or times (`bigint::interval`).

/// The kind of a column's or type's values. `Other` (arrays, JSON, UUID, a type not listed) is
/// never judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Number,
    Text,
    /// Dates, times, timestamps and intervals.
    Temporal,
    Boolean,
    Other,
}

impl ValueKind {
    /// The kind of a column's type, as format_type() writes it (`integer`, `character varying(20)`,
    /// `timestamp with time zone`, `numeric(10,2)`, `text[]`).
    pub(crate) fn of_data_type(data_type: &str) -> Self {
        let t = data_type.trim().to_ascii_lowercase();
        if t.ends_with(']') {
            return Self::Other;
        }
        let first = t.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("");
        Self::of_type_word(first)
    }

    /// The kind of a type named by its first word (after `::` or in CAST(... AS type)).
    pub(crate) fn of_type_word(word: &str) -> Self {
        match word {
            "smallint" | "integer" | "int" | "int2" | "int4" | "int8" | "bigint" | "numeric" | "decimal" | "real" | "double" | "float" | "float4" | "float8" | "smallserial" | "serial" | "bigserial" => Self::Number,
            "text" | "character" | "char" | "varchar" | "bpchar" | "citext" | "name" => Self::Text,
            "date" | "time" | "timetz" | "timestamp" | "timestamptz" | "interval" => Self::Temporal,
            "boolean" | "bool" => Self::Boolean,
            _ => Self::Other,
        }
    }

    /// Whether PostgreSQL has no comparison between the two without a cast.
    pub(crate) fn clashes_with(self, other: Self) -> bool {
        self != other && self != Self::Other && other != Self::Other
    }

    /// Whether argument `argument` (from 0) of function `function` can be of no value of this kind:
    /// PostgreSQL has no `sum(text)`, `avg(boolean)`, `lower(bigint)`, `length(date)`,
    /// `round(text)` nor `to_char(text, ...)`, and casts no argument implicitly to make one fit.
    /// Functions not listed are never judged.
    pub(crate) fn refused_by(self, function: &str, argument: usize) -> bool {
        use ValueKind::{Boolean, Number, Temporal, Text};
        match (function, argument) {
            ("sum" | "avg" | "stddev" | "stddev_pop" | "stddev_samp" | "variance" | "var_pop" | "var_samp", 0) => matches!(self, Text | Boolean),
            ("round" | "floor" | "ceil" | "ceiling" | "trunc" | "sqrt" | "ln" | "log" | "exp" | "power" | "mod", _) => matches!(self, Text | Boolean | Temporal),
            ("lower" | "upper" | "initcap" | "btrim" | "ltrim" | "rtrim" | "length" | "char_length" | "character_length" | "substr" | "split_part" | "replace" | "left" | "right" | "strpos" | "starts_with", 0) => {
                matches!(self, Number | Temporal | Boolean)
            }
            ("to_char", 0) => matches!(self, Text | Boolean),
            _ => false,
        }
    }

    /// Whether a cast of a value of this kind to `target` is an error (a number is no date,
    /// a date no number; text casts to anything).
    pub(crate) fn cannot_cast_to(self, target: Self) -> bool {
        matches!((self, target), (Self::Number, Self::Temporal) | (Self::Temporal, Self::Number) | (Self::Boolean, Self::Temporal) | (Self::Temporal, Self::Boolean))
    }
}

/// Patterns of dates and times that no number pattern of to_char contains (those are 9, 0, `.`,
/// `,`, PR, S, L, D, G, MI, PL, SG, RN, TH, V, EEEE and FM).
const DATE_PATTERNS: [&str; 7] = ["YY", "MM", "DD", "HH", "MON", "DAY", "DY"];

/// Whether a to_char format is one for dates and times (`'YYYY-MM'`, `'HH24:MI'`, `'Day'`). Given
/// a number, to_char knows only number patterns and prints these letters as they are.
pub fn is_date_format(format: &str) -> bool {
    let upper = format.to_uppercase();
    DATE_PATTERNS.iter().any(|pattern| upper.contains(pattern))
}

/// Whether the contents of a string literal read as a number (`'42'`, `' 1.5 '`), so that it may
/// stand where a number is expected.
pub(crate) fn reads_as_number(contents: &str) -> bool {
    let t = contents.trim();
    !t.is_empty() && t.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_formatted_types() {
        assert_eq!(ValueKind::of_data_type("integer"), ValueKind::Number);
        assert_eq!(ValueKind::of_data_type("numeric(10,2)"), ValueKind::Number);
        assert_eq!(ValueKind::of_data_type("double precision"), ValueKind::Number);
        assert_eq!(ValueKind::of_data_type("character varying(20)"), ValueKind::Text);
        assert_eq!(ValueKind::of_data_type("timestamp with time zone"), ValueKind::Temporal);
        assert_eq!(ValueKind::of_data_type("interval"), ValueKind::Temporal, "interval is not int");
        assert_eq!(ValueKind::of_data_type("integer[]"), ValueKind::Other);
        assert_eq!(ValueKind::of_data_type("jsonb"), ValueKind::Other);
        assert!(ValueKind::Text.clashes_with(ValueKind::Number));
        assert!(!ValueKind::Other.clashes_with(ValueKind::Number));
        assert!(ValueKind::Number.cannot_cast_to(ValueKind::Temporal));
        assert!(!ValueKind::Text.cannot_cast_to(ValueKind::Temporal));
        assert!(ValueKind::Text.refused_by("sum", 0) && ValueKind::Number.refused_by("lower", 0) && ValueKind::Text.refused_by("to_char", 0));
        assert!(!ValueKind::Number.refused_by("sum", 0) && !ValueKind::Text.refused_by("lower", 0) && !ValueKind::Temporal.refused_by("to_char", 0));
        assert!(!ValueKind::Number.refused_by("split_part", 2) && !ValueKind::Text.refused_by("count", 0) && !ValueKind::Other.refused_by("sum", 0));
        assert!(reads_as_number(" 12 ") && reads_as_number("-1.5e3"));
        assert!(!reads_as_number("Machine Learning") && !reads_as_number("") && !reads_as_number("inf"));
    }
}
