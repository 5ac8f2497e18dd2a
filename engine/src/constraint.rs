//! Schema-constrained decoding: whether a statement being written can still name only tables and
//! columns that exist. The decoder asks [`SchemaConstraint::check`] about its text plus a candidate
//! token and takes the most likely candidate that keeps the statement possible (see generate.rs).
//!
//! The check lexes the text from the start every time (a few microseconds for a statement; a
//! decode step takes ~75 ms) and tracks, per parenthesis level, the clause and what the next word
//! may be:
//! - after FROM / JOIN (or a comma in FROM): a table or view of the schema, a CTE defined
//!   earlier, a set-returning function, or a sub-query;
//! - after `x.`: a column of the relation bound to `x` (a table, alias, or CTE: any name for a
//!   CTE or sub-query, whose columns are not tracked);
//! - elsewhere: a column of the schema, an alias, CTE or output name declared in the statement,
//!   a keyword, or a function or type name of [`crate::sql_names`]; after `::` or CAST(... AS,
//!   a type; EXTRACT's field, and a date/time column (not an integer `year`) where EXTRACT,
//!   date_trunc and date_part read one; no aggregate directly inside another.
//!
//! Quoted identifiers obey the same rules, case-sensitively. Strings, numbers and comments are
//! free. After the statement ends (`;` or the closing ``` fence) nothing may follow.
//!
//! Each query (the statement, a sub-query, a CTE's body) has its scope, the relations its FROM
//! reads. When it ends, each unqualified column it used must belong to one of them; one its scope
//! lacks may be an outer query's (a correlated sub-query) and is checked there, except in a CTE's
//! body, which sees no outer query. An output name counts as a column only alone in its query's
//! GROUP BY or ORDER BY, as in PostgreSQL. With a CTE, sub-query or function in a scope, whose
//! columns are not tracked, its columns are not checked.
//!
//! Types, where they are cheap to know ([`crate::value_kind`]): a comparison `a op b` of a
//! column with a column or literal of another kind (`text = bigint`, a number with `'Machine
//! Learning'`), LIKE over a number or date, and a cast of a number column to a date or interval
//! (or back) are refused; the column written last is the one the model writes again.
//!
//! Joins, where the schema's keys tell (declared or virtual foreign keys, primary keys): `a = b`
//! between two key columns is refused unless foreign keys link them, directly or through a
//! column both reference (`fare.from_airport = flight.to_airport`, both airport codes), as soon
//! as `b` is written; so is a key column compared with a column of another table that is no
//! key, unless the latter's name refers to the key (`orders.customer_id` for `customers.id`:
//! keys are often declared in part, or inferred). Without this a small model joins any two id
//! columns (`course.course_id = student.program_id`), or an id with a count
//! (`program_course.course_id = student.total_credit`). Two columns that are no keys, and
//! schemas without keys, are left alone. Nor is a key column added up or averaged
//! (`AVG(f.flight_id)`).
//!
//! Scope is not known in a SELECT list written before its FROM: there `x.col` is allowed, and
//! checked when FROM binds `x` (to a table: `col` must be one of its columns). A binding that
//! turns out wrong is reported as a [`Verdict::Conflict`]; the decoder then backtracks to the
//! `x.col` it contradicts and writes it again knowing what `x` is (the chosen design: the model
//! keeps its choice of table, the column is corrected). A word that turns out invalid only when it ends (a column name is valid as a
//! prefix until the next character) is reported with where it starts, so the decoder can go back
//! and choose another word there.

use crate::name_words::{name_words, KEY_WORDS};
use crate::schema::Schema;
use crate::sql_names::{self, AGGREGATES, EXTRACT_FIELDS, FUNCTIONS, KEYWORDS, NUMBER_FUNCTIONS, TYPE_WORDS};
use crate::value_kind::{is_date_format, reads_as_number, ValueKind};
use std::collections::HashMap;

/// What the text so far allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It can still become a valid statement.
    Viable,
    /// It cannot. `word_start` is where a completed word that made it so begins; `None` when the
    /// last, unfinished word can become nothing valid.
    Dead { word_start: Option<usize> },
    /// `alias` was just bound to table `relation`, but `alias.column` written earlier at
    /// `use_start` names a column that table lacks.
    Conflict { alias: String, relation: usize, use_start: usize },
    /// The statement ended at byte `end` (a `;` or the closing fence); nothing more is needed.
    Complete { end: usize },
}

#[derive(Debug, Clone)]
struct Relation {
    schema: Option<String>,
    name: String,
    /// Column names and the kind of value each holds.
    columns: Vec<(String, ValueKind)>,
    /// The columns of type `date` (one date minus another is a number of days, not an interval).
    dates: Vec<String>,
}

/// The tables and columns a statement may name, from the schema given to the prompt.
#[derive(Debug, Clone)]
pub struct SchemaConstraint {
    relations: Vec<Relation>,
    /// Every column name of every relation, and whether any column of that name is temporal.
    columns: HashMap<String, bool>,
    /// Everything an unqualified word may be in an expression: keywords, functions, types,
    /// EXTRACT fields, columns and relation names, sorted for prefix search.
    words: Vec<String>,
    /// Key columns (of a primary or foreign key) by relation and name, and the class of columns
    /// foreign keys link them to: two key columns may be compared with `=` only in one class.
    join_classes: HashMap<(usize, String), usize>,
    /// The schema it was made from: what a model worker in another process makes it again from.
    schema: Schema,
}

impl SchemaConstraint {
    pub fn new(schema: &Schema) -> Self {
        let relations: Vec<Relation> = schema
            .tables
            .iter()
            .map(|t| Relation {
                schema: t.schema.clone(),
                name: t.name.clone(),
                columns: t.columns.iter().map(|c| (c.name.clone(), ValueKind::of_data_type(&c.data_type))).collect(),
                dates: t.columns.iter().filter(|c| c.data_type.eq_ignore_ascii_case("date")).map(|c| c.name.clone()).collect(),
            })
            .collect();
        let mut columns: HashMap<String, bool> = HashMap::new();
        for (name, kind) in relations.iter().flat_map(|r| &r.columns) {
            *columns.entry(name.clone()).or_default() |= *kind == ValueKind::Temporal;
        }
        let mut words: Vec<String> = [KEYWORDS, FUNCTIONS, TYPE_WORDS, EXTRACT_FIELDS].concat().iter().map(|w| w.to_string()).collect();
        words.extend(columns.keys().cloned());
        words.extend(relations.iter().map(|r| r.name.clone()));
        words.extend(relations.iter().filter_map(|r| r.schema.clone()));
        words.sort();
        words.dedup();
        let join_classes = join_classes(schema, &relations);
        Self { relations, columns, words, join_classes, schema: schema.clone() }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Whether `text`, a statement being written, can still become a valid one (or is one): what
    /// the decoder asks, without what it learns while backtracking. For tests and tools.
    pub fn allows(&self, text: &[u8]) -> bool {
        matches!(self.check(text, &HashMap::new()), Verdict::Viable | Verdict::Complete { .. })
    }

    /// Why a whole statement (as found in a reply) is one the constraint refuses: the decoder
    /// wrote it past a dead end, when its backtracks ran out (constrained.rs). Such a statement
    /// often runs, and answers wrongly (`a.aid = c.citing`: a join of two keys that no foreign
    /// key links); shown back to the model, it gets a repair turn instead. None when allowed.
    pub fn refusal(&self, sql: &str) -> Option<String> {
        let text = format!("{sql}\n```");
        let at = match self.check(text.as_bytes(), &HashMap::new()) {
            Verdict::Viable | Verdict::Complete { .. } => return None,
            Verdict::Dead { word_start: Some(at) } | Verdict::Conflict { use_start: at, .. } => at.min(sql.len()),
            Verdict::Dead { word_start: None } => sql.len(),
        };
        let word: String = sql[at..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '"').collect();
        let before: String = sql[..at].chars().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        let before = before.split_whitespace().collect::<Vec<_>>().join(" ");
        Some(match word.is_empty() {
            true => format!("the statement cannot end at `...{before}`: it is incomplete"),
            false => format!(
                "`{word}` (after `...{before}`) does not fit the schema there: it is no column of the tables this query reads, or compares values of different kinds, or joins columns that no foreign key links (join tables through the foreign keys the schema lists), or adds up or averages an identifier"
            ),
        })
    }

    /// What `text` (the statement as written so far) allows, given aliases already known to be
    /// bound to tables (learnt by backtracking).
    pub(crate) fn check(&self, text: &[u8], hypotheses: &HashMap<String, usize>) -> Verdict {
        let lexemes = lex(text);
        Walk { constraint: self, hypotheses, text, lexemes: &lexemes, frames: vec![Frame::new(FrameKind::Statement)], bindings: HashMap::new(), ctes: Vec::new(), outputs: Vec::new(), pending: Vec::new(), qualifiers: Vec::new(), declared_at: None, current: 0 }.run()
    }

    fn relation_named(&self, word: &Word) -> Option<usize> {
        self.relations.iter().position(|r| r.name == word.name)
    }

    fn relation_in_schema(&self, schema: &str, word: &Word) -> Option<usize> {
        self.relations.iter().position(|r| r.name == word.name && r.schema.as_deref() == Some(schema))
    }

    /// The join class of a key column; None for a column that is no key.
    fn join_class(&self, relation: usize, name: &str) -> Option<usize> {
        self.join_classes.get(&(relation, name.to_owned())).copied()
    }

    /// Whether `column`, which is no key, may hold the values of the key column `key` (each by
    /// relation and name) as a link the schema does not declare: its name and the key's table or
    /// own name share a word other than one like `id` (`orders.customer_id` for
    /// `customers.id`, `fare.fare_airline` for `airline.airline_code`, `flight.from_airport` for
    /// `fare.from_airport`; not `fare.fare_id` for `flight.flight_id`, nor `reviews.id` for
    /// `books.id`). Keys are often declared in part, or inferred: this spares the links they
    /// miss.
    fn may_hold_key(&self, column: (usize, &str), key: (usize, &str)) -> bool {
        let referred: Vec<String> = name_words(&self.relations[key.0].name).into_iter().chain(name_words(key.1)).filter(|w| !KEY_WORDS.contains(&w.as_str())).collect();
        name_words(column.1).iter().any(|w| referred.contains(w))
    }

    /// `sum(key)`, `avg(key)`: identifiers added up or averaged answer nothing. A small model
    /// writes `AVG(f.flight_id)` for "the average cost" when it does not find the cost column;
    /// refused, it chooses another column there.
    fn aggregates_identifier(&self, relation: usize, column: &str, function: &str, argument: usize) -> bool {
        matches!((function, argument), ("sum" | "avg", 0)) && self.join_class(relation, column).is_some()
    }

    fn has_column(&self, relation: usize, name: &str) -> bool {
        self.relations[relation].columns.iter().any(|(c, _)| c == name)
    }

    fn column_temporal(&self, relation: usize, name: &str) -> bool {
        self.column_value_kind(relation, name) == Some(ValueKind::Temporal)
    }

    fn column_value_kind(&self, relation: usize, name: &str) -> Option<ValueKind> {
        self.relations[relation].columns.iter().find(|(c, _)| c == name).map(|(_, kind)| *kind)
    }
}

/// The join class of every key column: columns of primary and foreign keys, those a foreign key
/// links in one class (union-find), each other key column in a class of its own.
fn join_classes(schema: &Schema, relations: &[Relation]) -> HashMap<(usize, String), usize> {
    let mut ids: HashMap<(usize, String), usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    let mut id = |key: (usize, String), parent: &mut Vec<usize>| {
        *ids.entry(key).or_insert_with(|| {
            parent.push(parent.len());
            parent.len() - 1
        })
    };
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (r, table) in schema.tables.iter().enumerate() {
        for column in &table.primary_key {
            id((r, column.clone()), &mut parent);
        }
        for fk in &table.foreign_keys {
            let target = relations.iter().position(|t| t.name == fk.references_table && (fk.references_schema.is_none() || t.schema == fk.references_schema));
            for (i, column) in fk.columns.iter().enumerate() {
                let from = id((r, column.clone()), &mut parent);
                if let (Some(target), Some(referenced)) = (target, fk.references_columns.get(i)) {
                    let to = id((target, referenced.clone()), &mut parent);
                    let (a, b) = (root(&mut parent, from), root(&mut parent, to));
                    parent[a] = b;
                }
            }
        }
    }
    ids.into_iter().map(|(key, i)| (key, root(&mut parent, i))).collect()
}

// ---- lexing ----------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    start: usize,
    /// The name it denotes: folded to lower case unless quoted.
    name: String,
    quoted: bool,
    /// Followed by something (or, quoted, closed): it cannot grow any more.
    complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lexeme {
    Word(Word),
    Open,
    Close,
    Comma,
    Dot,
    Semicolon,
    DoubleColon,
    Star,
    /// The closing ``` of the answer's code block.
    Fence,
    /// One or two backticks at the very end: perhaps the fence.
    FenceStart,
    /// A backtick that is not the fence.
    Backtick,
    /// A string literal (its contents are free).
    Str,
    /// Numbers, operators: nothing the constraint looks into.
    Other,
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn lex(text: &[u8]) -> Vec<(Lexeme, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let start = i;
        match b {
            b if b.is_ascii_whitespace() => i += 1,
            b'-' if text.get(i + 1) == Some(&b'-') => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if text.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < text.len() && !(text[i] == b'*' && text.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(text.len());
            }
            b'\'' => {
                i += 1;
                while i < text.len() {
                    if text[i] == b'\'' {
                        if text.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                out.push((Lexeme::Str, start));
            }
            b'"' => {
                let mut name = Vec::new();
                let mut complete = false;
                i += 1;
                while i < text.len() {
                    if text[i] == b'"' {
                        if text.get(i + 1) == Some(&b'"') {
                            name.push(b'"');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        complete = true;
                        break;
                    }
                    name.push(text[i]);
                    i += 1;
                }
                let name = String::from_utf8_lossy(&name).into_owned();
                out.push((Lexeme::Word(Word { start, name, quoted: true, complete }), start));
            }
            b'`' if text[i..].starts_with(b"```") => {
                out.push((Lexeme::Fence, start));
                i += 3;
            }
            // The start of the closing fence, cut by the end of the text; any other backtick is
            // MySQL quoting, which PostgreSQL does not have.
            b'`' if b"```".starts_with(&text[i..]) => {
                out.push((Lexeme::FenceStart, start));
                i = text.len();
            }
            b'`' => {
                out.push((Lexeme::Backtick, start));
                i += 1;
            }
            b if is_word_start(b) => {
                while i < text.len() && is_word_byte(text[i]) {
                    i += 1;
                }
                // A typed or escaped string literal (E'..', B'..', X'..', N'..') is a string, not a
                // word; after `x.` it is a column name followed by a stray quote.
                let after_dot = matches!(out.last(), Some((Lexeme::Dot, _)));
                if i < text.len() && text[i] == b'\'' && i - start == 1 && !after_dot && matches!(text[start].to_ascii_lowercase(), b'e' | b'b' | b'x' | b'n') {
                    continue;
                }
                let name = String::from_utf8_lossy(&text[start..i]).to_lowercase();
                out.push((Lexeme::Word(Word { start, name, quoted: false, complete: i < text.len() }), start));
            }
            b'0'..=b'9' => {
                while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'.' || text[i] == b'_') {
                    i += 1;
                }
                out.push((Lexeme::Other, start));
            }
            b'(' => {
                out.push((Lexeme::Open, start));
                i += 1;
            }
            b')' => {
                out.push((Lexeme::Close, start));
                i += 1;
            }
            b',' => {
                out.push((Lexeme::Comma, start));
                i += 1;
            }
            b'.' => {
                out.push((Lexeme::Dot, start));
                i += 1;
            }
            b';' => {
                out.push((Lexeme::Semicolon, start));
                i += 1;
            }
            b'*' => {
                out.push((Lexeme::Star, start));
                i += 1;
            }
            b':' if text.get(i + 1) == Some(&b':') => {
                out.push((Lexeme::DoubleColon, start));
                i += 2;
            }
            _ => {
                out.push((Lexeme::Other, start));
                i += 1;
            }
        }
    }
    out
}

// ---- walking ---------------------------------------------------------------------------------

/// A relation a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Table(usize),
    /// A CTE, sub-query or function result: its columns are not tracked.
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FrameKind {
    Statement,
    /// A parenthesised query (in FROM, in an expression, or a CTE's body).
    Query,
    /// A function's argument list.
    Function(String),
    /// Other parentheses: grouping, IN lists, column lists.
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    None,
    With,
    Select,
    From,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Any,
    Table,
    /// After a table reference: an alias, AS, or a keyword.
    AfterTable(Bound),
    /// After `AS` following a table reference.
    Alias(Bound),
    /// After `AS` in a SELECT list.
    OutputName,
    CteName,
    Type,
    ExtractField,
    ExtractFrom,
    /// An expression whose first column, if it stands alone, must hold dates or times.
    Temporal,
}

#[derive(Debug, Clone)]
struct Frame {
    kind: FrameKind,
    clause: Clause,
    expect: Expect,
    /// Argument number inside a function's parentheses.
    argument: usize,
    /// The lexeme where the current argument (or the parenthesised text) begins.
    argument_from: usize,
    /// FROM has been read in this query (so every alias of it is known).
    seen_from: bool,
    /// The parenthesis opened where a table reference was expected (a sub-query or function in FROM).
    in_from: bool,
    /// A CTE's body.
    cte_body: bool,
    /// A column-name list after an alias or CTE name (`AS g(i)`, `WITH t(a, b)`): names declared.
    declares: bool,
    /// The furthest clause of this query so far, as [`clause_rank`] orders them.
    rank: u8,
    /// Where the name of the function whose arguments these are starts.
    function_start: Option<usize>,
    /// The lexeme where the date or time EXTRACT, date_trunc or date_part reads begins.
    temporal_source: Option<usize>,
    /// What to_char formats (its first argument): lexemes from..to.
    formatted: Option<(usize, usize)>,
    /// The conditions joined by AND / OR so far in the current WHERE, ON, HAVING or WHEN.
    conditions: Conditions,
    /// A query's scope: the relations its FROM reads (its sub-queries see them too).
    scope: Vec<Bound>,
    /// A query's unqualified columns, and those of its sub-queries that their own scope lacks:
    /// checked against the scope when the query ends.
    columns: Vec<ColumnUse>,
}

/// An unqualified word that can only be a column (or an output name).
#[derive(Debug, Clone)]
struct ColumnUse {
    name: String,
    /// Where it starts.
    start: usize,
    /// It stands in its query's GROUP BY or ORDER BY, where an output name of the query may be
    /// used (nowhere else: not in the SELECT list that declares it, nor in WHERE or HAVING).
    output_allowed: bool,
    /// It is the whole of this argument of this function (`sum(c)`): its kind must fit.
    argument_of: Option<(String, usize)>,
}

/// The conditions of one boolean expression, to refuse one written twice: the loop a small model
/// falls into (`WHERE a = 1 AND b = 2 AND a = 1 AND b = 2 ...`) until the token limit.
#[derive(Debug, Clone, Default)]
struct Conditions {
    /// Each finished condition, lower-cased with its white space collapsed.
    seen: Vec<String>,
    /// Where the current condition's text begins.
    from: usize,
    /// Where the AND / OR that began the current condition starts (none for the first).
    connector: Option<usize>,
    /// A BETWEEN waits for its AND, which joins no condition.
    between: bool,
}

impl Conditions {
    fn starting_at(from: usize) -> Self {
        Self { from, ..Self::default() }
    }
}

impl Frame {
    fn new(kind: FrameKind) -> Self {
        Self { kind, clause: Clause::None, expect: Expect::Any, argument: 0, argument_from: 0, seen_from: false, in_from: false, cte_body: false, declares: false, rank: 0, function_start: None, temporal_source: None, formatted: None, conditions: Conditions::default(), scope: Vec::new(), columns: Vec::new() }
    }

    fn function(&self) -> Option<&str> {
        match &self.kind {
            FrameKind::Function(name) => Some(name),
            _ => None,
        }
    }

    fn is_query(&self) -> bool {
        matches!(self.kind, FrameKind::Statement | FrameKind::Query)
    }
}

/// One side of a comparison.
enum Operand {
    /// A column of a known kind, and where its name starts.
    Column(ValueKind, usize),
    /// A string literal, and whether it reads as a number.
    Text(bool),
    Number,
    /// A column whose kind is not known.
    Unknown,
}

/// `alias.column` written before `alias` was bound, checked when it is.
struct PendingUse {
    alias: String,
    column: String,
    /// Where `alias` starts.
    start: usize,
    /// The column must hold dates or times (it is what EXTRACT reads).
    temporal: bool,
    /// It is the whole of this argument of this function (`sum(x.c)`): its kind must fit.
    argument_of: Option<(String, usize)>,
}

struct Walk<'a> {
    constraint: &'a SchemaConstraint,
    hypotheses: &'a HashMap<String, usize>,
    text: &'a [u8],
    lexemes: &'a [(Lexeme, usize)],
    frames: Vec<Frame>,
    bindings: HashMap<String, Bound>,
    ctes: Vec<String>,
    outputs: Vec<String>,
    /// `alias.column` written before `alias` was bound.
    pending: Vec<PendingUse>,
    /// Every `qualifier.` written, and where it starts.
    qualifiers: Vec<(String, usize)>,
    /// The lexeme that last declared a name (an alias or CTE name).
    declared_at: Option<usize>,
    /// The lexeme being walked.
    current: usize,
}

/// Keywords that end a table reference instead of naming its alias.
const AFTER_TABLE_KEYWORDS: &[&str] = &[
    "as", "cross", "except", "fetch", "for", "full", "group", "having", "inner", "intersect", "join",
    "left", "limit", "natural", "offset", "on", "order", "right", "tablesample", "union", "using",
    "where", "window",
];

/// Where a clause keyword stands in a SELECT: FROM after the select list, WHERE after FROM, and so
/// on to LIMIT and OFFSET (either order). A clause may not come after a later one nor come twice:
/// this is what stops a small model that loops (`... LIMIT 10 ORDER BY ... LIMIT 10 ...`) until
/// the token limit.
fn clause_rank(keyword: &str) -> Option<u8> {
    Some(match keyword {
        "select" => 1,
        "from" => 2,
        "where" => 3,
        "group" => 4,
        "having" => 5,
        "window" => 6,
        "order" => 7,
        "limit" | "offset" | "fetch" => 8,
        _ => return None,
    })
}

/// Keywords that end a condition and start the next (the AND / OR that join conditions aside).
const CONDITION_BOUNDARIES: &[&str] = &[
    "case", "else", "end", "except", "from", "group", "having", "intersect", "join", "limit", "on", "order", "select", "then",
    "union", "using", "when", "where",
];

/// Functions whose parentheses hold `FROM` that is not a FROM clause.
const FROM_FUNCTIONS: &[&str] = &["extract", "overlay", "substring", "trim"];

/// Functions that may stand where a table is expected.
const TABLE_FUNCTIONS: &[&str] = &["generate_series", "json_array_elements", "jsonb_array_elements", "unnest"];

impl Walk<'_> {
    fn frame(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("the statement frame is never popped")
    }

    /// The innermost query (the statement itself at the outermost level).
    fn query_frame(&mut self) -> &mut Frame {
        self.frames.iter_mut().rev().find(|f| f.is_query()).expect("the statement frame is a query")
    }

    /// [`Self::query_frame`], to read.
    fn query(&self) -> &Frame {
        self.frames.iter().rev().find(|f| f.is_query()).expect("the statement frame is a query")
    }

    fn resolve(&self, qualifier: &Word) -> Option<Bound> {
        if let Some(bound) = self.bindings.get(&qualifier.name) {
            return Some(*bound);
        }
        if let Some(&relation) = self.hypotheses.get(&qualifier.name) {
            return Some(Bound::Table(relation));
        }
        if self.ctes.contains(&qualifier.name) {
            return Some(Bound::Opaque);
        }
        self.constraint.relation_named(qualifier).map(Bound::Table)
    }

    fn run(mut self) -> Verdict {
        for index in 0..self.lexemes.len() {
            let (lexeme, at) = &self.lexemes[index];
            let verdict = match lexeme {
                Lexeme::Word(word) => self.word(index, word),
                Lexeme::Open => self.open(index),
                Lexeme::Close => self.close(index),
                Lexeme::Comma => self.comma(index),
                Lexeme::Semicolon | Lexeme::Fence => {
                    if self.frames.len() != 1 {
                        return Verdict::Dead { word_start: None };
                    }
                    // Every qualifier must name something the statement's FROM clauses bound.
                    if let Some((_, start)) = self.qualifiers.iter().find(|(q, _)| !self.bindings.contains_key(q) && !self.ctes.contains(q)) {
                        return Verdict::Dead { word_start: Some(*start) };
                    }
                    if let Some(start) = self.mismatched_comparison(self.frames[0].conditions.from, index) {
                        return Verdict::Dead { word_start: Some(start) };
                    }
                    return match self.unresolved_columns(&self.frames[0]).first() {
                        Some(column) => Verdict::Dead { word_start: Some(column.start) },
                        None => Verdict::Complete { end: *at },
                    };
                }
                Lexeme::FenceStart => match self.frames.len() {
                    1 => Verdict::Viable,
                    _ => Verdict::Dead { word_start: None },
                },
                Lexeme::Backtick => Verdict::Dead { word_start: None },
                Lexeme::DoubleColon => {
                    self.frame().expect = Expect::Type;
                    Verdict::Viable
                }
                // `x.` goes on at once with a column name or `*`, nothing else (`x..y`, `x.'`,
                // `x.` then the end, or white space or a comment, which is how a model refused
                // every column of `x` would slip past the check).
                Lexeme::Dot => match self.lexemes.get(index + 1) {
                    None if self.text.len() == at + 1 => Verdict::Viable,
                    Some((Lexeme::Word(_) | Lexeme::Star, next_at)) if *next_at == at + 1 => Verdict::Viable,
                    _ => Verdict::Dead { word_start: None },
                },
                // A string right after `x.col` (typed literals follow a type name, never that).
                Lexeme::Str if index >= 2 && matches!(self.lexemes[index - 2].0, Lexeme::Dot) && matches!(self.lexemes[index - 1].0, Lexeme::Word(_)) => {
                    Verdict::Dead { word_start: None }
                }
                // `**` is no SQL operator (markdown bold is how a model refused `T2.col` writes
                // `T2.**col**`).
                Lexeme::Star if self.text.get(at + 1) == Some(&b'*') => Verdict::Dead { word_start: None },
                Lexeme::Star if matches!(self.previous(index), Some(Lexeme::Dot)) => self.all_columns(index),
                // An alias is no number (`s/course_id` is how a model refused `s.` escapes).
                Lexeme::Other if matches!(self.text[*at], b'/' | b'+' | b'-' | b'%') && self.is_bare_alias(index.checked_sub(1)) => {
                    Verdict::Dead { word_start: None }
                }
                Lexeme::Star | Lexeme::Other | Lexeme::Str => {
                    let frame = self.frame();
                    if !matches!(frame.expect, Expect::Table) {
                        frame.expect = Expect::Any;
                    }
                    Verdict::Viable
                }
            };
            if verdict != Verdict::Viable {
                return verdict;
            }
            // Columns joined where no foreign key links them are refused as soon as the second
            // one is written, not at the condition's end: by then the model has often
            // written its way around the check (`GROUPS BY`, `T2/course_id`).
            if let Lexeme::Word(word) = lexeme {
                if word.complete {
                    if let Some(start) = self.unlinked_columns_joined(index) {
                        return Verdict::Dead { word_start: Some(start) };
                    }
                }
            }
        }
        Verdict::Viable
    }

    /// When the word at lexeme `index` ends `a = b` (each a column of one table, qualified or
    /// not) and no foreign key links them: where `b`'s name starts. Unlinked are two key columns
    /// of different join classes, and a key column with a column of another table that is no
    /// key and whose name does not refer to it ([`SchemaConstraint::may_hold_key`]):
    /// `course.course_id = student.total_credit`, `t1.instructor_id = t2.inspirational`, an
    /// identifier equal to a count, which a small model writes to reach a table.
    fn unlinked_columns_joined(&self, index: usize) -> Option<usize> {
        let Lexeme::Word(right) = &self.lexemes[index].0 else { return None };
        let operand_start = |last: usize| match (last.checked_sub(1).map(|i| &self.lexemes[i].0), last.checked_sub(2).map(|i| &self.lexemes[i].0)) {
            (Some(Lexeme::Dot), Some(Lexeme::Word(_))) => last.checked_sub(2),
            _ => Some(last),
        };
        let mut equals = operand_start(index)?.checked_sub(1)?;
        // `a = (b)` is the same join (and how a model refused `b` wrote it again).
        while self.lexemes[equals].0 == Lexeme::Open {
            equals = equals.checked_sub(1)?;
        }
        let at = self.lexemes[equals].1;
        let lone_equals = self.lexemes[equals].0 == Lexeme::Other
            && self.text[at] == b'='
            && !matches!(self.text.get(at + 1), Some(b'=' | b'>' | b'<'))
            && !at.checked_sub(1).is_some_and(|b| matches!(self.text[b], b'<' | b'>' | b'!' | b'='));
        let left = equals.checked_sub(1)?;
        if !lone_equals || !matches!(self.lexemes[left].0, Lexeme::Word(_)) {
            return None;
        }
        let (a, b) = (self.column_of(left)?, self.column_of(index)?);
        let unlinked = match (self.constraint.join_class(a.0, a.1), self.constraint.join_class(b.0, b.1)) {
            (Some(a), Some(b)) => a != b,
            (Some(_), None) => a.0 != b.0 && !self.constraint.may_hold_key(b, a),
            (None, Some(_)) => a.0 != b.0 && !self.constraint.may_hold_key(a, b),
            (None, None) => false,
        };
        unlinked.then_some(right.start)
    }

    /// `x.*` (the star at lexeme `index`): every column of `x`, in a SELECT list or a function's
    /// arguments (`count(t.*)`) only, and nothing glued to it (`T2.*/`, `T2.*col`: how a model
    /// refused `T2.col` escapes). Elsewhere the model meant a column `x` lacks: it goes back to
    /// the qualifier and chooses another.
    fn all_columns(&self, index: usize) -> Verdict {
        let frame = self.frames.last().expect("a frame");
        if frame.clause != Clause::Select && frame.function().is_none() {
            let qualifier = index.checked_sub(2).map(|q| self.lexemes[q].1);
            return Verdict::Dead { word_start: qualifier };
        }
        match self.text.get(self.lexemes[index].1 + 1) {
            Some(&b) if !(b.is_ascii_whitespace() || matches!(b, b',' | b')' | b';' | b'`')) => Verdict::Dead { word_start: None },
            _ => Verdict::Viable,
        }
    }

    fn previous(&self, index: usize) -> Option<&Lexeme> {
        index.checked_sub(1).map(|i| &self.lexemes[i].0)
    }

    fn next(&self, index: usize) -> Option<&Lexeme> {
        self.lexemes.get(index + 1).map(|(l, _)| l)
    }

    fn word(&mut self, index: usize, word: &Word) -> Verdict {
        let dead = Verdict::Dead { word_start: Some(word.start) };
        let next = self.next(index).cloned();
        // A column after `qualifier.` (or a table after `schema.` in FROM).
        if let (Some(Lexeme::Dot), Some(Lexeme::Word(qualifier))) = (self.previous(index), index.checked_sub(2).map(|i| &self.lexemes[i].0)) {
            let qualifier = qualifier.clone();
            return self.qualified(word, &qualifier, next.as_ref());
        }
        // A qualifier: a table, alias or CTE, or in a SELECT list before its FROM, an alias to come.
        if next == Some(Lexeme::Dot) {
            let frame = self.frames.last().expect("a frame");
            let ok = self.resolve(word).is_some()
                || (matches!(frame.expect, Expect::Table) && self.constraint.relations.iter().any(|r| r.schema.as_deref() == Some(word.name.as_str())))
                || !frame.seen_from;
            return if ok { Verdict::Viable } else { dead };
        }
        if self.frames.last().expect("a frame").declares {
            if word.complete {
                self.outputs.push(word.name.clone());
            }
            return Verdict::Viable;
        }
        if !word.complete {
            return self.partial(word);
        }
        let expect = self.frames.last().expect("a frame").expect.clone();
        self.current = index;
        match expect {
            Expect::Table => self.table_reference(word, next.as_ref()),
            Expect::AfterTable(bound) => {
                if !word.quoted && sql_names::contains(AFTER_TABLE_KEYWORDS, &word.name) {
                    if word.name == "as" {
                        self.frame().expect = Expect::Alias(bound);
                        return Verdict::Viable;
                    }
                    self.frame().expect = Expect::Any;
                    return self.keyword(word);
                }
                self.bind(word, bound)
            }
            Expect::Alias(bound) => self.bind(word, bound),
            Expect::OutputName => {
                self.outputs.push(word.name.clone());
                self.frame().expect = Expect::Any;
                Verdict::Viable
            }
            Expect::CteName => {
                if !word.quoted && word.name == "recursive" {
                    return Verdict::Viable;
                }
                self.ctes.push(word.name.clone());
                self.declared_at = Some(self.current);
                self.frame().expect = Expect::Any;
                Verdict::Viable
            }
            // The rest of a many-word type (double precision, timestamp with time zone) is
            // allowed anywhere, as type words are.
            Expect::Type => {
                self.frame().expect = Expect::Any;
                let impossible_cast = self.cast_source(index).is_some_and(|kind| kind.cannot_cast_to(ValueKind::of_type_word(&word.name)));
                match !word.quoted && sql_names::contains(TYPE_WORDS, &word.name) && !impossible_cast {
                    true => Verdict::Viable,
                    false => dead,
                }
            }
            Expect::ExtractField => {
                self.frame().expect = Expect::ExtractFrom;
                match !word.quoted && sql_names::contains(EXTRACT_FIELDS, &word.name) {
                    true => Verdict::Viable,
                    false => dead,
                }
            }
            Expect::ExtractFrom => {
                self.frame().expect = Expect::Temporal;
                self.frame().temporal_source = Some(index + 1);
                match !word.quoted && word.name == "from" {
                    true => Verdict::Viable,
                    false => dead,
                }
            }
            Expect::Temporal => {
                self.frame().expect = Expect::Any;
                let alone = matches!(next, Some(Lexeme::Close) | Some(Lexeme::Comma));
                if alone && self.constraint.columns.contains_key(&word.name) && !self.is_known_word(word) {
                    self.note_unqualified_column(word, next.as_ref());
                    return match self.constraint.columns[&word.name] {
                        true => Verdict::Viable,
                        false => self.not_temporal(word),
                    };
                }
                self.expression_word(word, next.as_ref())
            }
            Expect::Any => self.expression_word(word, next.as_ref()),
        }
    }

    /// `word` is what EXTRACT, date_trunc or date_part reads, and holds no date or time. Dead
    /// where the function's name starts: the model goes back and writes something else than the
    /// function there (most often the column itself: `GROUP BY year`, not EXTRACT(YEAR FROM year)).
    fn not_temporal(&self, word: &Word) -> Verdict {
        Verdict::Dead { word_start: Some(self.frames.last().and_then(|f| f.function_start).unwrap_or(word.start)) }
    }

    /// Whether lexemes `from..to` are one string, a format for dates and times (`'YYYY-MM'`).
    fn is_date_format(&self, from: usize, to: usize) -> bool {
        to == from + 1 && self.lexemes[from].0 == Lexeme::Str && is_date_format(&self.string_contents(self.lexemes[from].1))
    }

    /// Whether the lexemes `from..to` (what EXTRACT, date_trunc, date_part or to_char reads) can hold no
    /// date or time: built of columns that hold none (`arrival_time - departure_time` over Unix
    /// seconds), functions that return numbers (EXTRACT of EXTRACT), numbers and operators; or one
    /// date minus another (a number of days). Anything of unknown type (another function, a cast,
    /// a string, a column of a sub-query) may be a date.
    fn never_temporal(&self, from: usize, to: usize) -> bool {
        if self.date_difference(from, to) {
            return true;
        }
        let mut operands = 0;
        let mut k = from;
        while k < to {
            let Lexeme::Word(word) = &self.lexemes[k].0 else {
                match self.lexemes[k].0 {
                    Lexeme::Other | Lexeme::Star | Lexeme::Open | Lexeme::Close | Lexeme::Comma | Lexeme::Dot => {
                        k += 1;
                        continue;
                    }
                    _ => return false,
                }
            };
            if matches!(self.lexemes.get(k + 1), Some((Lexeme::Dot, _))) {
                k += 1; // a qualifier
                continue;
            }
            if !word.quoted && sql_names::contains(NUMBER_FUNCTIONS, &word.name) && matches!(self.lexemes.get(k + 1), Some((Lexeme::Open, _))) {
                // A number, whatever its arguments: skip them.
                operands += 1;
                k = self.matching_close(k + 1).unwrap_or(to);
                continue;
            }
            let temporal = match self.column_kind(k) {
                Some((temporal, _)) => temporal,
                None if self.is_known_word(word) || self.outputs.contains(&word.name) || self.ctes.contains(&word.name) => return false,
                // A table or alias alone: a whole row, never a date.
                None if self.bindings.contains_key(&word.name) => false,
                None => return false,
            };
            if temporal {
                return false;
            }
            operands += 1;
            k += 1;
        }
        operands > 0
    }

    /// Whether lexemes `from..to`, parentheses aside, are `a - b` with both a date (a `date`
    /// column or CURRENT_DATE): a number of days.
    fn date_difference(&self, from: usize, to: usize) -> bool {
        let parts: Vec<usize> = (from..to).filter(|&k| !matches!(self.lexemes[k].0, Lexeme::Open | Lexeme::Close)).collect();
        let is_date = |k: usize| match &self.lexemes[k].0 {
            Lexeme::Word(w) if !w.quoted && w.name == "current_date" => true,
            Lexeme::Word(_) => self.column_kind(k).is_some_and(|(_, date)| date),
            _ => false,
        };
        let minus = |k: usize| matches!(self.lexemes[k].0, Lexeme::Other) && self.text.get(self.lexemes[k].1) == Some(&b'-');
        // A qualified column is three lexemes (`x . col`); its kind is read at the column.
        let operand_end = |start: usize| match parts.get(start + 1).map(|&k| &self.lexemes[k].0) {
            Some(Lexeme::Dot) => start + 2,
            _ => start,
        };
        let first = operand_end(0);
        let Some(&op) = parts.get(first + 1) else { return false };
        let second = operand_end(first + 2);
        second + 1 == parts.len() && is_date(parts[first]) && minus(op) && is_date(parts[second])
    }

    /// For a word that names a column here (qualified by a bound table, or unqualified): whether
    /// it holds dates or times, and whether it is of type date. `None` when it is no known column.
    /// A keyword that is also a column's name (`year`, `month`) is that column where it stands
    /// alone as what a function reads (`to_char(year, ...)`, `EXTRACT(YEAR FROM year)`): no
    /// keyword stands there.
    fn column_kind(&self, k: usize) -> Option<(bool, bool)> {
        let Lexeme::Word(word) = &self.lexemes[k].0 else { return None };
        match (k.checked_sub(2).map(|q| &self.lexemes[q].0), k.checked_sub(1).map(|d| &self.lexemes[d].0)) {
            (Some(Lexeme::Word(qualifier)), Some(Lexeme::Dot)) => match self.resolve(qualifier) {
                Some(Bound::Table(relation)) if self.constraint.has_column(relation, &word.name) => {
                    Some((self.constraint.column_temporal(relation, &word.name), self.constraint.relations[relation].dates.contains(&word.name)))
                }
                _ => None,
            },
            _ if (self.is_known_word(word) && !self.alone_as_argument(k)) || self.outputs.contains(&word.name) || self.ctes.contains(&word.name) => None,
            _ => {
                let temporal = *self.constraint.columns.get(&word.name)?;
                let date = self.constraint.relations.iter().filter(|r| r.columns.iter().any(|(c, _)| *c == word.name)).all(|r| r.dates.contains(&word.name));
                Some((temporal, date))
            }
        }
    }

    /// Whether the word at lexeme `k` is a whole function argument, or what EXTRACT reads after
    /// FROM: `(` or `,` or FROM before it, `)` or `,` after it.
    fn alone_as_argument(&self, k: usize) -> bool {
        let before = matches!(self.previous(k), Some(Lexeme::Open | Lexeme::Comma)) || matches!(self.previous(k), Some(Lexeme::Word(w)) if !w.quoted && w.name == "from");
        before && matches!(self.next(k), Some(Lexeme::Close | Lexeme::Comma)) && self.frames.last().is_some_and(|f| f.function().is_some())
    }

    /// In a condition of the form `a op b` (from byte `from` to lexeme `to`), where `op` compares
    /// (`=`, `<>`, `<`, LIKE, ...) and each side is a column or a literal: where the side that makes
    /// it an error starts (a text column compared with a number, a number with a string that is
    /// no number, LIKE over a number or a date). Either side blamed is a column: the literal is
    /// the question's, the column the model's choice; of two columns, the one written last.
    fn mismatched_comparison(&self, from: usize, to: usize) -> Option<usize> {
        let first = self.lexemes[..to].partition_point(|(_, at)| *at < from);
        let (left, mut k) = self.operand(first, to)?;
        let is_word = |k: usize, names: &[&str]| matches!(&self.lexemes[k].0, Lexeme::Word(w) if !w.quoted && names.contains(&w.name.as_str()));
        let operator_byte = |k: usize| self.lexemes[k].0 == Lexeme::Other && matches!(self.text[self.lexemes[k].1], b'<' | b'>' | b'=' | b'!');
        let operator_start = k;
        let like = k < to && is_word(k, &["not", "like", "ilike"]);
        if like {
            while k < to && is_word(k, &["not", "like", "ilike"]) {
                k += 1;
            }
        } else {
            while k < to && operator_byte(k) && self.lexemes[k].1 == self.lexemes[operator_start].1 + (k - operator_start) {
                k += 1;
            }
            let operator = &self.text[self.lexemes.get(operator_start)?.1..][..k - operator_start];
            if !matches!(operator, b"=" | b"<>" | b"!=" | b"<" | b">" | b"<=" | b">=") {
                return None;
            }
        }
        let (right, end) = self.operand(k, to)?;
        if end != to {
            return None;
        }
        match (left, right) {
            (Operand::Column(kind, start), _) if like => matches!(kind, ValueKind::Number | ValueKind::Temporal | ValueKind::Boolean).then_some(start),
            (_, _) if like => None,
            (Operand::Column(a, _), Operand::Column(b, start)) => a.clashes_with(b).then_some(start),
            (Operand::Column(kind, start), literal) | (literal, Operand::Column(kind, start)) => match literal {
                Operand::Number => matches!(kind, ValueKind::Text | ValueKind::Temporal | ValueKind::Boolean).then_some(start),
                Operand::Text(number) => (kind == ValueKind::Number && !number).then_some(start),
                _ => None,
            },
            _ => None,
        }
    }

    /// A column (`c` or `x.c`) or literal at lexeme `k` (before `to`), and the lexeme after it.
    fn operand(&self, k: usize, to: usize) -> Option<(Operand, usize)> {
        let lexeme = |i: usize| self.lexemes[..to].get(i).map(|(l, _)| l);
        let column = |i: usize| match &self.lexemes[i].0 {
            Lexeme::Word(word) => self.reference_kind(i).map_or(Operand::Unknown, |kind| Operand::Column(kind, word.start)),
            _ => Operand::Unknown,
        };
        match (lexeme(k)?, lexeme(k + 1), lexeme(k + 2)) {
            (Lexeme::Word(_), Some(Lexeme::Dot), Some(Lexeme::Word(_))) => Some((column(k + 2), k + 3)),
            (Lexeme::Word(_), Some(Lexeme::Dot | Lexeme::Open), _) => None,
            (Lexeme::Word(_), _, _) => Some((column(k), k + 1)),
            (Lexeme::Str, _, _) => Some((Operand::Text(reads_as_number(&self.string_contents(self.lexemes[k].1))), k + 1)),
            (Lexeme::Other, _, _) if self.text[self.lexemes[k].1].is_ascii_digit() => Some((Operand::Number, k + 1)),
            _ => None,
        }
    }

    /// When the function argument that ends at lexeme `to` is a column alone (after DISTINCT, if
    /// any) of a kind the function has no form for (`sum(name)`, `lower(id)`, `to_char(name,
    /// ...)`: PostgreSQL casts no argument implicitly to fit), or a key column added up or
    /// averaged ([`SchemaConstraint::aggregates_identifier`]): where the column's name starts, so
    /// that the model chooses another column there. One whose table is not known yet (a SELECT
    /// list before its FROM) is checked when FROM binds its qualifier, or when its query ends.
    fn argument_of_wrong_kind(&mut self, to: usize) -> Option<usize> {
        let frame = self.frames.last()?;
        let (function, argument) = (frame.function()?.to_owned(), frame.argument);
        let mut from = frame.argument_from;
        if matches!(self.lexemes.get(from), Some((Lexeme::Word(w), _)) if !w.quoted && w.name == "distinct") {
            from += 1;
        }
        if let (Some(Lexeme::Word(qualifier)), Some(Lexeme::Dot), true) = (self.lexemes.get(from).map(|l| &l.0), self.lexemes.get(from + 1).map(|l| &l.0), to == from + 3) {
            if self.resolve(qualifier).is_none() {
                let start = qualifier.start;
                if let Some(pending) = self.pending.iter_mut().rev().find(|p| p.start == start) {
                    pending.argument_of = Some((function, argument));
                }
                return None;
            }
        }
        match self.operand(from, to)? {
            (Operand::Column(kind, start), end)
                if end == to
                    && (kind.refused_by(&function, argument)
                        || self.column_of(end - 1).is_some_and(|(relation, name)| self.constraint.aggregates_identifier(relation, name, &function, argument))) =>
            {
                Some(start)
            }
            // An unqualified column whose table is not known yet (a SELECT list before its FROM):
            // checked with the query's other columns when it ends.
            (Operand::Unknown, end) if end == to && from + 1 == to => {
                let start = self.lexemes[from].1;
                if let Some(column) = self.query_frame().columns.iter_mut().rev().find(|c| c.start == start) {
                    column.argument_of = Some((function, argument));
                }
                None
            }
            _ => None,
        }
    }

    /// For the type word at lexeme `k`, the kind of the column it casts when that is a column
    /// alone: `c::type`, `x.c::type`, `CAST(c AS type)`, `CAST(x.c AS type)`.
    fn cast_source(&self, k: usize) -> Option<ValueKind> {
        let lexeme = |back: usize| k.checked_sub(back).map(|i| &self.lexemes[i].0);
        let column = match lexeme(1)? {
            Lexeme::DoubleColon => k.checked_sub(2)?,
            Lexeme::Word(w) if !w.quoted && w.name == "as" => {
                let qualified = lexeme(3) == Some(&Lexeme::Dot);
                let open = if qualified { lexeme(5) } else { lexeme(3) };
                if open != Some(&Lexeme::Open) || !matches!(lexeme(if qualified { 6 } else { 4 }), Some(Lexeme::Word(w)) if w.name == "cast") {
                    return None;
                }
                k - 2
            }
            _ => return None,
        };
        matches!(self.lexemes.get(column)?.0, Lexeme::Word(_)).then_some(())?;
        self.reference_kind(column)
    }

    /// The contents of the string literal whose opening quote is at byte `at`.
    fn string_contents(&self, at: usize) -> String {
        let mut contents = Vec::new();
        let mut i = at + 1;
        while i < self.text.len() {
            if self.text[i] == b'\'' {
                if self.text.get(i + 1) != Some(&b'\'') {
                    break;
                }
                i += 1;
            }
            contents.push(self.text[i]);
            i += 1;
        }
        String::from_utf8_lossy(&contents).into_owned()
    }

    /// The kind of value the column at lexeme `k` holds: a column of the table its qualifier is
    /// bound to, or, unqualified, of the tables of its query's scope that have it (when they
    /// agree). `None` when that is not known.
    fn reference_kind(&self, k: usize) -> Option<ValueKind> {
        let (name, relations) = self.referenced_relations(k)?;
        let mut kinds = relations.into_iter().filter_map(|t| self.constraint.column_value_kind(t, name));
        let kind = kinds.next()?;
        kinds.all(|k| k == kind).then_some(kind)
    }

    /// The relation and column the word at lexeme `k` names, if it names a column of exactly one
    /// relation of the query.
    fn column_of(&self, k: usize) -> Option<(usize, &str)> {
        let (name, relations) = self.referenced_relations(k)?;
        let holders: Vec<usize> = relations.into_iter().filter(|&t| self.constraint.has_column(t, name)).collect();
        match holders[..] {
            [relation] => Some((relation, name)),
            _ => None,
        }
    }

    /// The column name the word at lexeme `k` is, and the relations it may belong to: the one its
    /// qualifier names, else the tables of the query's scope. None for a word that is no column
    /// of a table (a keyword, a declared name, a column of a CTE or sub-query).
    fn referenced_relations(&self, k: usize) -> Option<(&str, Vec<usize>)> {
        let Lexeme::Word(word) = &self.lexemes[k].0 else { return None };
        if let (Some(Lexeme::Word(qualifier)), Some(Lexeme::Dot)) = (k.checked_sub(2).map(|q| &self.lexemes[q].0), k.checked_sub(1).map(|d| &self.lexemes[d].0)) {
            return match self.resolve(qualifier) {
                Some(Bound::Table(relation)) => Some((&word.name, vec![relation])),
                _ => None,
            };
        }
        if self.is_known_word(word) || self.is_declared(word) {
            return None;
        }
        let tables = self.query().scope.iter().filter_map(|b| match b {
            Bound::Table(t) => Some(*t),
            Bound::Opaque => None,
        });
        Some((&word.name, tables.collect()))
    }

    /// The index of the `)` that closes the `(` at lexeme `open`.
    fn matching_close(&self, open: usize) -> Option<usize> {
        let mut depth = 0;
        for k in open..self.lexemes.len() {
            match self.lexemes[k].0 {
                Lexeme::Open => depth += 1,
                Lexeme::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(k);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A word that is a keyword, function or type rather than a name.
    fn is_known_word(&self, word: &Word) -> bool {
        !word.quoted && [KEYWORDS, FUNCTIONS, TYPE_WORDS].iter().any(|list| sql_names::contains(list, &word.name))
    }

    fn qualified(&mut self, word: &Word, qualifier: &Word, next: Option<&Lexeme>) -> Verdict {
        let dead = Verdict::Dead { word_start: Some(word.start) };
        let expect = self.frames.last().expect("a frame").expect.clone();
        if expect == Expect::Table {
            // schema.table in FROM
            let found = self.constraint.relations.iter().any(|r| r.schema.as_deref() == Some(qualifier.name.as_str()) && r.name.starts_with(&word.name));
            if !word.complete {
                return if found { Verdict::Viable } else { Verdict::Dead { word_start: None } };
            }
            return match self.constraint.relation_in_schema(&qualifier.name, word) {
                Some(relation) => {
                    self.query_frame().scope.push(Bound::Table(relation));
                    self.frame().expect = Expect::AfterTable(Bound::Table(relation));
                    Verdict::Viable
                }
                None => dead,
            };
        }
        if word.complete {
            self.qualifiers.push((qualifier.name.clone(), qualifier.start));
        }
        let temporal_needed = expect == Expect::Temporal && matches!(next, Some(Lexeme::Close) | Some(Lexeme::Comma));
        if word.complete && !matches!(expect, Expect::Type) {
            self.frame().expect = Expect::Any;
        }
        match self.resolve(qualifier) {
            Some(Bound::Table(relation)) => {
                let columns = &self.constraint.relations[relation].columns;
                if !word.complete {
                    return match columns.iter().any(|(c, _)| c.starts_with(&word.name)) {
                        true => Verdict::Viable,
                        false => Verdict::Dead { word_start: None },
                    };
                }
                if !self.constraint.has_column(relation, &word.name) {
                    return dead;
                }
                if temporal_needed && !self.constraint.column_temporal(relation, &word.name) {
                    return self.not_temporal(word);
                }
                Verdict::Viable
            }
            Some(Bound::Opaque) => Verdict::Viable,
            // Not bound yet (a SELECT list before its FROM): any name, checked when FROM binds
            // the qualifier (it may be a sub-query's output column).
            None => {
                if word.complete {
                    self.pending.push(PendingUse { alias: qualifier.name.clone(), column: word.name.clone(), start: qualifier.start, temporal: temporal_needed, argument_of: None });
                }
                Verdict::Viable
            }
        }
    }

    /// The unfinished last word: can it still become something allowed here?
    fn partial(&self, word: &Word) -> Verdict {
        let frame = self.frames.last().expect("a frame");
        let prefix = word.name.as_str();
        fn starts<'n>(mut names: impl Iterator<Item = &'n String>, prefix: &str) -> bool {
            names.any(|n| n.starts_with(prefix))
        }
        let any_name = |names: &mut dyn Iterator<Item = &String>| starts(names, prefix);
        let ok = match &frame.expect {
            Expect::AfterTable(_) | Expect::Alias(_) | Expect::OutputName | Expect::CteName | Expect::Temporal => true,
            Expect::Table => {
                any_name(&mut self.constraint.relations.iter().map(|r| &r.name))
                    || any_name(&mut self.constraint.relations.iter().filter_map(|r| r.schema.as_ref()))
                    || any_name(&mut self.ctes.iter())
                    || (!word.quoted && ["lateral", "only"].iter().chain(TABLE_FUNCTIONS).any(|w| w.starts_with(prefix)))
            }
            Expect::Type => !word.quoted && sql_names::any_starts_with(TYPE_WORDS, prefix),
            Expect::ExtractField => !word.quoted && sql_names::any_starts_with(EXTRACT_FIELDS, prefix),
            Expect::ExtractFrom => !word.quoted && "from".starts_with(prefix),
            // Before FROM, any word may turn out to be an alias qualifier (`t.`).
            Expect::Any if !frame.seen_from => true,
            Expect::Any => {
                let in_words = match word.quoted {
                    true => self.constraint.columns.keys().chain(self.constraint.relations.iter().map(|r| &r.name)).any(|n| n.starts_with(prefix)),
                    false => {
                        let at = self.constraint.words.partition_point(|w| w.as_str() < prefix);
                        self.constraint.words.get(at).is_some_and(|w| w.starts_with(prefix))
                    }
                };
                in_words
                    || any_name(&mut self.bindings.keys())
                    || any_name(&mut self.ctes.iter())
                    || any_name(&mut self.outputs.iter())
                    || any_name(&mut self.hypotheses.keys())
            }
        };
        match ok {
            true => Verdict::Viable,
            false => Verdict::Dead { word_start: None },
        }
    }

    fn table_reference(&mut self, word: &Word, next: Option<&Lexeme>) -> Verdict {
        if !word.quoted && (word.name == "lateral" || word.name == "only") {
            return Verdict::Viable;
        }
        if next == Some(&Lexeme::Open) && !word.quoted && TABLE_FUNCTIONS.contains(&word.name.as_str()) {
            return Verdict::Viable; // its ')' leaves an opaque relation (see close())
        }
        let bound = if self.ctes.contains(&word.name) {
            Bound::Opaque
        } else {
            match self.constraint.relation_named(word) {
                Some(relation) => Bound::Table(relation),
                None => return Verdict::Dead { word_start: Some(word.start) },
            }
        };
        // A table's own name qualifies its columns until an alias replaces it.
        self.bindings.insert(word.name.clone(), bound);
        self.query_frame().scope.push(bound);
        let verdict = self.check_pending(&word.name, bound);
        self.frame().expect = Expect::AfterTable(bound);
        verdict
    }

    fn bind(&mut self, alias: &Word, bound: Bound) -> Verdict {
        self.bindings.insert(alias.name.clone(), bound);
        self.declared_at = Some(self.current);
        self.frame().expect = Expect::Any;
        self.check_pending(&alias.name, bound)
    }

    /// Earlier `alias.column` uses, now that `alias` is bound.
    fn check_pending(&self, alias: &str, bound: Bound) -> Verdict {
        let Bound::Table(relation) = bound else { return Verdict::Viable };
        let conflict = self
            .pending
            .iter()
            .filter(|p| p.alias == alias)
            .filter(|p| {
                let refused = p.argument_of.as_ref().is_some_and(|(function, argument)| {
                    self.constraint.column_value_kind(relation, &p.column).is_some_and(|kind| kind.refused_by(function, *argument))
                        || self.constraint.aggregates_identifier(relation, &p.column, function, *argument)
                });
                refused || !(self.constraint.has_column(relation, &p.column) && (!p.temporal || self.constraint.column_temporal(relation, &p.column)))
            })
            .map(|p| p.start)
            .min();
        match conflict {
            Some(use_start) => Verdict::Conflict { alias: alias.to_owned(), relation, use_start },
            None => Verdict::Viable,
        }
    }

    /// The word `back` words before the current one, if it is a plain word.
    fn word_before(&self, back: usize) -> Option<&str> {
        match &self.lexemes[self.current.checked_sub(back)?].0 {
            Lexeme::Word(w) if !w.quoted => Some(w.name.as_str()),
            _ => None,
        }
    }

    fn keyword(&mut self, word: &Word) -> Verdict {
        let in_from_function = self.frames.last().and_then(Frame::function).is_some_and(|f| FROM_FUNCTIONS.contains(&f));
        // `IS [NOT] DISTINCT FROM` and `WITHIN GROUP` are operators, not clauses.
        let operator = match word.name.as_str() {
            "from" => self.word_before(1) == Some("distinct") && matches!(self.word_before(2), Some("is" | "not")),
            "group" => self.word_before(1) == Some("within"),
            _ => false,
        };
        if operator {
            self.frame().expect = Expect::Any;
            return Verdict::Viable;
        }
        let frame = self.frames.last().expect("a frame");
        let ends_condition = match word.name.as_str() {
            "and" => !frame.conditions.between,
            name => name == "or" || CONDITION_BOUNDARIES.contains(&name),
        };
        if ends_condition {
            if let Some(start) = self.mismatched_comparison(frame.conditions.from, self.current) {
                return Verdict::Dead { word_start: Some(start) };
            }
        }
        let text = self.text;
        let frame = self.frame();
        let conditions = &mut frame.conditions;
        match word.name.as_str() {
            "between" => conditions.between = true,
            "and" if conditions.between => conditions.between = false,
            "and" | "or" => {
                let condition = String::from_utf8_lossy(&text[conditions.from.min(word.start)..word.start]).split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                if conditions.seen.contains(&condition) {
                    // Written before: go back to the AND / OR that began it and write something else.
                    return Verdict::Dead { word_start: conditions.connector.or(Some(word.start)) };
                }
                conditions.seen.push(condition);
                conditions.connector = Some(word.start);
                conditions.from = word.start + word.name.len();
            }
            name if CONDITION_BOUNDARIES.contains(&name) => {
                *conditions = Conditions::starting_at(word.start + word.name.len());
            }
            _ => {}
        }
        if let Some(rank) = clause_rank(&word.name).filter(|_| !in_from_function) {
            let again = rank == frame.rank && rank != 8;
            if rank < frame.rank || again {
                return Verdict::Dead { word_start: Some(word.start) };
            }
            frame.rank = rank;
        }
        match word.name.as_str() {
            "select" => {
                if frame.kind == FrameKind::Group {
                    frame.kind = FrameKind::Query;
                }
                frame.clause = Clause::Select;
                frame.seen_from = false;
                frame.expect = Expect::Any;
            }
            "from" if in_from_function => {
                frame.expect = match frame.function() == Some("extract") {
                    true => Expect::Temporal,
                    false => Expect::Any,
                };
            }
            "from" => {
                frame.clause = Clause::From;
                frame.seen_from = true;
                frame.expect = Expect::Table;
            }
            "join" => {
                frame.clause = Clause::From;
                frame.expect = Expect::Table;
            }
            "with" if frame.clause == Clause::None || frame.kind == FrameKind::Group => {
                if frame.kind == FrameKind::Group {
                    frame.kind = FrameKind::Query;
                }
                frame.clause = Clause::With;
                frame.expect = Expect::CteName;
            }
            "as" => {
                frame.expect = match (frame.function(), frame.clause) {
                    (Some("cast"), _) => Expect::Type,
                    (_, Clause::Select) => Expect::OutputName,
                    _ => Expect::Any,
                };
            }
            "where" | "group" | "having" | "order" | "limit" | "offset" | "on" | "using" | "window" | "union" | "intersect" | "except" => {
                frame.clause = match word.name.as_str() {
                    "union" | "intersect" | "except" => Clause::None,
                    _ => Clause::Other,
                };
                if frame.clause == Clause::None {
                    frame.rank = 0; // the next SELECT starts over
                }
                frame.expect = Expect::Any;
            }
            _ => frame.expect = Expect::Any,
        }
        Verdict::Viable
    }

    /// A word in an expression: a keyword, function, type, column or name declared here.
    fn expression_word(&mut self, word: &Word, next: Option<&Lexeme>) -> Verdict {
        let dead = Verdict::Dead { word_start: Some(word.start) };
        // YEAR(d), MONTH(d), DAY(d) are MySQL; PostgreSQL has EXTRACT(YEAR FROM d).
        let field_as_function = sql_names::contains(EXTRACT_FIELDS, &word.name) && !sql_names::contains(FUNCTIONS, &word.name) && !sql_names::contains(TYPE_WORDS, &word.name);
        if next == Some(&Lexeme::Open) && !word.quoted && field_as_function {
            return dead;
        }
        if !word.quoted && sql_names::contains(KEYWORDS, &word.name) && !self.is_declared(word) {
            return self.keyword(word);
        }
        if next == Some(&Lexeme::Open) && !word.quoted {
            if !sql_names::contains(FUNCTIONS, &word.name) && !sql_names::contains(TYPE_WORDS, &word.name) {
                return dead;
            }
            // No aggregate directly inside another (sum(count(*)) is an error).
            let inside_aggregate = self.frames.last().and_then(Frame::function).is_some_and(|f| sql_names::contains(AGGREGATES, f));
            if inside_aggregate && sql_names::contains(AGGREGATES, &word.name) {
                return dead;
            }
            return Verdict::Viable;
        }
        let known = !word.quoted && [FUNCTIONS, TYPE_WORDS, EXTRACT_FIELDS].iter().any(|l| sql_names::contains(l, &word.name));
        // A table or alias alone before another word (`t1 year` for `t1.year`) is never meant:
        // it is how a model refused every column of `t1` would slip past the check. So is a table
        // the query does not read before a name (`= semester course_id`); before a keyword it
        // may be a whole row whose FROM is still to come (`SELECT t FROM t`).
        let before_name = matches!(next, Some(Lexeme::Word(w)) if w.complete && (w.quoted || !sql_names::contains(KEYWORDS, &w.name)));
        let alone = self.bindings.contains_key(&word.name) || (before_name && self.constraint.relation_named(word).is_some());
        if matches!(next, Some(Lexeme::Word(_))) && alone && !known && !self.constraint.columns.contains_key(&word.name) && !self.outputs.contains(&word.name) {
            return dead;
        }
        let ok = known
            || self.constraint.columns.contains_key(&word.name)
            || self.constraint.relation_named(word).is_some()
            || self.is_declared(word);
        self.note_unqualified_column(word, next);
        match ok {
            true => Verdict::Viable,
            false => dead,
        }
    }

    /// Remembers a word that can only be a column (or an output name), to check when its query
    /// ends that a relation in scope has it.
    fn note_unqualified_column(&mut self, word: &Word, next: Option<&Lexeme>) {
        // A type's name in an expression comes before a typed literal (`date '2024-01-01'`), its
        // second word (`double precision`) or its modifier (`varchar(10)`); elsewhere a word that
        // names a type and a column (`name`, `date`) is the column: `lower(name)` over a table
        // without one is refused, not let through as the type `name`.
        let as_type = sql_names::contains(TYPE_WORDS, &word.name)
            && match next {
                None | Some(Lexeme::Str | Lexeme::Open) => true,
                Some(Lexeme::Word(next)) => !next.complete || sql_names::contains(TYPE_WORDS, &next.name),
                _ => false,
            };
        let other_meaning = (!word.quoted && ([KEYWORDS, FUNCTIONS, EXTRACT_FIELDS].iter().any(|l| sql_names::contains(l, &word.name)) || as_type))
            || self.constraint.relation_named(word).is_some()
            || self.bindings.contains_key(&word.name)
            || self.ctes.contains(&word.name);
        if other_meaning || !(self.constraint.columns.contains_key(&word.name) || self.outputs.contains(&word.name)) {
            return;
        }
        let frame = self.frames.last().expect("a frame");
        // clause_rank: 4 is GROUP BY, 7 ORDER BY.
        let output_allowed = frame.is_query() && matches!(frame.rank, 4 | 7);
        self.query_frame().columns.push(ColumnUse { name: word.name.clone(), start: word.start, output_allowed, argument_of: None });
    }

    /// The columns used in the query of `frame` that no relation of its scope has. When the scope
    /// holds a CTE, sub-query or function, whose columns are not tracked, none.
    fn unresolved_columns(&self, frame: &Frame) -> Vec<ColumnUse> {
        if frame.scope.contains(&Bound::Opaque) {
            return Vec::new();
        }
        let tables: Vec<usize> = frame.scope.iter().filter_map(|b| if let Bound::Table(t) = b { Some(*t) } else { None }).collect();
        frame
            .columns
            .iter()
            .filter(|c| {
                let refused = c.argument_of.as_ref().is_some_and(|(function, argument)| {
                    let mut kinds = tables.iter().filter_map(|&t| self.constraint.column_value_kind(t, &c.name));
                    let holders: Vec<usize> = tables.iter().copied().filter(|&t| self.constraint.has_column(t, &c.name)).collect();
                    kinds.next().is_some_and(|kind| kind.refused_by(function, *argument) && kinds.all(|k| k == kind))
                        || matches!(holders[..], [relation] if self.constraint.aggregates_identifier(relation, &c.name, function, *argument))
                });
                if refused {
                    return true;
                }
                let resolved = tables.iter().any(|&t| self.constraint.has_column(t, &c.name))
                    || self.bindings.contains_key(&c.name) // a whole row
                    || (c.output_allowed && self.outputs.contains(&c.name));
                !resolved
            })
            .cloned()
            .collect()
    }

    /// Whether lexeme `k` is a table alias alone (not `x.alias`), and no column is so named.
    fn is_bare_alias(&self, k: Option<usize>) -> bool {
        let Some(k) = k else { return false };
        let Lexeme::Word(word) = &self.lexemes[k].0 else { return false };
        let qualified = matches!(self.previous(k), Some(Lexeme::Dot));
        !qualified && self.bindings.contains_key(&word.name) && !self.constraint.columns.contains_key(&word.name)
    }

    fn is_declared(&self, word: &Word) -> bool {
        self.bindings.contains_key(&word.name) || self.ctes.contains(&word.name) || self.outputs.contains(&word.name)
    }

    fn open(&mut self, index: usize) -> Verdict {
        let parent = self.frames.last().expect("a frame").clone();
        let function = match self.previous(index) {
            Some(Lexeme::Word(w)) if !w.quoted && (sql_names::contains(FUNCTIONS, &w.name) || FROM_FUNCTIONS.contains(&w.name.as_str()) || ["cast", "coalesce", "nullif", "greatest", "least", "exists", "any", "all", "some", "in", "filter", "over"].contains(&w.name.as_str())) => {
                match w.name.as_str() {
                    "exists" | "any" | "all" | "some" | "in" | "filter" | "over" => None,
                    name => Some(name.to_owned()),
                }
            }
            _ => None,
        };
        let mut frame = Frame::new(match &function {
            Some(name) => FrameKind::Function(name.clone()),
            None => FrameKind::Group,
        });
        frame.in_from = parent.expect == Expect::Table;
        frame.declares = self.declared_at.is_some_and(|at| at + 1 == index) && function.is_none();
        frame.cte_body = parent.clause == Clause::With && parent.expect == Expect::Any;
        if function.as_deref() == Some("extract") {
            frame.expect = Expect::ExtractField;
        }
        if function.is_some() {
            frame.function_start = index.checked_sub(1).map(|i| self.lexemes[i].1);
        }
        frame.conditions = Conditions::starting_at(self.lexemes[index].1 + 1);
        frame.argument_from = index + 1;
        // Inside a query's parentheses, its aliases are still in scope for the qualifier rule.
        frame.seen_from = parent.seen_from;
        self.frames.push(frame);
        Verdict::Viable
    }

    fn close(&mut self, index: usize) -> Verdict {
        if self.frames.len() == 1 {
            return Verdict::Dead { word_start: None };
        }
        let frame = self.frames.last().expect("a frame");
        if let Some(from) = frame.temporal_source {
            if self.never_temporal(from, index) {
                return Verdict::Dead { word_start: frame.function_start };
            }
        }
        // to_char of a number with a date format prints the format's letters; as for EXTRACT, the
        // model goes back to the function's name (most often to write the column itself).
        if let Some((from, to)) = frame.formatted {
            if self.is_date_format(frame.argument_from, index) && self.never_temporal(from, to) {
                return Verdict::Dead { word_start: frame.function_start };
            }
        }
        if let Some(start) = self.mismatched_comparison(frame.conditions.from, index) {
            return Verdict::Dead { word_start: Some(start) };
        }
        if let Some(start) = self.argument_of_wrong_kind(index) {
            return Verdict::Dead { word_start: Some(start) };
        }
        let closed = self.frames.pop().expect("more than one frame");
        if closed.is_query() {
            let unresolved = self.unresolved_columns(&closed);
            if let Some(first) = unresolved.first() {
                // A CTE's body sees no outer query; a sub-query's may be correlated: its outer
                // query checks them (never as its output names).
                if closed.cte_body {
                    return Verdict::Dead { word_start: Some(first.start) };
                }
                self.query_frame().columns.extend(unresolved.into_iter().map(|c| ColumnUse { output_allowed: false, ..c }));
            }
        }
        if closed.in_from {
            self.query_frame().scope.push(Bound::Opaque);
        }
        let frame = self.frame();
        frame.expect = if closed.in_from { Expect::AfterTable(Bound::Opaque) } else { Expect::Any };
        if closed.cte_body {
            frame.expect = Expect::Any;
        }
        Verdict::Viable
    }

    fn comma(&mut self, index: usize) -> Verdict {
        if let Some(start) = self.argument_of_wrong_kind(index) {
            return Verdict::Dead { word_start: Some(start) };
        }
        let frame = self.frame();
        if frame.function() == Some("to_char") && frame.argument == 0 {
            frame.formatted = Some((frame.argument_from, index));
        }
        frame.argument += 1;
        frame.argument_from = index + 1;
        if matches!(&frame.kind, FrameKind::Function(name) if (name == "date_trunc" || name == "date_part") && frame.argument == 1) {
            frame.temporal_source = Some(index + 1);
        }
        frame.expect = match (&frame.kind, frame.clause) {
            (FrameKind::Function(name), _) if (name == "date_trunc" || name == "date_part") && frame.argument == 1 => Expect::Temporal,
            (FrameKind::Function(_), _) => Expect::Any,
            (_, Clause::From) => Expect::Table,
            (_, Clause::With) => Expect::CteName,
            _ => Expect::Any,
        };
        Verdict::Viable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint() -> SchemaConstraint {
        SchemaConstraint::new(&Schema::from_ddl(include_str!("../examples/sales.sql")).unwrap())
    }

    fn verdict(sql: &str) -> Verdict {
        constraint().check(sql.as_bytes(), &HashMap::new())
    }

    /// Every prefix of `sql` is viable (the constraint never forbids the statement).
    fn assert_accepted(sql: &str) {
        let c = constraint();
        for end in 1..=sql.len() {
            if !sql.is_char_boundary(end) {
                continue;
            }
            let v = c.check(&sql.as_bytes()[..end], &HashMap::new());
            assert!(matches!(v, Verdict::Viable | Verdict::Complete { .. }), "{sql:?} refused at {end} ({:?}): {v:?}", &sql[..end]);
        }
    }

    fn dead_at(sql: &str) -> Option<usize> {
        match verdict(sql) {
            Verdict::Dead { word_start } => word_start,
            other => panic!("{sql:?} should be dead, is {other:?}"),
        }
    }

    #[test]
    fn accepts_statements_over_the_schema() {
        for sql in [
            "SELECT name, count(*) AS sold FROM products GROUP BY name ORDER BY sold DESC LIMIT 5\n```",
            "SELECT c.country, SUM(oi.quantity * p.unit_price) AS revenue\nFROM customers c\nJOIN orders o ON o.customer_id = c.id\nJOIN order_items oi ON oi.order_id = o.id\nJOIN products p ON p.id = oi.product_id\nGROUP BY c.country;",
            "WITH monthly AS (SELECT date_trunc('month', ordered_at) AS month, count(*) AS n FROM orders GROUP BY 1) SELECT month, n FROM monthly ORDER BY month",
            "SELECT EXTRACT(DOW FROM o.ordered_at) AS dow, COUNT(*) FROM orders AS o WHERE o.status = 'cancelled' GROUP BY dow",
            "SELECT p.name FROM products p WHERE NOT EXISTS (SELECT 1 FROM order_items oi WHERE oi.product_id = p.id)",
            "SELECT CAST(SUM(CASE WHEN status = 'returned' THEN 1 ELSE 0 END) AS numeric) / COUNT(*) FROM orders",
            "SELECT \"name\", unit_price::float FROM products WHERE category ILIKE '%game%' -- a comment\n",
            "SELECT o.id FROM orders o WHERE o.ordered_at >= CURRENT_DATE - INTERVAL '7 days' AND o.id IN (SELECT order_id FROM order_items)",
            "SELECT x.n FROM (SELECT count(*) AS n FROM customers) x",
            "SELECT * FROM generate_series(1, 3) AS g(i)",
            "SELECT date_part('year', signed_up), to_char(signed_up, 'YYYY-MM') FROM customers",
        ] {
            assert_accepted(sql);
        }
    }

    #[test]
    fn refuses_invented_columns_and_tables_where_the_word_starts() {
        assert_eq!(dead_at("SELECT prize FROM products"), Some(7));
        assert_eq!(verdict("SELECT name FROM productz"), Verdict::Dead { word_start: None }, "no table starts with productz");
        assert_eq!(dead_at("SELECT name FROM products p WHERE p.colour = 'red' "), Some(36));
        assert_eq!(dead_at("SELECT name FROM products WHERE colour "), Some(32));
        assert_eq!(verdict("SELECT * FROM pro"), Verdict::Viable, "a prefix of a table");
    }

    #[test]
    fn checks_alias_qualification_when_the_alias_is_bound() {
        // c is bound to customers, but c.unit_price is a column of products.
        match verdict("SELECT c.unit_price FROM customers c ") {
            Verdict::Conflict { alias, relation, use_start } => {
                assert_eq!((alias.as_str(), use_start), ("c", 7));
                assert_eq!(constraint().relations[relation].name, "customers");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // With the binding known (after backtracking), the column is checked at once.
        let hypotheses = HashMap::from([("c".to_owned(), constraint().relations.iter().position(|r| r.name == "customers").unwrap())]);
        assert_eq!(constraint().check(b"SELECT c.unit_price ", &hypotheses), Verdict::Dead { word_start: Some(9) });
        assert_eq!(constraint().check(b"SELECT c.unit", &hypotheses), Verdict::Dead { word_start: None });
    }

    #[test]
    fn a_qualifier_dot_needs_a_column_after_it() {
        assert_eq!(verdict("SELECT p..name"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT p.name FROM products p ORDER BY p.\n```"), Verdict::Dead { word_start: None });
        // `e'` after a dot is a column name beginning, not an escaped string.
        assert_eq!(verdict("SELECT p.e'"), Verdict::Dead { word_start: None });
        assert_accepted("SELECT E'a\\tb', p.* FROM products p\n```");
    }

    #[test]
    fn unqualified_columns_must_belong_to_a_table_of_the_statement() {
        // unit_price is a column of products and order_items, not of orders.
        assert_eq!(dead_at("SELECT status, unit_price FROM orders\n```"), Some(15));
        assert_accepted("SELECT status, quantity FROM orders JOIN order_items ON order_id = id\n```");
        // A column of the outer query's table inside a sub-query, and an output name in ORDER BY.
        assert_accepted("SELECT name, (SELECT count(*) FROM orders WHERE ordered_at > signed_up) AS n FROM customers ORDER BY n\n```");
        // With a sub-query in FROM its columns are unknown: nothing is checked.
        assert_accepted("SELECT unit_price FROM (SELECT * FROM products) AS p\n```");
    }

    #[test]
    fn columns_are_checked_in_their_own_query() {
        // A CTE's body reads only its own FROM: customers has no status.
        let cte = "WITH c AS (SELECT status, count(*) AS n FROM customers GROUP BY status) SELECT * FROM c\n```";
        assert_eq!(dead_at(cte), cte.find("status"));
        // An output name is no column of the SELECT list that declares it, before or after.
        let after = "SELECT count(*) AS n, n * 2 FROM orders\n```";
        assert_eq!(dead_at(after), after.find("n *"));
        let before = "SELECT name, max(status) AS status FROM products GROUP BY name\n```";
        assert_eq!(dead_at(before), before.find("status"));
        // ... but stands for its column in GROUP BY and ORDER BY.
        assert_accepted("SELECT status AS s, count(*) AS n FROM orders GROUP BY s ORDER BY n DESC\n```");
        assert_accepted("SELECT EXTRACT(YEAR FROM ordered_at) AS y, count(*) FROM orders GROUP BY y ORDER BY y\n```");
        // A sub-query may read its outer query's columns (correlated); they are checked there.
        assert_accepted("SELECT name FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE ordered_at > signed_up AND country = 'US')\n```");
        let outer = "SELECT name FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE category = 'toys')\n```";
        assert_eq!(dead_at(outer), outer.find("category"));
        assert_eq!(dead_at("SELECT country\n```"), Some(7), "no FROM, no column");
    }

    #[test]
    fn comparisons_and_casts_respect_types() {
        // A text column joined to a number: the column written last is written again.
        let join = "SELECT 1 FROM orders o JOIN customers c ON o.status = c.id JOIN products p ON p.id = o.id\n```";
        assert_eq!(dead_at(join), join.find("c.id").map(|at| at + 2));
        // A number compared with a string that is no number, text with a number, LIKE over a number.
        let literal = "SELECT 1 FROM order_items WHERE quantity = 'many' AND order_id = 1\n```";
        assert_eq!(dead_at(literal), literal.find("quantity"));
        let text = "SELECT 1 FROM products WHERE (category = 5)";
        assert_eq!(dead_at(text), text.find("category"));
        let like = "SELECT 1 FROM products WHERE unit_price LIKE '1%'\n```";
        assert_eq!(dead_at(like), like.find("unit_price"));
        let date = "SELECT 1 FROM orders o, customers c WHERE o.ordered_at = c.name ORDER BY 1\n```";
        assert_eq!(dead_at(date), date.find("name"));
        // A column's name that also names a type is the column, checked against the scope.
        let type_word = "SELECT avg(quantity) FROM order_items WHERE lower(name) = 'x'\n```";
        assert_eq!(dead_at(type_word), type_word.find("name"));
        assert_accepted("SELECT lower(name), name AS n FROM products WHERE name = 'x' AND id::text <> name\n```");
        assert_accepted("SELECT 1 FROM orders WHERE ordered_at > date '2024-01-01' AND CAST(id AS double precision) > 1 AND status::varchar(10) = 'x'\n```");
        assert_accepted("SELECT 1 FROM order_items WHERE quantity = '3' AND order_id >= 1 AND unit_price <> 2.5 AND -1 < quantity\n```");
        assert_accepted("SELECT 1 FROM products WHERE name ILIKE '%a%' AND category NOT LIKE 'b%' AND (id = 1 OR id = ' 2 ') AND id = unit_price\n```");
        assert_accepted("SELECT 1 FROM orders WHERE ordered_at > '2024-01-01' AND status = 'shipped' AND customer_id IN (1, 2)\n```");
        // A number is no date or interval, a date no number.
        let interval = "SELECT 1 FROM order_items oi WHERE CAST(oi.quantity AS interval) > '1 day'";
        assert_eq!(dead_at(interval), interval.find("interval"));
        let integer = "SELECT 1 FROM orders WHERE ordered_at::integer > 1";
        assert_eq!(dead_at(integer), integer.find("integer"));
        assert_accepted("SELECT 1 FROM orders WHERE status::date > CURRENT_DATE AND id::text = '1' AND CAST(ordered_at AS date) = CURRENT_DATE AND to_timestamp(id)::date < now()\n```");
    }

    #[test]
    fn key_columns_are_joined_only_as_foreign_keys_link_them() {
        // Two keys no foreign key links: the column written last is written again.
        let ids = "SELECT 1 FROM orders o JOIN customers c ON o.id = c.id\n```";
        assert_eq!(dead_at(ids), ids.rfind(".id").map(|at| at + 1));
        let swapped = "SELECT 1 FROM order_items oi JOIN products p ON p.id = oi.order_id WHERE p.category = 'toys'\n```";
        assert_eq!(dead_at(swapped), swapped.find("order_id"));
        let unqualified = "SELECT 1 FROM orders, customers WHERE customer_id = 1 AND ordered_at > signed_up AND orders.id = customers.id;";
        assert_eq!(dead_at(unqualified), unqualified.rfind("id;"));
        // Linked directly, either way round, or through a column both reference; keys compared
        // with other columns, or other than by `=`, are not this rule's business.
        assert_accepted("SELECT 1 FROM orders o JOIN customers c ON c.id = o.customer_id JOIN order_items oi ON o.id = oi.order_id\n```");
        assert_accepted("SELECT 1 FROM order_items a JOIN order_items b ON a.product_id = b.product_id AND a.order_id <> b.order_id\n```");
        assert_accepted("SELECT 1 FROM orders o JOIN customers c ON o.customer_id = c.id WHERE o.id > c.id AND c.id = o.customer_id\n```");
        assert_accepted("SELECT 1 FROM products p JOIN order_items oi ON p.unit_price = oi.unit_price\n```");
        // A key with a column of another table that is no key: refused, either way round; within
        // one table, not this rule's business.
        let count = "SELECT 1 FROM products p JOIN order_items oi ON p.id = oi.quantity\n```";
        assert_eq!(dead_at(count), count.find("quantity"));
        let reversed = "SELECT 1 FROM order_items oi JOIN orders o ON oi.quantity = o.id\n```";
        assert_eq!(dead_at(reversed), reversed.rfind("id\n"));
        // A column whose name refers to the key's table or name: a link the schema does not
        // declare (keys are often declared in part); `id` alone refers to nothing.
        let undeclared = SchemaConstraint::new(&Schema::from_ddl("CREATE TABLE authors (\n  id integer,\n  PRIMARY KEY (id)\n);\nCREATE TABLE books (\n  id integer,\n  author_id integer,\n  pages integer\n);\n").unwrap());
        assert!(undeclared.allows(b"SELECT 1 FROM books b JOIN authors a ON b.author_id = a.id\n```"));
        assert!(!undeclared.allows(b"SELECT 1 FROM books b JOIN authors a ON b.pages = a.id\n```"));
        assert!(!undeclared.allows(b"SELECT 1 FROM books b JOIN authors a ON a.id = b.id\n```"));
        assert_accepted("SELECT 1 FROM order_items oi WHERE oi.product_id = oi.quantity\n```");
        // An alias is no operand of arithmetic: after `s` the `/` itself is refused.
        assert_eq!(verdict("SELECT 1 FROM orders o JOIN customers c ON o.customer_id = c/"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT 1 FROM orders o WHERE o.id - 1 > 0 AND o.id/2 = 1 "), Verdict::Viable);
        // Refused as soon as the second key is written, whatever follows it.
        let early = "SELECT 1 FROM orders o JOIN customers c ON o.id = c.id GROUPS";
        assert_eq!(dead_at(early), early.rfind("id G"));
        let parenthesised = "SELECT 1 FROM orders o JOIN customers c ON o.id = ((c.id)";
        assert_eq!(dead_at(parenthesised), parenthesised.rfind("id"));
        let upper = "SELECT 1 FROM orders o JOIN customers c ON o.ID = c.ID/";
        assert_eq!(dead_at(upper), upper.rfind("ID/"));
        assert_eq!(verdict("SELECT 1 FROM orders o JOIN customers c ON o.customer_id = c.id "), Verdict::Viable);
        assert_eq!(verdict("SELECT 1 FROM orders o JOIN customers c ON o.id >= c.id "), Verdict::Viable, "only =");
        let no_keys = SchemaConstraint::new(&Schema::from_ddl("CREATE TABLE a (\n  id integer,\n  b_id integer\n);\nCREATE TABLE b (\n  id integer\n);\n").unwrap());
        assert!(no_keys.allows(b"SELECT 1 FROM a JOIN b ON a.id = b.id\n```"), "without keys, any join");
    }

    #[test]
    fn types_extract_and_nested_aggregates() {
        // EXTRACT reads a date or time column, not an integer; the model goes back to EXTRACT.
        assert_eq!(dead_at("SELECT EXTRACT(YEAR FROM quantity) FROM order_items"), Some(7));
        assert_accepted("SELECT EXTRACT(YEAR FROM ordered_at) FROM orders");
        assert_accepted("SELECT EXTRACT(YEAR FROM status::date) FROM orders");
        assert_eq!(dead_at("SELECT date_trunc('month', quantity) FROM order_items"), Some(7));
        // Nor an expression of integer columns (Unix seconds subtracted), qualified or not.
        let unix = "SELECT 1 FROM order_items oi WHERE EXTRACT(DAY FROM (oi.quantity - oi.product_id) / 60)";
        assert_eq!(dead_at(unix), unix.find("EXTRACT"));
        let doubled = "SELECT 1 FROM order_items WHERE date_part('day', quantity * 2)";
        assert_eq!(dead_at(doubled), doubled.find("date_part"));
        assert_accepted("SELECT EXTRACT(EPOCH FROM now() - o.ordered_at), EXTRACT(DAY FROM ordered_at - ordered_at) FROM orders o\n```");
        // Nor a number of days (one date minus another), nor a number EXTRACT returned.
        assert_eq!(dead_at("SELECT EXTRACT(DAY FROM (CURRENT_DATE - signed_up)) FROM customers"), Some(7));
        let days = "SELECT 1 FROM customers c WHERE EXTRACT(DAY FROM c.signed_up - c.signed_up) > 1";
        assert_eq!(dead_at(days), days.find("EXTRACT"));
        assert_eq!(dead_at("SELECT EXTRACT(YEAR FROM EXTRACT(DAY FROM ordered_at)) FROM orders"), Some(7));
        assert_accepted("SELECT EXTRACT(DAY FROM now() - ordered_at), EXTRACT(DAY FROM CURRENT_DATE - signed_up + INTERVAL '1 day') FROM orders, customers\n```");
        // YEAR(d) is MySQL.
        assert_eq!(dead_at("SELECT YEAR(ordered_at) FROM orders"), Some(7));
        assert_accepted("SELECT date(ordered_at), EXTRACT(YEAR FROM ordered_at) AS year FROM orders ORDER BY year\n```");
        // Written before FROM binds its alias: a conflict once it does.
        match verdict("SELECT EXTRACT(YEAR FROM oi.quantity) FROM order_items oi ") {
            Verdict::Conflict { alias, use_start, .. } => assert_eq!((alias.as_str(), use_start), ("oi", 25)),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(dead_at("SELECT EXTRACT(YEARS FROM ordered_at) FROM orders"), Some(15));
        assert_eq!(dead_at("SELECT sum(count(*)) FROM orders"), Some(11));
        // A function has no form for a column of this kind: the column is chosen again.
        let sum = "SELECT c.country FROM customers c GROUP BY 1 HAVING SUM(c.name) > 1";
        assert_eq!(dead_at(sum), sum.find("name"));
        // Written before FROM binds its alias: a conflict once it does.
        match verdict("SELECT c.country, SUM(c.name) FROM customers c ") {
            Verdict::Conflict { alias, use_start, .. } => assert_eq!((alias.as_str(), use_start), ("c", 22)),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let distinct = "SELECT avg(DISTINCT status) FROM orders\n```";
        assert_eq!(dead_at(distinct), distinct.find("status"));
        assert_eq!(verdict("SELECT avg(DISTINCT status) FROM orders "), Verdict::Viable, "known to be wrong when the query ends");
        let lower = "SELECT 1 FROM orders o WHERE lower(o.id) = 'x'";
        assert_eq!(dead_at(lower), lower.find("id)"));
        let to_char = "SELECT to_char(status, 'FM999') FROM orders\n```";
        assert_eq!(dead_at(to_char), to_char.find("status"));
        // A column named like a keyword (`year`), alone as what the function reads, is that column.
        let year = SchemaConstraint::new(&Schema::from_ddl("CREATE TABLE papers (\n  title text,\n  year integer,\n  published date\n);\n").unwrap());
        assert!(!year.allows(b"SELECT TO_CHAR(year, 'YYYY') AS year, COUNT(*) FROM papers GROUP BY year\n```"));
        assert!(!year.allows(b"SELECT EXTRACT(YEAR FROM year) FROM papers\n```"));
        assert!(year.allows(b"SELECT year, EXTRACT(YEAR FROM published), to_char(published, 'YYYY'), to_char(year, '0000') FROM papers WHERE published > CURRENT_DATE - INTERVAL '1 year'\n```"));
        // A date format on a number prints its letters: back to to_char, as for EXTRACT.
        assert_eq!(dead_at("SELECT to_char(quantity, 'YYYY-MM') AS month FROM order_items"), Some(7));
        let unix = "SELECT 1 FROM order_items oi GROUP BY to_char(oi.quantity * 60, 'HH24:MI')";
        assert_eq!(dead_at(unix), unix.find("to_char"));
        assert_accepted("SELECT to_char(ordered_at, 'YYYY-MM'), to_char(unit_price, 'FM999.00'), to_char(to_timestamp(quantity), 'HH24:MI'), to_char(quantity, '0000'), to_char(count(*), 'FM9,999') FROM orders, order_items GROUP BY 1\n```");
        assert_accepted("SELECT SUM(oi.quantity), avg(DISTINCT unit_price), lower(p.name), to_char(o.ordered_at, 'YYYY'), round(SUM(oi.unit_price), 2), split_part(p.name, ' ', 1), count(p.name) FROM orders o, order_items oi, products p GROUP BY 1\n```");
        assert_eq!(dead_at("SELECT id::strange FROM orders"), Some(11));
    }

    #[test]
    fn identifiers_are_not_added_up_or_averaged() {
        // A key column summed or averaged: the column is chosen again, wherever its table is known.
        let avg = "SELECT o.status FROM orders o JOIN order_items oi ON oi.order_id = o.id GROUP BY 1 HAVING AVG(oi.order_id) > 1";
        assert_eq!(dead_at(avg), avg.find("order_id)"));
        let distinct = "SELECT 1 FROM products p WHERE (SELECT sum(DISTINCT p.id)) > 0";
        assert_eq!(dead_at(distinct), distinct.find("id))"));
        match verdict("SELECT SUM(c.id) FROM customers c ") {
            Verdict::Conflict { alias, use_start, .. } => assert_eq!((alias.as_str(), use_start), ("c", 11)),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let unqualified = "SELECT avg(customer_id) FROM orders\n```";
        assert_eq!(dead_at(unqualified), unqualified.find("customer_id"));
        // Counted, compared or taken the least or greatest of, a key is fine; so is a sum of
        // another column, and a sum over a table without keys.
        assert_accepted("SELECT count(oi.order_id), count(DISTINCT o.customer_id), max(o.id), sum(oi.quantity), avg(p.unit_price) FROM orders o, order_items oi, products p\n```");
        let no_keys = SchemaConstraint::new(&Schema::from_ddl("CREATE TABLE a (\n  id integer\n);\n").unwrap());
        assert!(no_keys.allows(b"SELECT sum(id) FROM a\n```"));
    }

    #[test]
    fn clauses_come_in_order_and_once() {
        // The loop a small model falls into: another ORDER BY after LIMIT.
        let looping = "SELECT name FROM products ORDER BY name LIMIT 5 ORDER BY ";
        assert_eq!(dead_at(looping), Some(looping.find("ORDER BY name LIMIT 5 ORDER").unwrap() + "ORDER BY name LIMIT 5 ".len()));
        assert_eq!(dead_at("SELECT name FROM products WHERE unit_price > 1 WHERE "), Some(47));
        assert_eq!(dead_at("SELECT name FROM products GROUP BY name FROM "), Some(40));
        assert_accepted("SELECT name FROM products ORDER BY name LIMIT 5 OFFSET 10\n```");
        assert_accepted("SELECT name FROM products OFFSET 10 LIMIT 5\n```");
        // Each query, sub-query, window and aggregate has clauses of its own; UNION starts over.
        assert_accepted("SELECT name, rank() OVER (PARTITION BY category ORDER BY unit_price) FROM products WHERE id IN (SELECT product_id FROM order_items GROUP BY product_id ORDER BY count(*) DESC LIMIT 3) ORDER BY name LIMIT 5\n```");
        assert_accepted("SELECT name FROM products WHERE unit_price > 1 UNION SELECT name FROM customers ORDER BY name\n```");
        assert_accepted("SELECT string_agg(name, ', ' ORDER BY name), percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price) FROM products\n```");
        // Operators that read like clauses.
        assert_accepted("SELECT name FROM products WHERE category IS DISTINCT FROM 'toys' ORDER BY name\n```");
        assert_accepted("SELECT count(*) FILTER (WHERE unit_price > 1) FROM products\n```");
    }

    #[test]
    fn no_way_around_a_refused_column() {
        // What a model refused every column of `p` wrote instead: `p name`, `p. name`, `p./**/name`.
        let text = "SELECT name FROM products p ORDER BY p name";
        assert_eq!(dead_at(text), Some(text.rfind("p name").unwrap()));
        // A table the query does not read, before a name; before a keyword it may be a whole row.
        let unread = "SELECT 1 FROM orders o JOIN order_items oi ON oi.order_id = customers id ";
        assert_eq!(dead_at(unread), unread.find("customers"));
        assert_accepted("SELECT customers FROM customers\n```");
        assert_eq!(verdict("SELECT name FROM products p ORDER BY p. name"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT name FROM products p ORDER BY p./*x*/name"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT name FROM products p ORDER BY p. "), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT name FROM products p ORDER BY p."), Verdict::Viable);
        // Nor markdown: `p.**colour**`, `p.*colour`.
        assert_eq!(verdict("SELECT name FROM products p ORDER BY p.**"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT p.*colour"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT p.*/"), Verdict::Dead { word_start: None });
        // `x.*` outside a SELECT list or function: back to the qualifier.
        let ordered = "SELECT name FROM products p ORDER BY p.*";
        assert_eq!(dead_at(ordered), ordered.rfind("p.*"));
        assert_eq!(verdict("SELECT 2 ** 3"), Verdict::Dead { word_start: None });
        assert_accepted("SELECT p.*, count(*)*2 /** a comment **/, count(p.*) FROM products p GROUP BY p.id\n```");
        assert_accepted("SELECT p.*\n  FROM products p WHERE p.id IN (SELECT o.* FROM orders o)\n```");
    }

    #[test]
    fn a_condition_is_not_written_twice() {
        let looping = "SELECT name FROM products WHERE category = 'a' AND unit_price > 1 AND category = 'a' AND ";
        assert_eq!(dead_at(looping), Some(looping.rfind("AND category").unwrap()));
        assert_eq!(dead_at("SELECT name FROM products WHERE id = 1 OR id  =  1 OR "), Some(39));
        assert_accepted("SELECT name FROM products WHERE unit_price BETWEEN 1 AND 5 AND id BETWEEN 1 AND 5\n```");
        assert_accepted("SELECT name FROM products WHERE (category = 'a' OR id = 1) AND (category = 'a' OR id = 2) AND unit_price > 1\n```");
        assert_accepted("SELECT CASE WHEN id = 1 AND unit_price > 1 THEN 1 WHEN id = 1 AND unit_price > 2 THEN 2 END FROM products WHERE id = 1 AND unit_price > 1\n```");
    }

    #[test]
    fn quoted_identifiers_are_case_sensitive() {
        assert_accepted("SELECT \"category\" FROM products");
        assert_eq!(dead_at("SELECT \"Category\" FROM products"), Some(7));
        assert_eq!(verdict("SELECT \"Cat"), Verdict::Viable, "before FROM, a quoted word may still be an alias");
        assert_eq!(verdict("SELECT 1 FROM products WHERE \"Cat"), Verdict::Dead { word_start: None });
    }

    #[test]
    fn the_statement_ends_at_a_semicolon_or_the_fence() {
        assert_eq!(verdict("SELECT 1;"), Verdict::Complete { end: 8 });
        assert_eq!(verdict("SELECT 1\n```"), Verdict::Complete { end: 9 });
        assert_eq!(verdict("SELECT (1;"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT 1)"), Verdict::Dead { word_start: None });
        assert_eq!(verdict("SELECT ';' FROM products"), Verdict::Viable, "a semicolon in a string is text");
        assert_eq!(verdict("SELECT 1\n``"), Verdict::Viable, "the fence is being written");
        assert_eq!(verdict("SELECT count(``"), Verdict::Dead { word_start: None }, "not inside parentheses");
        assert_eq!(verdict("SELECT `name` FROM products"), Verdict::Dead { word_start: None }, "no MySQL quoting");
    }

    #[test]
    fn every_qualifier_must_be_bound_by_the_end() {
        assert_eq!(verdict("SELECT sq.unit_price FROM products s;"), Verdict::Dead { word_start: Some(7) });
        assert_eq!(verdict("SELECT customers.name FROM orders\n```"), Verdict::Dead { word_start: Some(7) }, "a table not in FROM");
        assert_eq!(verdict("SELECT orders.id FROM orders;"), Verdict::Complete { end: 28 });
    }

    #[test]
    fn column_lists_declare_names_and_other_parentheses_do_not() {
        assert_accepted("WITH t(a, b) AS (SELECT id, name FROM customers) SELECT a, b FROM t");
        assert_eq!(dead_at("SELECT * FROM orders o WHERE (nonsense > 1)"), Some(30));
    }

    #[test]
    fn ctes_and_subqueries_have_their_own_names() {
        assert_accepted("WITH t AS (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) SELECT c.name, t.n FROM t JOIN customers c ON c.id = t.customer_id");
        assert_eq!(dead_at("SELECT * FROM orders WHERE nonsense > 1"), Some(27));
    }
}

/// A bounded generative test: random text, random SQL fragments and every prefix of them, through
/// the lexer and tracker and the SQL extraction; nothing may panic, and a verdict is always given.
#[cfg(test)]
mod fuzz {
    use super::*;

    #[test]
    fn random_input_never_panics() {
        let constraint = SchemaConstraint::new(&Schema::from_ddl(include_str!("../examples/sales.sql")).unwrap());
        let fragments = [
            "SELECT", " ", "(", ")", ",", ".", ";", "::", "'", "\"", "`", "```", "--", "/*", "*/", "\n", "FROM", "orders", "o", "JOIN",
            "EXTRACT", "date_trunc", "sum", "count(*)", "AS", "WITH", "x", "é", "🍕", "\u{0}", "E'", "$1", "customers.", "c.name", "=", "1.5e3",
        ];
        let mut rng = fastrand::Rng::with_seed(0x2545_F491_4F6C_DD1D);
        let mut next = move |n: usize| rng.usize(..n);
        for _ in 0..2000 {
            let mut text: Vec<u8> = Vec::new();
            for _ in 0..next(20) {
                match next(3) {
                    0 => text.push(next(256) as u8),
                    _ => text.extend_from_slice(fragments[next(fragments.len())].as_bytes()),
                }
            }
            for end in 0..=text.len() {
                let _ = constraint.check(&text[..end], &HashMap::new());
            }
            let _ = crate::extract::extract_sql(&String::from_utf8_lossy(&text));
        }
    }
}
