//! The remote backend: the same chat prompts the local model gets, sent to an OpenAI-compatible
//! inference server (llama.cpp's llama-server, vLLM, SGLang, a hosted API) as
//! `POST {endpoint}/chat/completions`, greedy (temperature 0), with the same token limit.
//!
//! - Interruptible: the request runs on a small runtime of its own while the calling thread waits
//!   and asks its [`Observer`] between short waits whether to go on. When the caller stops (a
//!   cancel, or PostgreSQL's interrupt check unwinding), the request is aborted and its connection
//!   closed, so the server stops generating too.
//! - Retries: connection errors, timeouts of one try, 429 and 5xx are retried with backoff
//!   (honouring Retry-After), all within one deadline (`timeout`).
//! - Circuit breaker: after [`BREAKER_FAILURES`] failed requests in a row the client fails fast
//!   for [`BREAKER_PAUSE`], then lets one request through to probe the server.
//! - Secrets: the API key goes only into the Authorization header. Errors name the endpoint
//!   without any user:password part, and server replies quoted in errors have the key masked.
//!
//! Constrained decoding travels as the client's side of the decoding loop, not as a grammar: the
//! local constraint (constraint.rs) tracks aliases and scopes as the statement is written, which a
//! context-free grammar (llama.cpp's GBNF, vLLM's guided decoding) cannot express, and a grammar
//! of names only would forbid every alias. With a constraint, the reply is streamed with the top
//! [`TOP_LOGPROBS`] candidates of every token (`logprobs`, standard in the OpenAI chat API and
//! served by llama.cpp, vLLM and SGLang); each token is checked as it arrives, exactly as the local
//! decoder checks it (constrained.rs). When the constraint takes another candidate or goes back,
//! the stream is dropped and a new request continues the assistant's message from the accepted
//! text (`continue_final_message`; the server's prompt cache makes that cheap).

use crate::constrained::{Constrained, Ranked, Reply, Step, Vocabulary};
use crate::constraint::SchemaConstraint;
use crate::error::{Error, Result};
use crate::generate::{Completion, Finish, Observer, Timings};
use crate::prompt::ChatPrompt;
use crate::conversation::SqlModel;
use serde::Deserialize;
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Failed requests in a row after which the breaker opens.
pub const BREAKER_FAILURES: u32 = 3;
/// How long an open breaker fails requests without trying the server.
pub const BREAKER_PAUSE: Duration = Duration::from_secs(30);
/// Tries per request: the first and two retries.
const TRIES: u32 = 3;
/// Wait before the first retry; doubled for each further one. A Retry-After up to
/// [`MAX_RETRY_AFTER`] is honoured instead.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How often the waiting thread asks its observer whether to go on.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// The longest server reply quoted in an error.
const QUOTED_REPLY_CHARS: usize = 300;
/// Candidates per token asked of the server under the constraint (20 is the OpenAI API's limit).
pub const TOP_LOGPROBS: usize = 20;
/// Requests per reply under the constraint (each correction starts one); past this, the rest of
/// the reply is taken as the server writes it, and the checker and repair turn deal with it.
const MAX_CONSTRAINED_REQUESTS: usize = 48;

/// Where and how to reach the server. Its Debug output masks the API key.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// Base URL as OpenAI clients take it (`http://host:8080/v1`); a URL without a path gets `/v1`.
    pub endpoint: String,
    /// The `model` field of the request (llama.cpp's server ignores it; vLLM needs it).
    pub model: String,
    pub api_key: Option<String>,
    /// The whole request, retries included.
    pub timeout: Duration,
}

impl std::fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("endpoint", &self.shown_endpoint())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[set]"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RemoteSettings {
    /// The endpoint as errors show it: without any `user:password@`.
    pub fn shown_endpoint(&self) -> String {
        match reqwest::Url::parse(&self.endpoint) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.as_str().trim_end_matches('/').to_owned()
            }
            Err(_) => self.endpoint.clone(),
        }
    }

    fn completions_url(&self) -> Result<reqwest::Url> {
        let invalid = |why: &str| Error::InvalidSetting(format!("the inference endpoint '{}' {why}; give a base URL such as http://127.0.0.1:8080/v1", self.shown_endpoint()));
        let mut url = reqwest::Url::parse(self.endpoint.trim()).map_err(|_| invalid("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("is not an http or https URL"));
        }
        let base = url.path().trim_end_matches('/').to_owned();
        let base = if base.is_empty() { "/v1".to_owned() } else { base };
        url.set_path(&format!("{base}/chat/completions"));
        Ok(url)
    }

    /// `text` with the API key masked, for quoting what a server said.
    fn redact(&self, text: &str) -> String {
        match self.api_key.as_deref().filter(|key| !key.is_empty()) {
            Some(key) => text.replace(key, "[api key]"),
            None => text.to_owned(),
        }
    }
}

/// Consecutive failures, and when the breaker opened.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    opened: Option<Instant>,
}

impl Breaker {
    fn check(&self, endpoint: &str) -> Result<()> {
        match self.opened {
            Some(opened) if opened.elapsed() < BREAKER_PAUSE => Err(Error::RemoteCircuitOpen {
                endpoint: endpoint.to_owned(),
                failures: self.failures,
                retry_in_secs: (BREAKER_PAUSE - opened.elapsed()).as_secs() + 1,
            }),
            _ => Ok(()),
        }
    }

    fn record(&mut self, outcome: &Result<Completion>) {
        match outcome {
            Ok(_) => *self = Breaker::default(),
            // The caller stopping, or a request the server rejected as such, says nothing about
            // the server's health.
            Err(Error::Cancelled | Error::PromptTooLong { .. } | Error::RemoteUnauthorized { .. }) => {}
            Err(_) => {
                self.failures += 1;
                if self.failures >= BREAKER_FAILURES {
                    self.opened = Some(Instant::now());
                }
            }
        }
    }
}

/// A client of one inference server; keep it for the session (it holds the connection pool and
/// the breaker's memory).
pub struct RemoteModel {
    settings: RemoteSettings,
    /// `{endpoint}/chat/completions`, worked out once.
    url: reqwest::Url,
    max_new_tokens: usize,
    client: reqwest::Client,
    /// One worker thread: it only waits on sockets. Created by [`RemoteModel::new`], so a caller
    /// that must keep signals off worker threads can block them around that call.
    runtime: tokio::runtime::Runtime,
    breaker: Breaker,
}

#[derive(Debug, Deserialize)]
struct ChatReply {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// A reply (or one streamed chunk) read from JSON; what the server sent, quoted, when it is not
/// what was expected.
fn parse_json<T: serde::de::DeserializeOwned>(text: &str, settings: &RemoteSettings) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::RemoteReply(format!("{e}: {}", quote(settings, text))))
}

impl ChatReply {
    /// The one choice asked for (n = 1), and the usage.
    fn first_choice(self) -> Result<(Choice, Usage)> {
        let usage = self.usage.unwrap_or(Usage { prompt_tokens: 0, completion_tokens: 0 });
        let choice = self.choices.into_iter().next().ok_or_else(|| Error::RemoteReply("the reply has no choices".into()))?;
        Ok((choice, usage))
    }
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ReplyMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

/// How one try ended, when it did not give a reply.
enum TryFailure {
    /// Worth another try: the server is down, busy or failing (or this try ran out of time).
    Transient { reason: String, retry_after: Option<Duration>, timed_out: bool },
    /// No retry will help.
    Final(Error),
}

impl RemoteModel {
    pub fn new(settings: RemoteSettings, max_new_tokens: usize) -> Result<Self> {
        let url = settings.completions_url()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(settings.timeout))
            .build()
            .map_err(|e| Error::InvalidSetting(format!("the HTTP client cannot be built: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nl2sql-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::InvalidSetting(format!("the HTTP runtime cannot start: {e}")))?;
        Ok(Self { settings, url, max_new_tokens, client, runtime, breaker: Breaker::default() })
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    pub fn set_max_new_tokens(&mut self, max_new_tokens: usize) {
        self.max_new_tokens = max_new_tokens;
    }

    /// A chat completion request for `prompt`: the same messages the local model gets, greedy.
    fn request_body(&self, prompt: &ChatPrompt, max_tokens: usize) -> serde_json::Value {
        serde_json::json!({
            "model": self.settings.model,
            "messages": prompt.messages.iter().map(|m| serde_json::json!({"role": m.role.name(), "content": m.content})).collect::<Vec<_>>(),
            "temperature": 0,
            "max_tokens": max_tokens,
        })
    }

    /// Sends `prompt` and waits for the whole reply, asking `observer` between short waits whether
    /// to go on; the request is aborted however this returns or unwinds.
    fn chat_whole(&mut self, prompt: &ChatPrompt, observer: &mut dyn Observer) -> Result<Completion> {
        let mut body = self.request_body(prompt, self.max_new_tokens);
        body["stream"] = false.into();
        let started = Instant::now();
        let (sender, receiver) = mpsc::sync_channel(1);
        let (client, settings, url, deadline) = (self.client.clone(), self.settings.clone(), self.url.clone(), started + self.settings.timeout);
        let task = self.runtime.spawn(async move {
            let reply = with_retries(&settings, deadline, |left| try_once(&client, &settings, &url, &body, left)).await;
            let _ = sender.send(reply);
        });
        let _abort = AbortOnDrop(task.abort_handle());
        let reply = wait(&receiver, observer)??;
        let elapsed = started.elapsed();
        let (choice, usage) = reply.first_choice()?;
        let text = choice.message.content.unwrap_or_default();
        observer.reply(&text);
        Ok(Completion {
            text,
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: 0,
            generated_tokens: usage.completion_tokens,
            decode_steps: usage.completion_tokens.saturating_sub(1),
            drafted_tokens: 0,
            finish: if choice.finish_reason.as_deref() == Some("length") { Finish::Length } else { Finish::Stop },
            // The server does not say how its time split between prompt and decode.
            timings: Timings { prefill: Duration::ZERO, decode: elapsed },
            from_cache: false,
        })
    }
}

impl SqlModel for RemoteModel {
    fn complete(&mut self, prompt: &ChatPrompt, constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion> {
        let endpoint = self.settings.shown_endpoint();
        self.breaker.check(&endpoint)?;
        let outcome = match constraint {
            Some(constraint) => self.chat_constrained(prompt, constraint, observer),
            None => self.chat_whole(prompt, observer),
        };
        self.breaker.record(&outcome);
        outcome
    }
}

/// Aborts a request's task when dropped: however a wait for it ends, an unwinding cancel
/// included, the request's connection is closed and the server stops generating.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The next message from a request's task, asking `observer` between short waits whether to go on.
fn wait<T>(receiver: &mpsc::Receiver<T>, observer: &mut dyn Observer) -> Result<T> {
    loop {
        if let ControlFlow::Break(()) = observer.checkpoint() {
            return Err(Error::Cancelled);
        }
        match receiver.recv_timeout(CHECK_EVERY) {
            Ok(message) => return Ok(message),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::RemoteReply("the request task ended without a reply".into())),
        }
    }
}

// ---- constrained: a stream of tokens with their top candidates -------------------------------

#[derive(Debug, Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct StreamChoice {
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    delta: Option<ReplyMessage>,
    #[serde(default)]
    logprobs: Option<StreamLogprobs>,
}

#[derive(Debug, Deserialize)]
struct StreamLogprobs {
    #[serde(default)]
    content: Option<Vec<TokenLogprob>>,
}

#[derive(Debug, Deserialize)]
struct TokenLogprob {
    token: String,
    /// The token's bytes (a token can end inside a UTF-8 character, which `token` cannot show).
    #[serde(default)]
    bytes: Option<Vec<u8>>,
    #[serde(default)]
    top_logprobs: Vec<Candidate>,
}

#[derive(Debug, Deserialize)]
struct Candidate {
    token: String,
    #[serde(default)]
    bytes: Option<Vec<u8>>,
    logprob: f32,
}

fn token_bytes(token: &str, bytes: &Option<Vec<u8>>) -> Vec<u8> {
    bytes.clone().unwrap_or_else(|| token.as_bytes().to_vec())
}

/// What a streaming request's task reports.
enum StreamEvent {
    /// The server wrote `chosen`; these were its best candidates, best first.
    Token { chosen: Vec<u8>, candidates: Vec<Vec<u8>> },
    /// The reply ended: `stop` if the model ended it, not the token limit.
    End { stop: bool, prompt_tokens: usize },
}

/// Token spellings as the server reports them, numbered as first seen.
#[derive(Default)]
struct SeenTokens {
    ids: std::collections::HashMap<Vec<u8>, u32>,
    spellings: Vec<Vec<u8>>,
}

impl SeenTokens {
    fn id(&mut self, spelling: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(spelling) {
            return id;
        }
        let id = self.spellings.len() as u32;
        self.spellings.push(spelling.to_vec());
        self.ids.insert(spelling.to_vec(), id);
        id
    }
}

impl Vocabulary for SeenTokens {
    fn spelling(&self, id: u32) -> &[u8] {
        if self.is_stop(id) { &[] } else { &self.spellings[id as usize] }
    }

    /// Control tokens: the end of the message, reported as its name (`<|im_end|>`) or as nothing.
    fn is_stop(&self, id: u32) -> bool {
        let spelling = &self.spellings[id as usize];
        spelling.is_empty() || (spelling.starts_with(b"<|") && spelling.ends_with(b"|>"))
    }
}

/// Reads the server-sent events of a streamed chat completion, passing each token on.
async fn read_stream(response: reqwest::Response, settings: &RemoteSettings, events: &mpsc::Sender<Result<StreamEvent>>) -> Result<()> {
    let endpoint = settings.shown_endpoint();
    let read_error = |e: reqwest::Error| match e.is_timeout() {
        true => Error::RemoteTimeout { endpoint: endpoint.clone(), timeout_ms: settings.timeout.as_millis() as u64 },
        false => Error::RemoteUnavailable { endpoint: endpoint.clone(), tries: 1, reason: describe(e) },
    };
    let mut response = response;
    let event_stream = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/event-stream"));
    if !event_stream {
        // A server that ignored `stream`: its whole reply, as one token with no alternatives.
        let text = response.text().await.map_err(read_error)?;
        let (choice, usage) = parse_json::<ChatReply>(&text, settings)?.first_choice()?;
        let prompt_tokens = usage.prompt_tokens;
        let content = choice.message.content.unwrap_or_default().into_bytes();
        if !content.is_empty() {
            let _ = events.send(Ok(StreamEvent::Token { chosen: content.clone(), candidates: vec![content] }));
        }
        let _ = events.send(Ok(StreamEvent::End { stop: choice.finish_reason.as_deref() != Some("length"), prompt_tokens }));
        return Ok(());
    }
    let mut pending: Vec<u8> = Vec::new();
    let (mut stop, mut prompt_tokens) = (false, 0);
    while let Some(bytes) = response.chunk().await.map_err(read_error)? {
        pending.extend_from_slice(&bytes);
        while let Some(newline) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:").map(str::trim) else { continue };
            if data == "[DONE]" {
                let _ = events.send(Ok(StreamEvent::End { stop, prompt_tokens }));
                return Ok(());
            }
            let chunk: StreamChunk = parse_json(data, settings)?;
            if let Some(usage) = chunk.usage {
                prompt_tokens = usage.prompt_tokens;
            }
            for choice in chunk.choices {
                let tokens = choice.logprobs.and_then(|l| l.content).unwrap_or_default();
                // A server that sends no candidates: its text as it comes, with no alternatives.
                let text = choice.delta.and_then(|d| d.content).filter(|t| !t.is_empty() && tokens.is_empty());
                if let Some(text) = text {
                    let _ = events.send(Ok(StreamEvent::Token { chosen: text.clone().into_bytes(), candidates: vec![text.into_bytes()] }));
                }
                for token in tokens {
                    let chosen = token_bytes(&token.token, &token.bytes);
                    let mut candidates = token.top_logprobs;
                    candidates.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
                    let mut ranked = vec![chosen.clone()];
                    ranked.extend(candidates.iter().map(|c| token_bytes(&c.token, &c.bytes)).filter(|c| *c != chosen));
                    if events.send(Ok(StreamEvent::Token { chosen, candidates: ranked })).is_err() {
                        return Ok(()); // the reader went on without this stream
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    stop = reason != "length";
                }
            }
        }
    }
    let _ = events.send(Ok(StreamEvent::End { stop, prompt_tokens }));
    Ok(())
}

impl RemoteModel {
    /// Starts streaming a reply to `prompt` that continues `prefix` (the assistant's text so far).
    fn start_stream(&self, prompt: &ChatPrompt, prefix: &str, max_tokens: usize, deadline: Instant) -> (mpsc::Receiver<Result<StreamEvent>>, AbortOnDrop) {
        let mut body = self.request_body(prompt, max_tokens);
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
        body["logprobs"] = true.into();
        body["top_logprobs"] = TOP_LOGPROBS.into();
        if !prefix.is_empty() {
            body["messages"].as_array_mut().expect("messages").push(serde_json::json!({"role": "assistant", "content": prefix}));
            body["continue_final_message"] = true.into();
            body["add_generation_prompt"] = false.into();
        }
        let (sender, receiver) = mpsc::channel();
        let (client, settings, url) = (self.client.clone(), self.settings.clone(), self.url.clone());
        let task = self.runtime.spawn(async move {
            let request = async {
                let response = with_retries(&settings, deadline, |left| post(&client, &settings, &url, &body, left)).await?;
                read_stream(response, &settings, &sender).await
            };
            if let Err(error) = request.await {
                let _ = sender.send(Err(error));
            }
        });
        (receiver, AbortOnDrop(task.abort_handle()))
    }

    /// A reply under the schema constraint: see the module's documentation.
    fn chat_constrained(&mut self, prompt: &ChatPrompt, constraint: &SchemaConstraint, observer: &mut dyn Observer) -> Result<Completion> {
        let started = Instant::now();
        let deadline = started + self.settings.timeout;
        let mut seen = SeenTokens::default();
        let mut reply = Reply::default();
        let mut decoder = Constrained::new(constraint);
        let (mut requests, mut prompt_tokens) = (0, 0);
        let finish = 'requests: loop {
            if reply.tokens.len() >= self.max_new_tokens {
                break Finish::Length;
            }
            requests += 1;
            reply.drop_partial_character();
            let (events, _abort) = self.start_stream(prompt, reply.shown(), self.max_new_tokens - reply.tokens.len(), deadline);
            loop {
                match wait(&events, observer)?? {
                    StreamEvent::End { stop, prompt_tokens: reported } => {
                        if requests == 1 {
                            prompt_tokens = reported;
                        }
                        break 'requests if stop { Finish::Stop } else { Finish::Length };
                    }
                    StreamEvent::Token { chosen, candidates } => {
                        let chosen = seen.id(&chosen);
                        let ranked = Ranked(candidates.iter().map(|c| seen.id(c)).collect());
                        let step = match requests <= MAX_CONSTRAINED_REQUESTS {
                            true => decoder.choose(&seen, &ranked, &reply),
                            false => Step::Token(chosen),
                        };
                        match step {
                            Step::Token(token) | Step::Last(token) if seen.is_stop(token) => break 'requests Finish::Stop,
                            Step::Token(token) => {
                                reply.push(&seen, token);
                                observer.reply(reply.shown());
                                if token != chosen || reply.tokens.len() >= self.max_new_tokens {
                                    continue 'requests; // the server wrote another token: ask again from here
                                }
                            }
                            Step::Last(token) => {
                                reply.push(&seen, token);
                                observer.reply(reply.shown());
                                break 'requests Finish::Stop;
                            }
                            Step::Backtrack { to, ban } => {
                                decoder.backtrack(&mut reply, to, ban);
                                observer.reply(reply.shown());
                                continue 'requests;
                            }
                            Step::GiveUp => break 'requests Finish::DeadEnd,
                        }
                    }
                }
            }
        };
        Ok(Completion {
            text: reply.shown().to_owned(),
            prompt_tokens,
            cached_tokens: 0,
            generated_tokens: reply.tokens.len(),
            decode_steps: reply.tokens.len().saturating_sub(1),
            drafted_tokens: 0,
            finish,
            timings: Timings { prefill: Duration::ZERO, decode: started.elapsed() },
            from_cache: false,
        })
    }
}

/// Runs `try_once` (given the time left) until it succeeds, fails for good, or the tries or the
/// deadline run out, waiting between tries.
async fn with_retries<T, F, Fut>(settings: &RemoteSettings, deadline: Instant, mut try_once: F) -> Result<T>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, TryFailure>>,
{
    let endpoint = settings.shown_endpoint();
    let timed_out = || Error::RemoteTimeout { endpoint: endpoint.clone(), timeout_ms: settings.timeout.as_millis() as u64 };
    let mut backoff = FIRST_BACKOFF;
    let (mut last_reason, mut last_timed_out) = (String::new(), false);
    for attempt in 1..=TRIES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        let retry_after = match try_once(left).await {
            Ok(reply) => return Ok(reply),
            Err(TryFailure::Final(error)) => return Err(error),
            Err(TryFailure::Transient { reason, retry_after, timed_out }) => {
                (last_reason, last_timed_out) = (reason, timed_out);
                retry_after
            }
        };
        if attempt == TRIES {
            break;
        }
        let wait = retry_after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER));
        if Instant::now() + wait >= deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        backoff *= 2;
    }
    // A try's own time is what was left of the deadline: its timing out is the deadline's.
    if last_timed_out || Instant::now() >= deadline {
        return Err(timed_out());
    }
    Err(Error::RemoteUnavailable { endpoint, tries: TRIES, reason: last_reason })
}

fn transient(e: reqwest::Error) -> TryFailure {
    TryFailure::Transient { timed_out: e.is_timeout(), reason: describe(e), retry_after: None }
}

/// What a server said, for an error: the key masked, cut to [`QUOTED_REPLY_CHARS`].
fn quote(settings: &RemoteSettings, text: &str) -> String {
    let text = settings.redact(text.trim());
    match text.char_indices().nth(QUOTED_REPLY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// One POST of `body`: a success is returned with its body still to read; anything else is a
/// failure, worth another try or not.
async fn post(
    client: &reqwest::Client,
    settings: &RemoteSettings,
    url: &reqwest::Url,
    body: &serde_json::Value,
    timeout: Duration,
) -> std::result::Result<reqwest::Response, TryFailure> {
    let mut request = client.post(url.clone()).json(body).timeout(timeout);
    if let Some(key) = settings.api_key.as_deref().filter(|key| !key.is_empty()) {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(transient)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.map_err(transient)?;
    let endpoint = settings.shown_endpoint();
    match status.as_u16() {
        401 | 403 => Err(TryFailure::Final(Error::RemoteUnauthorized { endpoint, status: status.as_u16() })),
        429 | 500..=599 => Err(TryFailure::Transient { reason: format!("HTTP {status}: {}", quote(settings, &text)), retry_after, timed_out: false }),
        _ => Err(TryFailure::Final(Error::RemoteRejected { endpoint, status: status.as_u16(), reply: quote(settings, &text) })),
    }
}

/// One whole (not streamed) chat completion.
async fn try_once(
    client: &reqwest::Client,
    settings: &RemoteSettings,
    url: &reqwest::Url,
    body: &serde_json::Value,
    timeout: Duration,
) -> std::result::Result<ChatReply, TryFailure> {
    let text = post(client, settings, url, body, timeout).await?.text().await.map_err(transient)?;
    parse_json(&text, settings).map_err(TryFailure::Final)
}

/// A reqwest error in one line, with its cause (reqwest's own message is only "error sending
/// request"); URLs are left out, since they may carry credentials.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str) -> RemoteSettings {
        RemoteSettings { endpoint: endpoint.into(), model: "m".into(), api_key: Some("sk-secret".into()), timeout: Duration::from_secs(5) }
    }

    #[test]
    fn the_completions_url_is_the_base_url_plus_chat_completions() {
        assert_eq!(settings("http://127.0.0.1:8080/v1").completions_url().unwrap().as_str(), "http://127.0.0.1:8080/v1/chat/completions");
        assert_eq!(settings("http://127.0.0.1:8080/v1/").completions_url().unwrap().as_str(), "http://127.0.0.1:8080/v1/chat/completions");
        assert_eq!(settings("http://127.0.0.1:8080").completions_url().unwrap().as_str(), "http://127.0.0.1:8080/v1/chat/completions");
        assert_eq!(settings("https://gpu.internal/openai/v1").completions_url().unwrap().as_str(), "https://gpu.internal/openai/v1/chat/completions");
        for bad in ["", "127.0.0.1:8080", "ftp://host/v1", "not a url"] {
            assert!(matches!(settings(bad).completions_url(), Err(Error::InvalidSetting(_))), "{bad:?} is refused");
        }
    }

    #[test]
    fn errors_show_the_endpoint_without_credentials_and_replies_without_the_key() {
        let s = settings("http://user:hunter2@gpu.internal:8000/v1");
        assert_eq!(s.shown_endpoint(), "http://gpu.internal:8000/v1");
        assert_eq!(s.redact("Incorrect API key provided: sk-secret."), "Incorrect API key provided: [api key].");
        let debug = format!("{s:?}");
        assert!(!debug.contains("sk-secret") && !debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_ignores_cancels() {
        let mut breaker = Breaker::default();
        let failure = || Err(Error::RemoteUnavailable { endpoint: "e".into(), tries: 3, reason: "refused".into() });
        for _ in 0..BREAKER_FAILURES - 1 {
            breaker.record(&failure());
            breaker.record(&Err(Error::Cancelled));
        }
        assert!(breaker.check("e").is_ok(), "still closed below the threshold");
        breaker.record(&failure());
        match breaker.check("e") {
            Err(Error::RemoteCircuitOpen { failures, retry_in_secs, .. }) => {
                assert_eq!(failures, BREAKER_FAILURES);
                assert!(retry_in_secs <= BREAKER_PAUSE.as_secs() + 1);
            }
            other => panic!("expected an open breaker, got {other:?}"),
        }
        breaker.opened = Some(Instant::now() - BREAKER_PAUSE);
        assert!(breaker.check("e").is_ok(), "after the pause one request may probe the server");
    }
}
