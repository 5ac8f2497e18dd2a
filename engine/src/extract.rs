//! Finding the SQL in a model reply: a fenced block if there is one, otherwise the statement that
//! starts at the first SELECT/WITH, up to its end.

/// The SQL statement in `reply`, without a trailing semicolon; `None` if there is none.
pub(crate) fn extract_sql(reply: &str) -> Option<String> {
    let sql = match fenced_block(reply) {
        Some(block) => block.to_owned(),
        None => first_statement(reply)?,
    };
    let sql = sql.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace()).trim();
    (!sql.is_empty()).then(|| sql.to_owned())
}

/// Content of the first ``` block (with or without a language tag); an unclosed fence (the reply
/// was cut by the token limit) runs to the end.
fn fenced_block(reply: &str) -> Option<&str> {
    let start = reply.find("```")?;
    let after = &reply[start + 3..];
    // Skip the language tag line (```sql, ```postgresql, ...).
    let body = match after.find('\n') {
        Some(newline) if after[..newline].chars().all(|c| c.is_ascii_alphanumeric()) => &after[newline + 1..],
        _ => after,
    };
    Some(match body.find("```") {
        Some(end) => &body[..end],
        None => body,
    })
}

/// From the first line-leading SELECT or WITH to the first semicolon outside quotes, or to a
/// blank line (where prose usually resumes).
fn first_statement(reply: &str) -> Option<String> {
    let start = statement_start(reply)?;
    let text = &reply[start..];
    let mut end = text.len();
    let mut quote: Option<char> = None;
    let mut previous = '\0';
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ';' => {
                end = i;
                break;
            }
            None if c == '\n' && previous == '\n' => {
                end = i;
                break;
            }
            None => {}
        }
        if c != '\r' {
            previous = c;
        }
    }
    Some(text[..end].to_owned())
}

fn statement_start(reply: &str) -> Option<usize> {
    let mut offset = 0;
    for line in reply.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let upper = trimmed.get(..7).unwrap_or(trimmed).to_ascii_uppercase();
        let starts = |keyword: &str| {
            upper.starts_with(keyword)
                && !trimmed[keyword.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        };
        if starts("SELECT") || starts("WITH") {
            return Some(offset + line.len() - trimmed.len());
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::extract_sql;

    #[test]
    fn fenced_sql_block() {
        let reply = "Here you go:\n```sql\nSELECT name FROM sales;\n```\nThis lists names.";
        assert_eq!(extract_sql(reply).unwrap(), "SELECT name FROM sales");
    }

    #[test]
    fn fence_without_language_tag() {
        assert_eq!(extract_sql("```\nSELECT 1\n```").unwrap(), "SELECT 1");
    }

    #[test]
    fn fence_with_postgresql_tag_and_first_block_wins() {
        let reply = "```postgresql\nSELECT 1;\n```\nor\n```sql\nSELECT 2;\n```";
        assert_eq!(extract_sql(reply).unwrap(), "SELECT 1");
    }

    #[test]
    fn unclosed_fence_when_cut_by_the_token_limit() {
        assert_eq!(extract_sql("```sql\nSELECT a,\n  b FROM t").unwrap(), "SELECT a,\n  b FROM t");
    }

    #[test]
    fn bare_statement_with_prose_around() {
        let reply = "The query is:\nSELECT count(*) FROM sales WHERE size = 'L';\nIt counts large pizzas.";
        assert_eq!(extract_sql(reply).unwrap(), "SELECT count(*) FROM sales WHERE size = 'L'");
    }

    #[test]
    fn semicolon_inside_a_string_does_not_end_the_statement() {
        let reply = "SELECT * FROM t WHERE note = 'a;b';";
        assert_eq!(extract_sql(reply).unwrap(), "SELECT * FROM t WHERE note = 'a;b'");
    }

    #[test]
    fn bare_statement_ends_at_a_blank_line() {
        let reply = "WITH x AS (SELECT 1)\nSELECT * FROM x\n\nThis uses a CTE.";
        assert_eq!(extract_sql(reply).unwrap(), "WITH x AS (SELECT 1)\nSELECT * FROM x");
    }

    #[test]
    fn lowercase_select_and_trailing_semicolons() {
        assert_eq!(extract_sql("  select 1 ;; \n").unwrap(), "select 1");
    }

    #[test]
    fn words_that_merely_start_with_select_are_not_sql() {
        assert_eq!(extract_sql("Selecting data is easy.\nWithout a table I cannot."), None);
    }

    #[test]
    fn no_sql_at_all() {
        assert_eq!(extract_sql("I cannot answer that question."), None);
        assert_eq!(extract_sql("```sql\n;\n```"), None);
    }

    #[test]
    fn multiple_statements_in_a_fence_are_kept_for_the_checker_to_reject() {
        let sql = extract_sql("```sql\nSELECT 1; DROP TABLE sales;\n```").unwrap();
        assert_eq!(sql, "SELECT 1; DROP TABLE sales");
    }

    #[test]
    fn unicode_survives() {
        let reply = "```sql\nSELECT 'Ünïcødé ✓' AS \"größe\"\n```";
        assert_eq!(extract_sql(reply).unwrap(), "SELECT 'Ünïcødé ✓' AS \"größe\"");
    }
}
