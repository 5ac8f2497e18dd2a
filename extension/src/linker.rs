//! This backend's schema linker: the embedding model (90 MB, loaded when first needed; without it,
//! linking and example search fall back to words), and the embeddings of column descriptions and
//! example questions it has computed, by text.

use crate::errors::{Nl2sqlError, Result};
use crate::gucs;
use nl2sql_engine::embedding::Embedder;
use nl2sql_engine::linking::Linker;
use std::cell::RefCell;

thread_local! {
    static LINKER: RefCell<Option<Linker>> = const { RefCell::new(None) };
}

/// Runs `f` with this backend's linker, made on first use.
pub fn with_linker<R>(f: impl FnOnce(&mut Linker) -> R) -> Result<R> {
    LINKER.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| Nl2sqlError::internal("schema linking", "the linker is busy"))?;
        let linker = slot.get_or_insert_with(|| {
            Linker::loading_on_first_use(|| {
                crate::backend_model::start_compute_threads();
                Embedder::load(&gucs::embedding_model_path()).ok()
            })
        });
        Ok(f(linker))
    })
}
