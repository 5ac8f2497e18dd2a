//! The model worker (engine/src/worker.rs) with the real model, in a thread of this process: its
//! answers are the engine's, a caller that gives up stops it, and its failures reach the caller
//! as the same errors. (The worker as PostgreSQL runs it, forked and supervised, is tested in
//! web/tests/worker.rs.)

use nl2sql_engine::paths::default_model_path;
use nl2sql_engine::settings::WORKER_BATCH;
use nl2sql_engine::worker::{serve, RequestOptions, WorkerClient};
use nl2sql_engine::{ChatPrompt, Engine, Error, Observer, Question, Quiet, Schema, SchemaConstraint, Settings, SqlModel, SqlRequest};
use std::ops::ControlFlow;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Starts a worker serving `model` on a socket in a fresh directory; its socket path.
fn start_worker(model: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nl2sql-worker-test-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("model.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let model = model.to_owned();
    std::thread::spawn(move || serve(&listener, model, Settings::default(), WORKER_BATCH.default, true, &|message| eprintln!("worker: {message}")));
    socket
}

/// One worker with the real model for every test here (a load takes seconds and 3 GB).
fn worker() -> &'static Path {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| start_worker(&default_model_path()))
}

/// A client of the worker at `socket` for `model`, with the statement cache as asked.
fn client(socket: &Path, model: &Path, statement_cache: bool) -> WorkerClient {
    WorkerClient::new(socket, RequestOptions { max_new_tokens: 160, model_path: model.to_owned(), statement_cache })
}

fn pizza_prompt(question: &str) -> (ChatPrompt, SchemaConstraint) {
    let schema = Schema::from_ddl(include_str!("../examples/pizza.sql")).unwrap();
    let question = Question::parse(question).unwrap();
    (SqlRequest::new(&schema, &question).prompt(None), SchemaConstraint::new(&schema))
}

/// Records the streamed replies, and gives up after `stop_after` of them.
struct Watcher {
    replies: Vec<String>,
    stop_after: usize,
}

impl Observer for Watcher {
    fn checkpoint(&mut self) -> ControlFlow<()> {
        if self.replies.len() >= self.stop_after { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
    fn reply(&mut self, text: &str) {
        self.replies.push(text.to_owned());
    }
}

#[test]
fn the_worker_answers_exactly_as_the_engine_in_this_process_streaming_the_reply() {
    let (prompt, constraint) = pizza_prompt("Which pizza sold the most on Fridays?");
    let mut client = client(worker(), &default_model_path(), false);
    let mut watcher = Watcher { replies: Vec::new(), stop_after: usize::MAX };
    let served = client.complete(&prompt, Some(&constraint), &mut watcher).unwrap();

    let mut engine = Engine::load(&default_model_path(), Settings { max_new_tokens: 160, ..Settings::default() }).unwrap();
    let local = engine.complete(&prompt, Some(&constraint), &mut Quiet).unwrap();
    assert_eq!(served.text, local.text, "same prompt, same constraint, greedy: the same reply");
    assert_eq!(served.generated_tokens, local.generated_tokens);
    assert!(served.text.contains("SELECT"), "{}", served.text);
    assert!(watcher.replies.len() >= 5, "the reply arrives token by token: {:?}", watcher.replies);
    assert_eq!(watcher.replies.last().unwrap(), &served.text);
}

#[test]
fn a_caller_that_gives_up_stops_its_request_and_the_next_one_is_served() {
    let (prompt, constraint) = pizza_prompt("How many orders were placed in July?");
    let mut client = client(worker(), &default_model_path(), false);
    let before = client.status(&mut Quiet).unwrap();
    let mut impatient = Watcher { replies: Vec::new(), stop_after: 3 };
    let result = client.complete(&prompt, Some(&constraint), &mut impatient);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");

    // The request's thread sees its caller gone at its next pass and counts it then.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut after = client.status(&mut Quiet).unwrap();
    while after.cancelled == before.cancelled && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = client.status(&mut Quiet).unwrap();
    }
    assert_eq!(after.cancelled, before.cancelled + 1, "the worker saw the caller leave: {after:?}");
    assert_eq!(after.completed, before.completed, "and did not finish the reply for nobody");
    assert_eq!(after.pid, std::process::id(), "the worker here is a thread of this test");

    let answer = client.complete(&prompt, Some(&constraint), &mut Quiet).unwrap();
    assert!(answer.text.contains("SELECT"), "{}", answer.text);
    assert_eq!(client.status(&mut Quiet).unwrap().completed, after.completed + 1);
}

#[test]
fn a_model_that_cannot_load_reaches_the_caller_as_the_same_error() {
    let missing = std::env::temp_dir().join("nl2sql-no-such-model.gguf");
    let socket = start_worker(&missing);
    let (prompt, constraint) = pizza_prompt("How many orders were placed in July?");
    let result = client(&socket, &missing, false).complete(&prompt, Some(&constraint), &mut Quiet);
    match result {
        Err(Error::ModelNotFound { path }) => assert_eq!(path, missing),
        other => panic!("expected ModelNotFound, got {other:?}"),
    }
    let status = client(&socket, &missing, false).status(&mut Quiet).unwrap();
    assert_eq!((status.load_time, status.failed.get("ModelNotFound")), (None, Some(&1)), "{status:?}");
}

#[test]
fn no_worker_listening_is_a_clear_error() {
    let socket = std::env::temp_dir().join("nl2sql-no-worker-here.sock");
    let started = std::time::Instant::now();
    let error = client(&socket, &default_model_path(), false).with_patience(Duration::from_secs(2)).status(&mut Quiet).unwrap_err();
    assert!(matches!(error, Error::WorkerUnavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("nl2sql-no-worker-here.sock"), "{error}");
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for a worker that may be starting");
}

/// Requests in flight at once share their forward passes: both are answered, and the worker's
/// count of sequences per pass shows passes that served more than one.
#[test]
fn questions_asked_at_once_are_decoded_together_in_shared_passes() {
    let questions = ["How many orders were placed in July?", "Which pizza category has the most pizza types?", "What is the average price of a large pizza?"];
    let before = client(worker(), &default_model_path(), false).status(&mut Quiet).unwrap();
    let answers: Vec<_> = std::thread::scope(|scope| {
        let asking: Vec<_> = questions
            .iter()
            .map(|question| {
                scope.spawn(move || {
                    let (prompt, constraint) = pizza_prompt(question);
                    client(worker(), &default_model_path(), false).complete(&prompt, Some(&constraint), &mut Quiet).unwrap()
                })
            })
            .collect();
        asking.into_iter().map(|asked| asked.join().unwrap()).collect()
    });
    for (question, answer) in questions.iter().zip(&answers) {
        assert!(answer.text.contains("SELECT") && answer.text.contains("FROM"), "{question}: {}", answer.text);
    }
    let after = client(worker(), &default_model_path(), false).status(&mut Quiet).unwrap();
    let passes = after.forward_passes - before.forward_passes;
    let sequences = after.pass_sequences - before.pass_sequences;
    eprintln!("{passes} passes for {sequences} sequence steps: mean batch {:.2}", sequences as f64 / passes as f64);
    let steps: usize = answers.iter().map(|a| a.decode_steps).sum();
    assert!(sequences as usize >= steps, "every decoding step went through a pass: {sequences} < {steps}");
    assert!(sequences as f64 >= 1.5 * passes as f64, "the three were mostly decoded together: {passes} passes for {sequences} sequence steps");
}

#[test]
fn candidates_are_decoded_together_and_only_the_greedy_one_is_streamed() {
    let (prompt, constraint) = pizza_prompt("Which pizza sold the most on Fridays?");
    let mut client = client(worker(), &default_model_path(), false);
    let before = client.status(&mut Quiet).unwrap();
    let mut watcher = Watcher { replies: Vec::new(), stop_after: usize::MAX };
    let candidates = client.complete_candidates(&prompt, Some(&constraint), 0..4, &mut watcher).unwrap();
    let after = client.status(&mut Quiet).unwrap();

    let texts: Vec<&str> = candidates.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts.len(), 4);
    assert_eq!(watcher.replies.last().map(String::as_str), Some(texts[0]), "only the greedy reply is streamed");
    for text in &texts {
        assert!(text.contains("SELECT") && text.contains("FROM"), "every candidate is a statement under the constraint: {text}");
    }
    let distinct: std::collections::BTreeSet<&str> = texts.iter().copied().collect();
    assert!(distinct.len() >= 2, "drawn candidates differ from the greedy one somewhere: {texts:#?}");
    assert_eq!(after.completed - before.completed, 4);
    let (passes, sequences) = (after.forward_passes - before.forward_passes, after.pass_sequences - before.pass_sequences);
    let steps: Vec<usize> = candidates.iter().map(|c| c.decode_steps).collect();
    eprintln!("{passes} passes for {sequences} sequence steps; decoding steps per candidate: {steps:?}");
    // Decoded together, the four take about as many passes as the longest one has steps (and one
    // for the prompt); taking turns, about as many as all of them have.
    let longest = steps.iter().copied().max().unwrap_or(0);
    assert!(passes as f64 <= 1.25 * (longest + 1) as f64, "the four were mostly decoded together: {passes} passes for {sequences} sequence steps, the longest candidate {longest} steps");
}

/// A fake worker that reads one request, runs `before_hanging_up`, and closes the connection
/// without answering, as a worker stopped by a server shutdown does; its socket path.
fn worker_that_hangs_up(before_hanging_up: impl FnOnce() + Send + 'static) -> PathBuf {
    let socket = std::env::temp_dir().join(format!("nl2sql-hang-up-{}-{}.sock", std::process::id(), fastrand::u64(..)));
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut request = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut request).unwrap();
        before_hanging_up();
        drop(stream);
    });
    socket
}

/// A caller stopped by the same event that stopped the worker (a fast shutdown signals both) is
/// told of its own stop, not of a worker that went away; a caller not stopped is told the worker
/// went away.
#[test]
fn a_worker_gone_because_the_caller_was_stopped_too_reports_the_stop() {
    struct StoppedBy(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Observer for StoppedBy {
        fn checkpoint(&mut self) -> ControlFlow<()> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signal = stop.clone();
    let socket = worker_that_hangs_up(move || signal.store(true, std::sync::atomic::Ordering::SeqCst));
    let (prompt, constraint) = pizza_prompt("How many orders were placed in July?");
    let result = client(&socket, &default_model_path(), false).complete(&prompt, Some(&constraint), &mut StoppedBy(stop));
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");

    let socket = worker_that_hangs_up(|| ());
    let result = client(&socket, &default_model_path(), false).complete(&prompt, Some(&constraint), &mut Quiet);
    assert!(matches!(result, Err(Error::WorkerUnavailable { .. })), "{result:?}");
}

#[test]
fn the_statement_cache_gives_the_same_sql_without_generating_it_and_only_when_asked() {
    let (prompt, constraint) = pizza_prompt("How many pizzas were sold in March?");
    let mut cached = client(worker(), &default_model_path(), true);
    let before = cached.status(&mut Quiet).unwrap();
    let written = cached.complete(&prompt, Some(&constraint), &mut Quiet).unwrap();
    let again = cached.complete(&prompt, Some(&constraint), &mut Quiet).unwrap();
    assert!(!written.from_cache && again.from_cache, "{written:?} / {again:?}");
    assert_eq!(again.text, written.text);
    assert_eq!((again.decode_steps, again.timings.decode), (0, Duration::ZERO), "nothing computed: {again:?}");

    let uncached = client(worker(), &default_model_path(), false).complete(&prompt, Some(&constraint), &mut Quiet).unwrap();
    assert!(!uncached.from_cache && uncached.text == written.text, "with the cache off it is computed again: {uncached:?}");

    let after = cached.status(&mut Quiet).unwrap();
    assert_eq!((after.completed, after.cache_hits), (before.completed + 3, before.cache_hits + 1), "{after:?}");
    assert!(after.generated_tokens >= before.generated_tokens + 3 * written.generated_tokens as u64, "{after:?}");
    assert!(after.generation_ms.count >= 2 && after.generation_ms.p50 > 0.0, "{after:?}");
    assert!(after.queue_wait_ms.count >= 3, "{after:?}");
}

#[test]
fn a_session_that_expects_another_model_file_is_refused_and_a_missing_one_is_named() {
    let (prompt, constraint) = pizza_prompt("How many orders were placed in July?");
    let other = std::env::current_exe().unwrap(); // a file that exists, but not the model served
    let error = client(worker(), &other, false).complete(&prompt, Some(&constraint), &mut Quiet).unwrap_err();
    assert!(matches!(error, Error::InvalidSetting(_)), "{error:?}");
    assert!(error.to_string().contains(&format!("{} in this session, but the server's model worker serves", other.display())), "{error}");
    let missing = Path::new("/models/missing.gguf");
    let error = client(worker(), missing, false).complete(&prompt, Some(&constraint), &mut Quiet).unwrap_err();
    assert!(matches!(error, Error::ModelNotFound { .. }), "a file that is not there is said first: {error:?}");
}
