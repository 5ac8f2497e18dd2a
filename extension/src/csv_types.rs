//! Column types for a CSV, inferred from every value in the column: the narrowest of boolean,
//! integer, bigint, numeric, date, timestamp, timestamp with time zone, time that all non-empty
//! values fit, else text. Each type takes the common forms PostgreSQL itself reads for it
//! (surrounding spaces, `on`/`off`, `NaN`, `2015-1-5`, `Jan 5, 2015`, `9:40`, `4:05 PM`,
//! `24:00`, time zones), and values are written in a form PostgreSQL reads the same way
//! whatever its DateStyle (dates as ISO).

/// The types in the order they are preferred (narrowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Integer,
    Bigint,
    Numeric,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    Text,
}

const CANDIDATES: [ColumnType; 8] = [
    ColumnType::Boolean,
    ColumnType::Integer,
    ColumnType::Bigint,
    ColumnType::Numeric,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::TimestampTz,
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
            Self::TimestampTz => "timestamptz",
            Self::Time => "time",
            Self::Text => "text",
        }
    }

    fn accepts(self, value: &str) -> bool {
        let value = value.trim();
        match self {
            // 1 and 0 are PostgreSQL booleans too, but a column of them is more likely a count.
            Self::Boolean => {
                matches!(value.to_ascii_lowercase().as_str(), "true" | "false" | "t" | "f" | "yes" | "no" | "y" | "n" | "on" | "off")
            }
            Self::Integer => is_integer(value) && value.parse::<i32>().is_ok(),
            Self::Bigint => is_integer(value) && value.parse::<i64>().is_ok(),
            Self::Numeric => is_decimal(value),
            Self::Date => iso_date(value).is_some(),
            Self::Timestamp => timestamp(value).is_some_and(|t| t.zone.is_none()),
            Self::TimestampTz => timestamp(value).is_some_and(|t| t.zone.is_some()),
            Self::Time => time_of_day(value).is_some(),
            Self::Text => true,
        }
    }

    /// The value as PostgreSQL should read it: dates as ISO (so "1/5/2015" cannot be read as
    /// 1 May under a DMY DateStyle), spaces around non-text values dropped; text as it was.
    pub fn normalise(self, value: &str) -> String {
        let trimmed = value.trim();
        match self {
            Self::Text => value.to_owned(),
            Self::Date => iso_date(trimmed).unwrap_or_else(|| trimmed.to_owned()),
            Self::Timestamp | Self::TimestampTz => timestamp(trimmed).map_or_else(|| trimmed.to_owned(), |t| t.iso()),
            _ => trimmed.to_owned(),
        }
    }
}

/// Digits with an optional sign; a leading zero ("02134", a ZIP code) means it is an identifier
/// written with digits, which must stay text to keep the zero.
fn is_integer(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !(digits.len() > 1 && digits.starts_with('0'))
}

/// A decimal number, with exponent, or one of numeric's special values.
fn is_decimal(value: &str) -> bool {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    if ["nan", "infinity", "inf"].contains(&unsigned.to_ascii_lowercase().as_str()) {
        return true;
    }
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
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 31,
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/// A month name or its three-letter abbreviation (PostgreSQL also takes "Sept").
fn month_number(word: &str) -> Option<u32> {
    let word = word.to_ascii_lowercase();
    const FULL: [&str; 12] =
        ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];
    let index = MONTHS.iter().position(|m| *m == word).or_else(|| FULL.iter().position(|m| *m == word)).or((word == "sept").then_some(8))?;
    Some(index as u32 + 1)
}

/// A date in a form PostgreSQL reads (with its default DateStyle ISO, MDY), as ISO YYYY-MM-DD:
/// Y-M-D and Y/M/D (one- or two-digit month and day), M/D/Y and M-D-Y, and with a month name:
/// "Jan 5 2015", "Jan 5, 2015", "5 January 2015", "5-Jan-2015", "2015-Jan-05".
fn iso_date(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.split(['-', '/', ' ', ',']).filter(|p| !p.is_empty()).collect();
    if parts.len() != 3 {
        return None;
    }
    let number = |p: &str| (p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u32>().ok()).flatten();
    let year_at = parts.iter().position(|p| p.len() == 4 && number(p).is_some())?;
    let (year, month, day) = match (parts.iter().position(|p| month_number(p).is_some()), year_at) {
        (Some(m), y) => {
            let d = (0..3).find(|&i| i != m && i != y)?;
            (number(parts[y])?, month_number(parts[m])?, (parts[d].len() <= 2).then(|| number(parts[d])).flatten()?)
        }
        (None, 0) if value.chars().filter(|c| *c == '-' || *c == '/').count() == 2 => {
            (number(parts[0])?, number(parts[1]).filter(|_| parts[1].len() <= 2)?, number(parts[2]).filter(|_| parts[2].len() <= 2)?)
        }
        (None, 2) if value.chars().filter(|c| *c == '-' || *c == '/').count() == 2 => {
            (number(parts[2])?, number(parts[0]).filter(|_| parts[0].len() <= 2)?, number(parts[1]).filter(|_| parts[1].len() <= 2)?)
        }
        _ => return None,
    };
    ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)).then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// A time of day as PostgreSQL reads it: H:MM or HH:MM, optional :SS and fraction, optional
/// AM/PM (12-hour clock), and 24:00:00, which PostgreSQL allows.
fn time_of_day(value: &str) -> Option<()> {
    let lower = value.to_ascii_lowercase();
    let (clock, twelve_hour) = match lower.strip_suffix("am").or_else(|| lower.strip_suffix("pm")) {
        Some(clock) => (clock.trim_end(), true),
        None => (lower.as_str(), false),
    };
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let parts: Vec<&str> = clock.split(':').collect();
    let number = |s: &str, digits: std::ops::RangeInclusive<usize>| {
        (digits.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok()).flatten()
    };
    if !(parts.len() == 2 || parts.len() == 3) || fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hour = number(parts[0], 1..=2)?;
    let minute = number(parts[1], 2..=2)?;
    let second = match parts.get(2) {
        Some(s) => number(s, 2..=2)?,
        None => 0,
    };
    let fraction_zero = fraction.bytes().all(|b| b == b'0');
    let valid = match twelve_hour {
        true => (1..=12).contains(&hour) && minute <= 59 && second <= 59,
        false => (hour <= 23 && minute <= 59 && second <= 59) || (hour == 24 && minute == 0 && second == 0 && fraction_zero),
    };
    valid.then_some(())
}

/// A date, a space or 'T', and a time, with an optional time zone (Z, UTC, or an offset).
struct Timestamp {
    date: String,
    time: String,
    zone: Option<String>,
}

impl Timestamp {
    fn iso(&self) -> String {
        match &self.zone {
            Some(zone) => format!("{} {}{zone}", self.date, self.time),
            None => format!("{} {}", self.date, self.time),
        }
    }
}

fn timestamp(value: &str) -> Option<Timestamp> {
    // The time is the last part that holds a colon; the date is what comes before it.
    let split = value.char_indices().filter(|(_, c)| *c == ' ' || *c == 'T').map(|(i, _)| i).find(|&i| {
        let rest = &value[i + 1..];
        rest.split(' ').next().is_some_and(|first| first.contains(':'))
    })?;
    let (date, rest) = (iso_date(value[..split].trim())?, value[split + 1..].trim());
    let zone_at = rest
        .char_indices()
        .skip(1)
        .find(|(i, c)| *c == 'Z' || *c == '+' || (*c == '-' && rest[..*i].contains(':')) || rest[*i..].eq_ignore_ascii_case(" utc"))
        .map(|(i, _)| i);
    let (time, zone) = match zone_at {
        Some(i) => (rest[..i].trim(), Some(rest[i..].trim())),
        None => (rest, None),
    };
    time_of_day(time)?;
    if let Some(zone) = zone {
        let offset = zone.strip_prefix(['+', '-']).map(|o| o.replace(':', ""));
        let valid = zone == "Z"
            || zone.eq_ignore_ascii_case("utc")
            || offset.is_some_and(|o| (o.len() == 2 || o.len() == 4) && o.bytes().all(|b| b.is_ascii_digit()));
        valid.then_some(())?;
    }
    Some(Timestamp { date, time: time.to_owned(), zone: zone.map(|z| if z.starts_with(['+', '-']) { z.to_owned() } else { format!(" {z}") }) })
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
        assert_eq!(infer(&["2015-01-01 11:38:36+02", "2015-01-02T00:00:00Z"]), ColumnType::TimestampTz);
        assert_eq!(infer(&["1", "x"]), ColumnType::Text);
    }

    /// The forms PostgreSQL reads for each type are inferred as that type.
    #[test]
    fn every_form_postgresql_reads_is_recognised() {
        assert_eq!(infer(&["9:40", "16:55", "0:05"]), ColumnType::Time, "one-digit hours");
        assert_eq!(infer(&["9:40:01.250", "23:59:59"]), ColumnType::Time);
        assert_eq!(infer(&["4:05 PM", "11:30am", "12:00 AM"]), ColumnType::Time);
        assert_eq!(infer(&["24:00", "24:00:00"]), ColumnType::Time, "PostgreSQL allows 24:00");
        assert_eq!(infer(&["on", "OFF", "y", "N"]), ColumnType::Boolean);
        assert_eq!(infer(&[" 12", "7 "]), ColumnType::Integer, "surrounding spaces");
        assert_eq!(infer(&["1.5", "NaN", "-Infinity"]), ColumnType::Numeric);
        assert_eq!(infer(&["2015-1-5", "2015/01/06"]), ColumnType::Date);
        assert_eq!(infer(&["1-31-2015", "12/1/2015"]), ColumnType::Date);
        assert_eq!(infer(&["Jan 5 2015", "Jan 5, 2015", "5 January 2015", "5-Jan-2015", "2015-Jan-05", "Sept 1 2015"]), ColumnType::Date);
        assert_eq!(infer(&["2015-01-05 9:40", "1/5/2015 4:05 PM"]), ColumnType::Timestamp);
        assert_eq!(infer(&["2015-01-05 09:40:00 UTC", "2015-01-05 09:40-05:00"]), ColumnType::TimestampTz);
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
        assert_eq!(infer(&["24:00:01"]), ColumnType::Text);
        assert_eq!(infer(&["25:00"]), ColumnType::Text);
        assert_eq!(infer(&["9:5"]), ColumnType::Text);
        assert_eq!(infer(&["13:00 PM"]), ColumnType::Text);
        assert_eq!(infer(&["Foo 5 2015"]), ColumnType::Text);
        assert_eq!(infer(&["2015-01-05 10:00+25:00:00"]), ColumnType::Text);
    }

    #[test]
    fn dates_are_normalised_to_iso() {
        assert_eq!(ColumnType::Date.normalise("1/5/2015"), "2015-01-05");
        assert_eq!(ColumnType::Date.normalise(" Jan 5, 2015 "), "2015-01-05");
        assert_eq!(ColumnType::Timestamp.normalise("01/05/2015 10:00"), "2015-01-05 10:00");
        assert_eq!(ColumnType::TimestampTz.normalise("5 Jan 2015 10:00Z"), "2015-01-05 10:00 Z");
        assert_eq!(ColumnType::TimestampTz.normalise("2015-01-05 09:40:00 UTC"), "2015-01-05 09:40:00 UTC");
        assert_eq!(ColumnType::Integer.normalise(" 12 "), "12");
        assert_eq!(ColumnType::Text.normalise(" kept "), " kept ");
    }

    #[test]
    fn headers_become_identifiers() {
        let names = column_names(&["Order ID", "Unit Price ($)", "", "2nd Line", "name", "Name", "Größe", &"x".repeat(80)]);
        assert_eq!(names[..7], ["order_id", "unit_price", "column_3", "c_2nd_line", "name", "name_2", "größe"]);
        assert_eq!(names[7].len(), 63);
    }
}
