//! Column types for a CSV, inferred from every value in the column: the narrowest of boolean,
//! integer, bigint, numeric, date, timestamp, time that all non-empty values fit, else text.

/// The types in the order they are preferred (narrowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Integer,
    Bigint,
    Numeric,
    Date,
    Timestamp,
    Time,
    Text,
}

const CANDIDATES: [ColumnType; 7] = [
    ColumnType::Boolean,
    ColumnType::Integer,
    ColumnType::Bigint,
    ColumnType::Numeric,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::Time,
];

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Bigint => "bigint",
            Self::Numeric => "numeric",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Time => "time",
            Self::Text => "text",
        }
    }

    fn accepts(self, value: &str) -> bool {
        match self {
            Self::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false" | "t" | "f" | "yes" | "no"),
            Self::Integer => is_integer(value) && value.parse::<i32>().is_ok(),
            Self::Bigint => is_integer(value) && value.parse::<i64>().is_ok(),
            Self::Numeric => is_decimal(value),
            Self::Date => iso_date(value).is_some(),
            Self::Timestamp => timestamp(value).is_some(),
            Self::Time => is_time(value),
            Self::Text => true,
        }
    }

    /// The value as PostgreSQL should read it (US dates become ISO; the rest is already fine).
    pub fn normalise(self, value: &str) -> String {
        match self {
            Self::Date => iso_date(value).unwrap_or_else(|| value.to_owned()),
            Self::Timestamp => timestamp(value).unwrap_or_else(|| value.to_owned()),
            _ => value.to_owned(),
        }
    }
}

/// Digits with an optional sign; a leading zero ("02134", a ZIP code) means it is an identifier
/// written with digits, which must stay text to keep the zero.
fn is_integer(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !(digits.len() > 1 && digits.starts_with('0'))
}

fn is_decimal(value: &str) -> bool {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    (!whole.is_empty() || !fraction.is_empty())
        && digits(whole)
        && digits(fraction)
        && !(whole.len() > 1 && whole.starts_with('0'))
        && exponent_ok
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// YYYY-MM-DD or MM/DD/YYYY (also M/D/YYYY), as ISO YYYY-MM-DD.
fn iso_date(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.split(['-', '/']).collect();
    if parts.len() != 3 || !parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (year, month, day) = if value.contains('-') && parts[0].len() == 4 && parts[1].len() == 2 && parts[2].len() == 2 {
        (parts[0], parts[1], parts[2])
    } else if value.contains('/') && parts[2].len() == 4 && parts[0].len() <= 2 && parts[1].len() <= 2 {
        (parts[2], parts[0], parts[1])
    } else {
        return None;
    };
    let (year, month, day): (u32, u32, u32) = (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
        .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// HH:MM or HH:MM:SS with optional fraction.
fn is_time(value: &str) -> bool {
    let (clock, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let parts: Vec<&str> = clock.split(':').collect();
    let number = |s: &str, max: u32| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok_and(|n| n <= max);
    (parts.len() == 2 || parts.len() == 3)
        && number(parts[0], 23)
        && number(parts[1], 59)
        && parts.get(2).is_none_or(|s| number(s, 59))
        && !fraction.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// A date and a time separated by a space or 'T' (no time zone), as ISO.
fn timestamp(value: &str) -> Option<String> {
    let (date, time) = value.split_once([' ', 'T'])?;
    (is_time(time)).then_some(())?;
    Some(format!("{} {time}", iso_date(date)?))
}

/// Narrows the possible types of one column as values arrive.
#[derive(Debug, Clone)]
pub struct ColumnInference {
    possible: Vec<ColumnType>,
    seen_value: bool,
}

impl Default for ColumnInference {
    fn default() -> Self {
        Self { possible: CANDIDATES.to_vec(), seen_value: false }
    }
}

impl ColumnInference {
    /// Empty fields are NULL and say nothing about the type.
    pub fn observe(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        self.seen_value = true;
        self.possible.retain(|t| t.accepts(value));
    }

    pub fn column_type(&self) -> ColumnType {
        if !self.seen_value {
            return ColumnType::Text;
        }
        self.possible.first().copied().unwrap_or(ColumnType::Text)
    }
}

/// A CSV header as a PostgreSQL identifier: lower case, runs of anything but letters and digits
/// become one underscore, a leading digit gets a "c_" prefix, at most 63 bytes; empty headers
/// become column_N and repeats get _2, _3, ...
pub fn column_names(headers: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(headers.len());
    for (i, header) in headers.iter().enumerate() {
        let mut name = String::new();
        for c in header.trim().to_lowercase().chars() {
            if c.is_alphanumeric() {
                name.push(c);
            } else if !name.ends_with('_') {
                name.push('_');
            }
        }
        let mut name = name.trim_matches('_').to_owned();
        if name.is_empty() {
            name = format!("column_{}", i + 1);
        } else if name.starts_with(|c: char| c.is_ascii_digit()) {
            name = format!("c_{name}");
        }
        let base = truncate_bytes(&name, 63).to_owned();
        let mut candidate = base.clone();
        let mut n = 2;
        while names.contains(&candidate) {
            let suffix = format!("_{n}");
            candidate = format!("{}{suffix}", truncate_bytes(&base, 63 - suffix.len()));
            n += 1;
        }
        names.push(candidate);
    }
    names
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> ColumnType {
        let mut column = ColumnInference::default();
        values.iter().for_each(|v| column.observe(v));
        column.column_type()
    }

    #[test]
    fn narrowest_type_wins() {
        assert_eq!(infer(&["1", "-2", "300"]), ColumnType::Integer);
        assert_eq!(infer(&["1", "3000000000"]), ColumnType::Bigint);
        assert_eq!(infer(&["1", "2.5", "1e3", ".5"]), ColumnType::Numeric);
        assert_eq!(infer(&["true", "F", "yes"]), ColumnType::Boolean);
        assert_eq!(infer(&["2015-01-01", "01/31/2015"]), ColumnType::Date);
        assert_eq!(infer(&["11:38:36", "09:05"]), ColumnType::Time);
        assert_eq!(infer(&["2015-01-01 11:38:36", "2015-01-02T00:00:00.5"]), ColumnType::Timestamp);
        assert_eq!(infer(&["1", "x"]), ColumnType::Text);
    }

    #[test]
    fn empty_values_are_nulls_and_all_empty_is_text() {
        assert_eq!(infer(&["", "7", ""]), ColumnType::Integer);
        assert_eq!(infer(&["", ""]), ColumnType::Text);
    }

    #[test]
    fn leading_zeros_stay_text() {
        assert_eq!(infer(&["02134", "10001"]), ColumnType::Text);
        assert_eq!(infer(&["0", "0.5"]), ColumnType::Numeric);
    }

    #[test]
    fn impossible_dates_and_times_are_text() {
        assert_eq!(infer(&["2015-02-30"]), ColumnType::Text);
        assert_eq!(infer(&["2016-02-29"]), ColumnType::Date);
        assert_eq!(infer(&["13/01/2015"]), ColumnType::Text);
        assert_eq!(infer(&["24:00:00"]), ColumnType::Text);
        assert_eq!(infer(&["2015-1-1"]), ColumnType::Text);
    }

    #[test]
    fn us_dates_are_normalised_to_iso() {
        assert_eq!(ColumnType::Date.normalise("1/5/2015"), "2015-01-05");
        assert_eq!(ColumnType::Timestamp.normalise("01/05/2015 10:00"), "2015-01-05 10:00");
    }

    #[test]
    fn headers_become_identifiers() {
        let names = column_names(&["Order ID", "Unit Price ($)", "", "2nd Line", "name", "Name", "Größe", &"x".repeat(80)]);
        assert_eq!(names[..7], ["order_id", "unit_price", "column_3", "c_2nd_line", "name", "name_2", "größe"]);
        assert_eq!(names[7].len(), 63);
    }
}
