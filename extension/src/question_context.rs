//! What the model is told about the database for one question, as the calling role: the schema
//! it may read (only the relevant part when it is large: see engine/src/linking.rs), with the
//! values the question names marked, the glossary, and the most similar verified examples.
//! Read once per question; the one request builder behind answering and nl2sql_prompt().

use crate::backend_model::Backend;
use crate::errors::Result;
use crate::progress::{self, Phase};
use crate::{examples, glossary, gucs, linker, schema_context, value_index};
use nl2sql_engine::{Example, GlossaryEntry, Question, Schema, SqlRequest};

pub struct Context {
    schema: Schema,
    glossary: Vec<GlossaryEntry>,
    examples: Vec<Example>,
}

impl Context {
    pub fn read(question: &Question, observer: &Backend) -> Result<Self> {
        if observer.progress {
            progress::phase(Phase::ReadingSchema);
        }
        let mut schema = schema_context::schema_for_question()?;
        if gucs::mention_values() {
            value_index::ensure_built();
            value_index::mark_mentioned(&mut schema, question.as_str())?;
        }
        let budget = gucs::schema_budget_tokens();
        if budget > 0 {
            schema = linker::with_linker(|linker| linker.link(&schema, question.as_str(), budget))??;
        }
        Ok(Self { schema, glossary: glossary::entries()?, examples: examples::similar(question)? })
    }

    /// The request for `question`.
    pub fn request<'a>(&'a self, question: &'a Question, instructions: Option<&'a str>) -> SqlRequest<'a> {
        SqlRequest {
            schema: &self.schema,
            question,
            instructions,
            constrained: gucs::constrained_decoding(),
            glossary: &self.glossary,
            examples: &self.examples,
        }
    }
}
