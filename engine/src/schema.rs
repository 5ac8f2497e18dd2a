//! What the model is told about the database: tables, views and their columns, rendered as
//! compact CREATE TABLE text (the form code models have seen most).

use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    #[default]
    Table,
    View,
    MaterializedView,
    ForeignTable,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The schema (namespace); `None` when the name resolves without it (it is on the search path).
    #[serde(default)]
    pub schema: Option<String>,
    pub name: String,
    #[serde(default)]
    pub kind: TableKind,
    #[serde(default)]
    pub comment: Option<String>,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub comment: Option<String>,
    /// The most common values of a low-cardinality text column: they tell the model how values
    /// are spelled ('Friday' or 'fri'?), which no column type can.
    #[serde(default)]
    pub frequent_values: Vec<String>,
    /// Values of this column that the question names (from the value index): they tell the model
    /// which column holds "Machine Learning". Shown with the question, not in the schema text
    /// (see [`Schema::mentioned_values`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentioned_values: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    #[serde(default)]
    pub references_schema: Option<String>,
    pub references_table: String,
    pub references_columns: Vec<String>,
}

/// Keywords that PostgreSQL's quote_ident() quotes: every category but UNRESERVED (PostgreSQL 15
/// kwlist.h). The extension's tests compare this rule with the server's quote_ident().
const QUOTED_KEYWORDS: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character",
    "check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
    "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc",
    "distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float", "for",
    "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having", "ilike",
    "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into", "is",
    "isnull", "join", "lateral", "leading", "least", "left", "like", "limit", "localtime",
    "localtimestamp", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null",
    "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay",
    "placing", "position", "precision", "primary", "real", "references", "returning", "right", "row",
    "select", "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric",
    "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim", "true",
    "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose", "when", "where",
    "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists", "xmlforest",
    "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
];

/// An identifier as PostgreSQL's quote_ident() writes it: bare when that reads back as the same
/// name, otherwise in double quotes with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && QUOTED_KEYWORDS.binary_search(&name).is_err();
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(name),
    }
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn ident_list(names: &[String]) -> String {
    names.iter().map(|n| quote_ident(n)).collect::<Vec<_>>().join(", ")
}

/// Comments end at the line; a newline inside one would let catalog text escape into the prompt
/// as if it were DDL.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Table {
    pub fn qualified_name(&self) -> String {
        qualified(self.schema.as_deref(), &self.name)
    }

    fn render(&self, out: &mut String) {
        let keyword = match self.kind {
            TableKind::Table => "TABLE",
            TableKind::View => "VIEW",
            TableKind::MaterializedView => "MATERIALIZED VIEW",
            TableKind::ForeignTable => "FOREIGN TABLE",
        };
        let _ = write!(out, "CREATE {keyword} {} (", self.qualified_name());
        if let Some(comment) = &self.comment {
            let _ = write!(out, " -- {}", one_line(comment));
        }
        out.push('\n');

        let mut lines: Vec<(String, Option<String>)> = self.columns.iter().map(Column::render).collect();
        if !self.primary_key.is_empty() {
            lines.push((format!("PRIMARY KEY ({})", ident_list(&self.primary_key)), None));
        }
        for fk in &self.foreign_keys {
            lines.push((
                format!(
                    "FOREIGN KEY ({}) REFERENCES {}({})",
                    ident_list(&fk.columns),
                    qualified(fk.references_schema.as_deref(), &fk.references_table),
                    ident_list(&fk.references_columns)
                ),
                None,
            ));
        }
        let last = lines.len().saturating_sub(1);
        for (i, (definition, comment)) in lines.into_iter().enumerate() {
            let comma = if i < last { "," } else { "" };
            let _ = write!(out, "  {definition}{comma}");
            if let Some(comment) = comment {
                let _ = write!(out, " -- {comment}");
            }
            out.push('\n');
        }
        out.push_str(");\n");
    }
}

/// Frequent values are cut so that one column of long strings cannot crowd out the schema.
const MAX_VALUE_CHARS: usize = 40;

impl Column {
    fn render(&self) -> (String, Option<String>) {
        let null = if self.nullable { "" } else { " NOT NULL" };
        let definition = format!("{} {}{null}", quote_ident(&self.name), self.data_type);
        let mut notes = Vec::new();
        if let Some(comment) = &self.comment {
            notes.push(one_line(comment));
        }
        if !self.frequent_values.is_empty() {
            let values: Vec<String> = self
                .frequent_values
                .iter()
                .map(|v| quote_literal(&one_line(&v.chars().take(MAX_VALUE_CHARS).collect::<String>())))
                .collect();
            notes.push(format!("values: {}", values.join(", ")));
        }
        (definition, (!notes.is_empty()).then(|| notes.join("; ")))
    }
}

impl Schema {
    /// The schema as CREATE statements, one per table or view, in the given order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, table) in self.tables.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            table.render(&mut out);
        }
        out
    }

    /// The values the question names, as `table.column = 'value'`, for the question's turn: the
    /// schema text stays the same for every question on a database, so the prefix cache keeps it.
    pub fn mentioned_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        for table in &self.tables {
            for column in &table.columns {
                for value in &column.mentioned_values {
                    out.push(format!("{}.{} = {}", table.qualified_name(), quote_ident(&column.name), quote_literal(&one_line(value))));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_list_is_sorted_for_binary_search() {
        assert!(QUOTED_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn quote_ident_matches_postgres_rules() {
        assert_eq!(quote_ident("sales"), "sales");
        assert_eq!(quote_ident("order_id"), "order_id");
        assert_eq!(quote_ident("_x1"), "_x1");
        assert_eq!(quote_ident("Sales"), "\"Sales\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("time"), "\"time\"");
        assert_eq!(quote_ident("date"), "date");
        assert_eq!(quote_ident("1st"), "\"1st\"");
        assert_eq!(quote_ident("unit price"), "\"unit price\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("größe"), "\"größe\"");
        assert_eq!(quote_ident("cost$"), "\"cost$\"");
    }

    fn sales_schema() -> Schema {
        Schema {
            tables: vec![
                Table {
                    name: "customers".into(),
                    comment: Some("People who\nbuy things".into()),
                    columns: vec![
                        Column { name: "id".into(), data_type: "integer".into(), nullable: false, ..Default::default() },
                        Column { name: "Full Name".into(), data_type: "text".into(), nullable: true, ..Default::default() },
                    ],
                    primary_key: vec!["id".into()],
                    ..Default::default()
                },
                Table {
                    schema: Some("shop".into()),
                    name: "order".into(),
                    columns: vec![
                        Column { name: "id".into(), data_type: "bigint".into(), nullable: false, ..Default::default() },
                        Column { name: "customer_id".into(), data_type: "integer".into(), nullable: true, ..Default::default() },
                        Column {
                            name: "status".into(),
                            data_type: "text".into(),
                            nullable: true,
                            comment: Some("lifecycle".into()),
                            frequent_values: vec!["shipped".into(), "it's late".into()],
                            mentioned_values: Vec::new(),
                        },
                    ],
                    primary_key: vec!["id".into()],
                    foreign_keys: vec![ForeignKey {
                        columns: vec!["customer_id".into()],
                        references_schema: None,
                        references_table: "customers".into(),
                        references_columns: vec!["id".into()],
                    }],
                    ..Default::default()
                },
                Table {
                    name: "daily_totals".into(),
                    kind: TableKind::View,
                    columns: vec![Column { name: "day".into(), data_type: "date".into(), nullable: true, ..Default::default() }],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn renders_golden_ddl() {
        let expected = "\
CREATE TABLE customers ( -- People who buy things
  id integer NOT NULL,
  \"Full Name\" text,
  PRIMARY KEY (id)
);

CREATE TABLE shop.\"order\" (
  id bigint NOT NULL,
  customer_id integer,
  status text, -- lifecycle; values: 'shipped', 'it''s late'
  PRIMARY KEY (id),
  FOREIGN KEY (customer_id) REFERENCES customers(id)
);

CREATE VIEW daily_totals (
  day date
);
";
        assert_eq!(sales_schema().render(), expected);
    }

    #[test]
    fn long_and_multiline_values_are_cut_to_one_short_line() {
        let column = Column {
            name: "note".into(),
            data_type: "text".into(),
            nullable: true,
            frequent_values: vec![format!("line one\nDROP TABLE x; {}", "y".repeat(100))],
            ..Default::default()
        };
        let (_, comment) = column.render();
        let comment = comment.unwrap();
        assert!(!comment.contains('\n'));
        assert!(comment.len() < 60, "{comment}");
    }

    #[test]
    fn deserializes_from_catalog_json_with_defaults() {
        let json = r#"{"tables":[{"name":"t","columns":[{"name":"a","data_type":"int"}]}]}"#;
        let schema: Schema = serde_json::from_str(json).unwrap();
        assert_eq!(schema.tables[0].kind, TableKind::Table);
        assert!(schema.tables[0].columns[0].nullable);
        assert_eq!(schema.render(), "CREATE TABLE t (\n  a int\n);\n");
    }
}
