//! The schema constraint (engine/src/constraint.rs) never forbids a correct query: every gold
//! query of the dev split, each `{a, b}` alternative expanded, is allowed under its own
//! database's schema — character by character (no model needed), and token by token as the real
//! tokenizer splits it. The schemas are what nl2sql_schema() gives for the restored databases
//! (fixtures/sql-eval-schemas.json, from defog-data, Apache-2.0).

#[cfg(test)]
mod tests {
    use crate::questions;
    use crate::scoring::gold_queries;
    use nl2sql_engine::{ChatTokenizer, Schema, SchemaConstraint};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn constraints() -> BTreeMap<String, SchemaConstraint> {
        let schemas: BTreeMap<String, Schema> = serde_json::from_str(include_str!("../fixtures/sql-eval-schemas.json")).unwrap();
        schemas.iter().map(|(db, schema)| (db.clone(), SchemaConstraint::new(schema))).collect()
    }

    /// (database, gold query as the model would end it) for every expanded gold query.
    fn gold() -> Vec<(String, String)> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("questions_dev.csv");
        questions::load(&path)
            .unwrap()
            .into_iter()
            .flat_map(|(_, q)| gold_queries(&q.query).into_iter().map(move |sql| (q.db_name.clone(), format!("{sql}\n```"))))
            .collect()
    }

    /// Runs `allowed` on every cut of every gold query; lists those refused, with where.
    fn refusals(cuts: impl Fn(&str) -> Vec<usize>) -> Vec<String> {
        let constraints = constraints();
        let mut refused = Vec::new();
        for (db, sql) in gold() {
            let constraint = &constraints[&db];
            if let Some(at) = cuts(&sql).into_iter().find(|&at| !constraint.allows(&sql.as_bytes()[..at])) {
                refused.push(format!("{db}: refused at {at} ({:?}) in {sql:?}", &sql[..at]));
            }
        }
        refused
    }

    #[test]
    fn every_gold_query_is_allowed_character_by_character() {
        let refused = refusals(|sql| (1..=sql.len()).filter(|&i| sql.is_char_boundary(i)).collect());
        assert!(gold().len() > 200, "the dev split's gold queries, expanded");
        assert!(refused.is_empty(), "{} refused:\n{}", refused.len(), refused.join("\n"));
    }

    #[test]
    fn every_gold_query_is_allowed_token_by_token() {
        let tokenizer = ChatTokenizer::from_model_file(&nl2sql_engine::paths::default_model_path())
            .unwrap_or_else(|e| panic!("this test needs the model's tokenizer (scripts/fetch-model): {e}"));
        let refused = refusals(|sql| {
            let mut ends = Vec::new();
            let mut end = 0;
            for id in tokenizer.encode(sql).unwrap() {
                end += tokenizer.spelling(id).len();
                ends.push(end);
            }
            assert_eq!(end, sql.len(), "the spellings add up to the text");
            ends
        });
        assert!(refused.is_empty(), "{} refused:\n{}", refused.len(), refused.join("\n"));
    }
}
