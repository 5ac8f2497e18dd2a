//! Reading schema text back into a [`Schema`]: the CREATE TABLE form that [`Schema::render`]
//! writes (and that a person writes by hand for the command-line tools), so that the tools and
//! tests can give the engine a structured schema, which the schema constraint needs.
//!
//! It reads one statement per `CREATE TABLE | VIEW | MATERIALIZED VIEW | FOREIGN TABLE name (`
//! with one column or key per line: `name type [NOT NULL][,] [-- comment; values: 'a', 'b']`,
//! `PRIMARY KEY (a, b)`, `FOREIGN KEY (a) REFERENCES t(b)`, closed by `);`.

use crate::error::{Error, Result};
use crate::schema::{Column, ForeignKey, Schema, Table, TableKind};

/// An identifier as written (bare, or "quoted" with "" for a quote) and the rest of the text.
fn identifier(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(text.len());
        (end > 0).then(|| (text[..end].to_lowercase(), &text[end..]))
    }
}

/// `schema.name` or `name`.
fn qualified_name(text: &str) -> Option<(Option<String>, String, &str)> {
    let (first, rest) = identifier(text)?;
    match rest.strip_prefix('.') {
        Some(rest) => {
            let (second, rest) = identifier(rest)?;
            Some((Some(first), second, rest))
        }
        None => Some((None, first, rest)),
    }
}

/// `(a, "b")` → the names, and the rest.
fn name_list(text: &str) -> Option<(Vec<String>, &str)> {
    let mut rest = text.trim_start().strip_prefix('(')?;
    let mut names = Vec::new();
    loop {
        let (name, after) = identifier(rest)?;
        names.push(name);
        let after = after.trim_start();
        if let Some(after) = after.strip_prefix(',') {
            rest = after;
        } else {
            return Some((names, after.strip_prefix(')')?));
        }
    }
}

/// A comment's notes: free text, and `values: 'a', 'it''s'` as frequent values.
fn comment_notes(comment: &str) -> (Option<String>, Vec<String>) {
    let mut text = Vec::new();
    let mut values = Vec::new();
    for note in comment.split("; ") {
        match note.strip_prefix("values: ") {
            Some(list) => {
                let mut rest = list;
                while let Some(start) = rest.find('\'') {
                    let mut value = String::new();
                    let mut chars = rest[start + 1..].char_indices();
                    let mut end = None;
                    while let Some((i, c)) = chars.next() {
                        if c == '\'' {
                            if rest[start + 1 + i + 1..].starts_with('\'') {
                                value.push('\'');
                                chars.next();
                            } else {
                                end = Some(start + 1 + i + 1);
                                break;
                            }
                        } else {
                            value.push(c);
                        }
                    }
                    values.push(value);
                    match end {
                        Some(end) => rest = &rest[end..],
                        None => break,
                    }
                }
            }
            None => text.push(note),
        }
    }
    ((!text.is_empty()).then(|| text.join("; ")), values)
}

/// Splits `line` at a `--` comment that is outside quotes.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote = None;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), c) if c == q => quote = None,
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'-') if bytes.get(i + 1) == Some(&b'-') => return (&line[..i], Some(line[i + 2..].trim())),
            _ => {}
        }
    }
    (line, None)
}

impl Schema {
    /// Reads CREATE statements in the form [`Schema::render`] writes.
    pub fn from_ddl(text: &str) -> Result<Schema> {
        let invalid = |line: usize, what: &str| Error::InvalidSchema(format!("line {line}: {what}"));
        let mut tables = Vec::new();
        let mut current: Option<Table> = None;
        for (number, raw) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
            let (code, comment) = split_comment(raw);
            let code = code.trim();
            if current.is_none() {
                if code.is_empty() {
                    continue;
                }
                let upper = code.to_uppercase();
                let (kind, rest) = [
                    ("CREATE TABLE ", TableKind::Table),
                    ("CREATE VIEW ", TableKind::View),
                    ("CREATE MATERIALIZED VIEW ", TableKind::MaterializedView),
                    ("CREATE FOREIGN TABLE ", TableKind::ForeignTable),
                ]
                .iter()
                .find(|(prefix, _)| upper.starts_with(prefix))
                .map(|(prefix, kind)| (*kind, &code[prefix.len()..]))
                .ok_or_else(|| invalid(number, "expected CREATE TABLE name ("))?;
                let (schema, name, rest) = qualified_name(rest).ok_or_else(|| invalid(number, "expected a table name"))?;
                if rest.trim() != "(" {
                    return Err(invalid(number, "expected ( after the table name, columns on the following lines"));
                }
                current = Some(Table { schema, name, kind, comment: comment.map(str::to_owned), ..Default::default() });
                continue;
            }
            let table = current.as_mut().expect("inside a table");
            if code == ");" || code == ")" {
                tables.push(current.take().expect("inside a table"));
                continue;
            }
            let code = code.trim_end_matches(',');
            let upper = code.to_uppercase();
            if let Some(rest) = upper.strip_prefix("PRIMARY KEY").map(|_| &code["PRIMARY KEY".len()..]) {
                table.primary_key = name_list(rest).ok_or_else(|| invalid(number, "expected PRIMARY KEY (columns)"))?.0;
            } else if let Some(rest) = upper.strip_prefix("FOREIGN KEY").map(|_| &code["FOREIGN KEY".len()..]) {
                let (columns, rest) = name_list(rest).ok_or_else(|| invalid(number, "expected FOREIGN KEY (columns)"))?;
                let rest = rest.trim_start();
                let rest = rest.get(..10).filter(|r| r.eq_ignore_ascii_case("REFERENCES")).map(|_| &rest[10..]);
                let (references_schema, references_table, rest) =
                    rest.and_then(qualified_name).ok_or_else(|| invalid(number, "expected REFERENCES table(columns)"))?;
                let (references_columns, _) = name_list(rest).ok_or_else(|| invalid(number, "expected REFERENCES table(columns)"))?;
                table.foreign_keys.push(ForeignKey { columns, references_schema, references_table, references_columns });
            } else {
                let (name, rest) = identifier(code).ok_or_else(|| invalid(number, "expected a column name"))?;
                let definition = rest.trim();
                let (data_type, nullable) = match definition.to_uppercase().strip_suffix(" NOT NULL") {
                    Some(_) => (definition[..definition.len() - " NOT NULL".len()].trim().to_owned(), false),
                    None => (definition.to_owned(), true),
                };
                if data_type.is_empty() {
                    return Err(invalid(number, "expected a column type"));
                }
                let (comment, frequent_values) = comment.map(comment_notes).unwrap_or_default();
                table.columns.push(Column { name, data_type, nullable, comment, frequent_values, mentioned_values: Vec::new() });
            }
        }
        if let Some(table) = current {
            return Err(Error::InvalidSchema(format!("CREATE {} is not closed with );", table.name)));
        }
        Ok(Schema { tables })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_render_writes() {
        for text in [include_str!("../examples/pizza.sql"), include_str!("../examples/sales.sql")] {
            let schema = Schema::from_ddl(text).unwrap();
            assert_eq!(schema.render(), text, "render(from_ddl(text)) is the text");
        }
    }

    #[test]
    fn reads_keys_quoted_names_comments_and_values() {
        let schema = Schema::from_ddl(
            "CREATE TABLE shop.\"order\" ( -- one row per order\n  id bigint NOT NULL,\n  \"Full Name\" text, -- who; values: 'a', 'it''s'\n  customer_id integer,\n  PRIMARY KEY (id),\n  FOREIGN KEY (customer_id) REFERENCES customers(id)\n);\n",
        )
        .unwrap();
        let table = &schema.tables[0];
        assert_eq!((table.schema.as_deref(), table.name.as_str()), (Some("shop"), "order"));
        assert_eq!(table.comment.as_deref(), Some("one row per order"));
        assert_eq!(table.columns[1].name, "Full Name");
        assert_eq!(table.columns[1].comment.as_deref(), Some("who"));
        assert_eq!(table.columns[1].frequent_values, ["a", "it's"]);
        assert!(!table.columns[0].nullable && table.columns[1].nullable);
        assert_eq!(table.primary_key, ["id"]);
        assert_eq!(table.foreign_keys[0].references_table, "customers");
    }

    #[test]
    fn says_what_is_wrong_with_other_text() {
        let err = Schema::from_ddl("SELECT 1;").unwrap_err().to_string();
        assert!(err.contains("line 1: expected CREATE TABLE name ("), "{err}");
        let err = Schema::from_ddl("CREATE TABLE t (\n  a int\n").unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
    }
}
