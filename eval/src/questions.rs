//! sql-eval's questions file: question, query, db_name, query_category, instructions.

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub question: String,
    /// Gold SQL: `;`-separated alternatives with `{a, b}` column choices.
    pub query: String,
    pub db_name: String,
    pub query_category: String,
    #[serde(default)]
    pub instructions: Option<String>,
}

/// The questions, numbered by their position in the file (the number identifies them in results).
pub fn load(path: &Path) -> Result<Vec<(usize, Question)>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    reader
        .deserialize::<Question>()
        .enumerate()
        .map(|(i, row)| row.map(|q| (i, q)).map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2)))
        .collect()
}
