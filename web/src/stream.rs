//! POST /api/ask/stream: the same answer as /api/ask, as server-sent events while the model
//! works: `phase` ({"phase": "reading_schema" | "writing_sql" | "running" | "explaining"}),
//! `sql` ({"text": the model's SQL reply so far}), `answer` ({"answer": the answer in words so
//! far}), then `result` (what /api/ask returns) or `error` ({status, error, detail, hint}).
//!
//! The first event, `started` ({"id": ...}), names the question: POST /api/ask/cancel with that
//! id stops it. The events come from the progress NOTICEs of nl2sql_ask(..., progress => true).
//! On a cancel, or when the client goes away, the running question is cancelled in the database,
//! and the connection returns to the pool once the cancel landed. (A browser that aborts its
//! fetch does not always close the connection, so the page asks for the cancel explicitly.)

use crate::db::Database;
use crate::error::ApiError;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde_json::{json, Value};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// The message nl2sql puts on its progress NOTICEs (extension/src/progress.rs).
const PROGRESS_MESSAGE: &str = "nl2sql progress";
/// How long a cancel, and the cancelled statement's end, are waited for before the connection
/// is given back anyway (deadpool then checks it before its next use).
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The questions being answered, by id, each with the signal that cancels it.
#[derive(Clone, Default)]
pub struct Running(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Running {
    fn start(&self) -> (String, Arc<Notify>, impl Drop) {
        // Unguessable enough that one client cannot cancel another's question by counting.
        let id = format!("{:016x}{:016x}", RandomState::new().build_hasher().finish(), RandomState::new().build_hasher().finish());
        let cancel = Arc::new(Notify::new());
        self.0.lock().expect("running questions").insert(id.clone(), cancel.clone());
        struct Finished(Running, String);
        impl Drop for Finished {
            fn drop(&mut self) {
                self.0 .0.lock().expect("running questions").remove(&self.1);
            }
        }
        (id.clone(), cancel, Finished(self.clone(), id))
    }

    /// Cancels the question `id`; false if no such question is running.
    pub fn cancel(&self, id: &str) -> bool {
        match self.0.lock().expect("running questions").get(id) {
            Some(cancel) => {
                cancel.notify_one();
                true
            }
            None => false,
        }
    }
}

pub fn answer_as_events(database: Database, running: Running, question: String) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Unbounded: the worker must never wait on a client that stopped reading (it would hold its
    // pooled connection); a reply is a few hundred events at most.
    let (events, receiver) = mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        let (id, cancel, _finished) = running.start();
        if let Ok(event) = Event::default().event("started").json_data(json!({ "id": id })) {
            let _ = events.send(event);
        }
        let last = match ask_with_progress(&database, &question, &events, &cancel).await {
            Ok(answer) => Event::default().event("result").json_data(answer),
            Err(error) => {
                let mut body = error.body();
                body["status"] = json!(error.status.as_u16());
                Event::default().event("error").json_data(body)
            }
        };
        if let Ok(event) = last {
            let _ = events.send(event);
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A progress NOTICE as an event: `phase`, `sql` or `answer`.
fn progress_event(detail: &str) -> Option<Event> {
    let progress: Value = serde_json::from_str(detail).ok()?;
    let name = match (progress.get("text"), progress.get("answer")) {
        (Some(_), _) => "sql",
        (_, Some(_)) => "answer",
        _ => "phase",
    };
    Event::default().event(name).json_data(progress).ok()
}

async fn ask_with_progress(
    database: &Database,
    question: &str,
    events: &mpsc::UnboundedSender<Event>,
    cancelled: &Notify,
) -> Result<Value, ApiError> {
    let client = database.client().await?;
    let pid: i32 = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[]).await?.get(0);
    let (mut notices, _listening) = database.notices.listen(pid);
    let cancel = client.cancel_token();
    let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&question];
    let query = client.query_one("SELECT nl2sql_ask($1, progress => true)", &parameters);
    tokio::pin!(query);
    loop {
        tokio::select! {
            row = &mut query => {
                // NOTICEs sent before the result are already queued: forward them first.
                while let Ok(notice) = notices.try_recv() {
                    forward(&notice, events);
                }
                return Ok(row?.get(0));
            }
            Some(notice) = notices.recv() => forward(&notice, events),
            _ = async { tokio::select! { _ = events.closed() => {}, _ = cancelled.notified() => {} } } => {
                // Cancelled, or the client left: stop the question in the database, and wait for
                // the cancel to land before the connection goes back to the pool.
                let _ = tokio::time::timeout(CANCEL_WAIT, cancel.cancel_query(tokio_postgres::NoTls)).await;
                let _ = tokio::time::timeout(CANCEL_WAIT, query).await;
                return Err(ApiError::new(axum::http::StatusCode::REQUEST_TIMEOUT, "the question was cancelled"));
            }
        }
    }
}

fn forward(notice: &tokio_postgres::error::DbError, events: &mpsc::UnboundedSender<Event>) {
    if notice.message() == PROGRESS_MESSAGE {
        if let Some(event) = notice.detail().and_then(progress_event) {
            let _ = events.send(event);
        }
    }
}
