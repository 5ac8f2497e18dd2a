//! Schema linking: when the schema the caller may read is too large for the model to use well,
//! keep the tables relevant to the question, and the tables that join them.
//!
//! Each column is scored by how close its "table.column: comment" is to the question in meaning
//! (all-MiniLM-L6-v2 embeddings, as sql-eval prunes its prompts; cached by text, so a changed
//! comment or column is embedded anew), plus words of its name or its table's name in the
//! question, plus values of it the question names (the value index). A table scores as its best
//! column. Tables are taken best first while the rendered schema fits the budget; then the tables
//! that join them: referenced by their foreign keys, or, where a database declares no keys, that
//! share key-like columns (integer columns, or names ending in id, code or key) with two or more
//! of them (a junction table such as writes(aid, pid)). A schema within the budget is kept whole.

use crate::embedding::{similarity, Embedder};
use crate::error::Result;
use crate::name_words::{name_words, KEY_WORDS};
use crate::schema::{Schema, Table};
use std::collections::{BTreeSet, HashMap};

/// Characters per token of rendered schema text, measured with Qwen2.5's tokenizer: 4.4 to 4.8
/// on the sql-eval dev schemas with their descriptions, 3.2 on the pizza table with its values.
/// The budget is checked without tokenizing, so this errs toward more tokens.
const CHARS_PER_TOKEN: f64 = 4.0;

/// Scores added for a column's name words in the question, its table's, and a named value.
const NAME_BONUS: f32 = 0.2;
const TABLE_NAME_BONUS: f32 = 0.15;
const VALUE_BONUS: f32 = 0.5;

pub struct Linker {
    /// Loads the embedder on first need (a schema over the budget, examples to rank): a backend
    /// that never needs it does not pay its 90 MB.
    load: Option<Box<dyn FnOnce() -> Option<Embedder>>>,
    embedder: Option<Embedder>,
    /// Embeddings by text: columns keep theirs across questions until their text changes.
    cache: HashMap<String, Vec<f32>>,
}

/// The words of `text` as a set (name_words: plurals as singular, so "flights" and `flight`
/// agree).
fn words(text: &str) -> BTreeSet<String> {
    name_words(text).into_iter().collect()
}

fn estimated_tokens(tables: &[&Table]) -> usize {
    let schema = Schema { tables: tables.iter().map(|t| (*t).clone()).collect() };
    (schema.render().len() as f64 / CHARS_PER_TOKEN) as usize
}

impl Linker {
    /// With no embedder, columns are scored by names and values only.
    pub fn new(embedder: Option<Embedder>) -> Self {
        Self { load: None, embedder, cache: HashMap::new() }
    }

    /// With the embedder `load` gives, called the first time one is needed.
    pub fn loading_on_first_use(load: impl FnOnce() -> Option<Embedder> + 'static) -> Self {
        Self { load: Some(Box::new(load)), embedder: None, cache: HashMap::new() }
    }

    fn ensure_loaded(&mut self) {
        if let Some(load) = self.load.take() {
            self.embedder = load();
        }
    }

    fn embeddings(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.ensure_loaded();
        let Some(embedder) = &self.embedder else { return Ok(vec![Vec::new(); texts.len()]) };
        let missing: Vec<&str> = texts.iter().filter(|t| !self.cache.contains_key(*t)).map(String::as_str).collect();
        for batch in missing.chunks(64) {
            for (text, vector) in batch.iter().zip(embedder.embed(batch)?) {
                self.cache.insert((*text).to_owned(), vector);
            }
        }
        Ok(texts.iter().map(|t| self.cache[t].clone()).collect())
    }

    /// The tables of `schema` that matter for `question`, in schema order; `schema` itself when
    /// it renders within `budget_tokens`.
    pub fn link(&mut self, schema: &Schema, question: &str, budget_tokens: usize) -> Result<Schema> {
        let all: Vec<&Table> = schema.tables.iter().collect();
        if estimated_tokens(&all) <= budget_tokens || schema.tables.len() <= 2 {
            return Ok(schema.clone());
        }
        let question_words = words(question);
        let texts: Vec<String> = std::iter::once(question.to_owned())
            .chain(schema.tables.iter().flat_map(|t| {
                t.columns.iter().map(move |c| format!("{}.{}: {}", t.name, c.name, c.comment.as_deref().unwrap_or("")))
            }))
            .collect();
        let vectors = self.embeddings(&texts)?;
        let (question_vector, mut column_vectors) = (&vectors[0], vectors[1..].iter());
        let scores: Vec<f32> = schema
            .tables
            .iter()
            .map(|table| {
                let table_bonus = if words(&table.name).iter().any(|w| question_words.contains(w)) { TABLE_NAME_BONUS } else { 0.0 };
                table
                    .columns
                    .iter()
                    .map(|column| {
                        let vector = column_vectors.next().expect("a vector per column");
                        let meaning = if vector.is_empty() { 0.0 } else { similarity(question_vector, vector) };
                        let name = if words(&column.name).iter().any(|w| question_words.contains(w)) { NAME_BONUS } else { 0.0 };
                        let value = if column.mentioned_values.is_empty() { 0.0 } else { VALUE_BONUS };
                        meaning + name + value
                    })
                    .fold(0.0f32, f32::max)
                    + table_bonus
            })
            .collect();
        let mut ranked: Vec<usize> = (0..schema.tables.len()).collect();
        ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        for &index in &ranked {
            let mut trial: Vec<&Table> = chosen.iter().map(|&i| &schema.tables[i]).collect();
            trial.push(&schema.tables[index]);
            if chosen.len() >= 2 && estimated_tokens(&trial) > budget_tokens {
                break;
            }
            chosen.insert(index);
        }
        // The tables that join the chosen ones, even past the budget: a join the model cannot see
        // is a join it gets wrong.
        for index in joining_tables(schema, &chosen) {
            chosen.insert(index);
        }
        Ok(Schema { tables: chosen.into_iter().map(|i| schema.tables[i].clone()).collect() })
    }
}

impl Linker {
    /// The indexes of the `k` texts most similar to `question` in meaning (or, without an
    /// embedder, in shared words), most similar first, those at least `threshold` similar only.
    pub fn most_similar(&mut self, question: &str, texts: &[String], k: usize, threshold: f32) -> Result<Vec<usize>> {
        if texts.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        self.ensure_loaded();
        let scores: Vec<f32> = if self.embedder.is_some() {
            let mut all = vec![question.to_owned()];
            all.extend(texts.iter().cloned());
            let vectors = self.embeddings(&all)?;
            vectors[1..].iter().map(|v| similarity(&vectors[0], v)).collect()
        } else {
            // Jaccard similarity of the word sets.
            let q = words(question);
            texts.iter().map(|t| {
                let w = words(t);
                let shared = q.intersection(&w).count() as f32;
                let all = q.union(&w).count().max(1) as f32;
                shared / all
            }).collect()
        };
        let mut order: Vec<usize> = (0..texts.len()).filter(|&i| scores[i] >= threshold).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        order.truncate(k);
        Ok(order)
    }
}

/// A column that likely joins tables: an integer, or named like an identifier.
fn key_like(column: &crate::schema::Column) -> bool {
    let name = column.name.to_lowercase();
    let data_type = column.data_type.to_lowercase();
    KEY_WORDS.iter().any(|suffix| name.ends_with(suffix)) || ["integer", "bigint", "smallint"].contains(&data_type.as_str())
}

/// Tables not in `chosen` that connect chosen ones: referenced by a chosen table's foreign key,
/// or sharing key-like columns with two or more chosen tables.
fn joining_tables(schema: &Schema, chosen: &BTreeSet<usize>) -> Vec<usize> {
    let chosen_names: BTreeSet<&str> = chosen.iter().map(|&i| schema.tables[i].name.as_str()).collect();
    let column_names = |t: &Table| t.columns.iter().filter(|c| key_like(c)).map(|c| c.name.clone()).collect::<BTreeSet<String>>();
    (0..schema.tables.len())
        .filter(|i| !chosen.contains(i))
        .filter(|&i| {
            let table = &schema.tables[i];
            let referenced = chosen.iter().any(|&c| schema.tables[c].foreign_keys.iter().any(|fk| fk.references_table == table.name));
            let references = table.foreign_keys.iter().filter(|fk| chosen_names.contains(fk.references_table.as_str())).count() >= 2;
            let own = column_names(table);
            let sharing = chosen.iter().filter(|&&c| !own.is_disjoint(&column_names(&schema.tables[c]))).count();
            referenced || references || (table.foreign_keys.is_empty() && sharing >= 2)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let mut tables = String::new();
        for (name, columns) in [
            ("author", "aid bigint, name text, homepage text"),
            ("publication", "pid bigint, title text, year bigint, citation_num bigint"),
            ("writes", "aid bigint, pid bigint"),
            ("conference", "cid bigint, name text, homepage text"),
            ("journal", "jid bigint, name text, homepage text"),
            ("keyword", "kid bigint, keyword text"),
            ("organization", "oid bigint, name text, continent text, homepage text"),
        ] {
            tables.push_str(&format!("CREATE TABLE {name} (\n{}\n);\n", columns.split(", ").map(|c| format!("  {c}")).collect::<Vec<_>>().join(",\n")));
        }
        Schema::from_ddl(&tables).unwrap()
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.tables.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn a_schema_within_the_budget_is_kept_whole() {
        let schema = schema();
        assert_eq!(Linker::new(None).link(&schema, "anything", 10_000).unwrap(), schema);
    }

    #[test]
    fn keeps_the_named_tables_and_the_junction_that_joins_them() {
        let linked = Linker::new(None).link(&schema(), "How many publications did each author write?", 40).unwrap();
        assert_eq!(names(&linked), ["author", "publication", "writes"], "writes shares aid and pid with them");
    }

    #[test]
    fn most_similar_texts_by_shared_words_without_an_embedder() {
        let texts = vec!["How many authors are there?".to_owned(), "List the journals".to_owned(), "How many authors wrote papers?".to_owned()];
        let found = Linker::new(None).most_similar("How many authors are in the database?", &texts, 2, 0.3).unwrap();
        assert_eq!(found, [0, 2]);
        assert!(Linker::new(None).most_similar("Totally different", &texts, 2, 0.3).unwrap().is_empty());
    }

    #[test]
    fn a_named_value_brings_its_table() {
        let mut schema = schema();
        schema.tables[6].columns[2].mentioned_values = vec!["Europe".into()];
        let linked = Linker::new(None).link(&schema, "Which places are in Europe?", 20).unwrap();
        assert!(names(&linked).contains(&"organization"), "{:?}", names(&linked));
    }
}
