//! sql-eval's scoring, reimplemented: which gold queries a question accepts, how results are
//! normalised, and when a generated result counts as correct (exact or subset match).
//! The rules are those of ../shared/bench/README.md; the one deliberate difference is that
//! numbers are compared as numbers (1, 1.0 and 1.00 are equal, and float and numeric values that
//! differ only below 1e-9 relative), because PostgreSQL's text output differs by type.

use std::cmp::Ordering;

/// One value of a result cell: SQL NULL, a number, or any other text.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Number(f64),
    Text(String),
}

impl Cell {
    /// A cell from PostgreSQL's text output.
    pub fn from_text(value: Option<&str>) -> Self {
        match value {
            None => Cell::Null,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && !text.trim().is_empty() => Cell::Number(n),
                _ => Cell::Text(text.to_owned()),
            },
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Number(_) => 1,
            Cell::Text(_) => 2,
        }
    }
}

fn numbers_equal(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Number(a), Cell::Number(b)) => numbers_equal(*a, *b),
            (Cell::Text(a), Cell::Text(b)) => a == b,
            _ => false,
        }
    }
}

/// A total order for sorting rows (NULLs first, then numbers, then text).
fn compare(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Number(x), Cell::Number(y)) if numbers_equal(*x, *y) => Ordering::Equal,
        (Cell::Number(x), Cell::Number(y)) => x.total_cmp(y),
        (Cell::Text(x), Cell::Text(y)) => x.cmp(y),
        _ => a.rank().cmp(&b.rank()),
    }
}

/// A query result: column names (duplicates allowed) and rows in the order returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    fn column(&self, index: usize) -> Vec<Cell> {
        self.rows.iter().map(|row| row[index].clone()).collect()
    }

    fn select(&self, indices: &[usize], names: &[String]) -> Table {
        Table {
            columns: names.to_vec(),
            rows: self.rows.iter().map(|row| indices.iter().map(|&i| row[i].clone()).collect()).collect(),
        }
    }
}

/// The question asks for an order if its category is order_by or it says order/sort/arrange.
pub fn asks_for_order(category: &str, question: &str) -> bool {
    category == "order_by"
        || question
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| matches!(word, "order" | "sort" | "arrange"))
}

/// Duplicate rows dropped (first kept), columns sorted by name, and rows sorted by all columns
/// unless the question asks for an order.
pub fn normalise(table: &Table, ordered: bool) -> Table {
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        if !rows.contains(row) {
            rows.push(row.clone());
        }
    }
    let mut order: Vec<usize> = (0..table.columns.len()).collect();
    order.sort_by(|&a, &b| table.columns[a].cmp(&table.columns[b]));
    let mut rows: Vec<Vec<Cell>> = rows.into_iter().map(|row| order.iter().map(|&i| row[i].clone()).collect()).collect();
    if !ordered {
        rows.sort_by(|a, b| a.iter().zip(b).map(|(x, y)| compare(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal));
    }
    Table { columns: order.iter().map(|&i| table.columns[i].clone()).collect(), rows }
}

fn same_values(a: &Table, b: &Table) -> bool {
    a.rows.len() == b.rows.len()
        && a.rows.iter().zip(&b.rows).all(|(x, y)| x.len() == y.len() && x == y)
}

/// Equal ignoring column names: as returned, or after normalising both sides.
pub fn exact_match(gold: &Table, generated: &Table, ordered: bool) -> bool {
    if gold.columns.len() == generated.columns.len() && same_values(gold, generated) {
        return true;
    }
    gold.columns.len() == generated.columns.len() && same_values(&normalise(gold, ordered), &normalise(generated, ordered))
}

fn sorted(mut values: Vec<Cell>) -> Vec<Cell> {
    values.sort_by(compare);
    values
}

/// Every gold column appears, with the same values, among the generated columns (each generated
/// column matched at most once); the matched columns, renamed to the gold names, must then equal
/// the gold result after normalising. Extra generated columns are fine. An empty gold is no match.
pub fn subset_match(gold: &Table, generated: &Table, ordered: bool) -> bool {
    if gold.rows.is_empty() {
        return false;
    }
    let mut used = vec![false; generated.columns.len()];
    let mut matched = Vec::with_capacity(gold.columns.len());
    for g in 0..gold.columns.len() {
        let wanted = sorted(gold.column(g));
        let found = (0..generated.columns.len()).find(|&c| !used[c] && sorted(generated.column(c)) == wanted);
        match found {
            Some(c) => {
                used[c] = true;
                matched.push(c);
            }
            None => return false,
        }
    }
    let candidate = generated.select(&matched, &gold.columns);
    same_values(&normalise(gold, ordered), &normalise(&candidate, ordered))
}

pub fn is_correct(gold: &Table, generated: &Table, ordered: bool) -> bool {
    exact_match(gold, generated, ordered) || subset_match(gold, generated, ordered)
}

/// `;`-separated alternatives (outside quotes), each with its `{a, b}` groups expanded.
pub fn gold_queries(gold: &str) -> Vec<String> {
    split_statements(gold).iter().flat_map(|q| expand_alternatives(q)).collect()
}

fn split_statements(sql: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ';' => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
}

/// `{a, b}` lists acceptable columns: every non-empty subset is a valid query, and all brace
/// groups of the query take the same subset; an empty `{}` (as in `GROUP BY {}`) stands for the
/// first group's columns.
pub fn expand_alternatives(query: &str) -> Vec<String> {
    let mut groups: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut search = 0;
    while let Some(open) = query[search..].find('{').map(|i| i + search) {
        let Some(close) = query[open..].find('}').map(|i| i + open) else { break };
        let items = query[open + 1..close].split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        groups.push((open, close, items));
        search = close + 1;
    }
    let Some(first) = groups.first().map(|(_, _, items)| items.clone()) else {
        return vec![query.to_owned()];
    };
    let width = first.len();
    for (_, _, items) in &mut groups {
        if items.is_empty() {
            items.clone_from(&first);
        }
    }
    let mut queries = Vec::new();
    for mask in 1u32..(1 << width) {
        let mut out = String::new();
        let mut last = 0;
        for (open, close, items) in &groups {
            out.push_str(&query[last..*open]);
            let chosen: Vec<&str> = (0..width).filter(|i| mask & (1 << i) != 0).filter_map(|i| items.get(i).map(String::as_str)).collect();
            out.push_str(&chosen.join(", "));
            last = close + 1;
        }
        out.push_str(&query[last..]);
        queries.push(out);
    }
    queries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: &[&str], rows: &[&[Option<&str>]]) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows.iter().map(|r| r.iter().map(|v| Cell::from_text(*v)).collect()).collect(),
        }
    }

    #[test]
    fn alternatives_split_on_semicolons_outside_quotes() {
        assert_eq!(gold_queries("SELECT 1; SELECT ';' ;"), ["SELECT 1", "SELECT ';'"]);
    }

    #[test]
    fn braces_expand_to_every_non_empty_subset_shared_by_group_by() {
        let expanded = expand_alternatives("SELECT {a.name, a.id}, count(*) FROM a GROUP BY {a.name, a.id}");
        assert_eq!(
            expanded,
            [
                "SELECT a.name, count(*) FROM a GROUP BY a.name",
                "SELECT a.id, count(*) FROM a GROUP BY a.id",
                "SELECT a.name, a.id, count(*) FROM a GROUP BY a.name, a.id",
            ]
        );
        assert_eq!(expand_alternatives("SELECT 1"), ["SELECT 1"]);
        let empty_group = expand_alternatives("SELECT {a, b}, sum(x) FROM t GROUP BY {} ORDER BY 2");
        assert_eq!(empty_group[2], "SELECT a, b, sum(x) FROM t GROUP BY a, b ORDER BY 2");
    }

    #[test]
    fn numbers_compare_by_value_not_formatting() {
        let gold = table(&["n"], &[&[Some("1")], &[Some("2.50")]]);
        let generated = table(&["total"], &[&[Some("1.0")], &[Some("2.5")]]);
        assert!(exact_match(&gold, &generated, false));
        let off = table(&["total"], &[&[Some("1.0")], &[Some("2.51")]]);
        assert!(!exact_match(&gold, &off, false));
    }

    #[test]
    fn normalisation_drops_duplicates_sorts_columns_by_name_and_rows_unless_ordered() {
        let t = table(&["b", "a"], &[&[Some("2"), Some("x")], &[Some("1"), Some("y")], &[Some("2"), Some("x")]]);
        let n = normalise(&t, false);
        assert_eq!(n.columns, ["a", "b"]);
        assert_eq!(n, table(&["a", "b"], &[&[Some("x"), Some("2")], &[Some("y"), Some("1")]]));
        let kept = normalise(&table(&["a"], &[&[Some("2")], &[Some("1")]]), true);
        assert_eq!(kept.rows, table(&["a"], &[&[Some("2")], &[Some("1")]]).rows);
    }

    #[test]
    fn row_order_matters_only_when_asked_for() {
        let gold = table(&["a"], &[&[Some("1")], &[Some("2")]]);
        let reversed = table(&["a"], &[&[Some("2")], &[Some("1")]]);
        assert!(is_correct(&gold, &reversed, false));
        assert!(!is_correct(&gold, &reversed, true));
        assert!(asks_for_order("group_by", "Sort the authors by name"));
        assert!(asks_for_order("order_by", "Which authors?"));
        assert!(!asks_for_order("group_by", "Which sorted authors?"), "whole words only");
    }

    #[test]
    fn exact_match_ignores_column_names_but_not_column_count() {
        let gold = table(&["name"], &[&[Some("x")]]);
        assert!(exact_match(&gold, &table(&["whatever"], &[&[Some("x")]]), false));
        assert!(!exact_match(&gold, &table(&["a", "b"], &[&[Some("x"), Some("y")]]), false));
    }

    #[test]
    fn subset_match_accepts_extra_columns_and_duplicate_names() {
        let gold = table(&["name", "n"], &[&[Some("a"), Some("1")], &[Some("b"), Some("2")]]);
        let generated = table(&["id", "id", "name", "count"], &[&[Some("7"), Some("7"), Some("a"), Some("1.0")], &[Some("8"), Some("8"), Some("b"), Some("2")]]);
        assert!(subset_match(&gold, &generated, false));
        let mismatched = table(&["name", "count"], &[&[Some("a"), Some("2")], &[Some("b"), Some("1")]]);
        assert!(!subset_match(&gold, &mismatched, false), "columns match one by one but not as rows");
        assert!(!subset_match(&table(&["x"], &[]), &generated, false), "an empty gold is no match");
    }

    #[test]
    fn nulls_equal_nulls_only() {
        let gold = table(&["a"], &[&[None]]);
        assert!(exact_match(&gold, &table(&["b"], &[&[None]]), false));
        assert!(!exact_match(&gold, &table(&["b"], &[&[Some("")]]), false));
        assert!(!exact_match(&gold, &table(&["b"], &[&[Some("0")]]), false));
    }
}
