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
//! Constrained decoding does not travel: the local constraint (see constraint.rs) tracks aliases
//! and scopes as the statement is written, which a context-free grammar (llama.cpp's GBNF, vLLM's
//! guided decoding) cannot express; a grammar of names only would forbid every alias. Remote SQL
//! is judged by the same checker and repaired by the same conversation instead.

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
        settings.completions_url()?;
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
        Ok(Self { settings, max_new_tokens, client, runtime, breaker: Breaker::default() })
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    pub fn set_max_new_tokens(&mut self, max_new_tokens: usize) {
        self.max_new_tokens = max_new_tokens;
    }

    /// Sends `prompt` and waits for the reply, asking `observer` between short waits whether to
    /// go on; the request is aborted however this returns or unwinds.
    pub fn chat(&mut self, prompt: &ChatPrompt, observer: &mut dyn Observer) -> Result<Completion> {
        let endpoint = self.settings.shown_endpoint();
        self.breaker.check(&endpoint)?;
        let outcome = self.chat_unguarded(prompt, observer);
        self.breaker.record(&outcome);
        outcome
    }

    fn chat_unguarded(&mut self, prompt: &ChatPrompt, observer: &mut dyn Observer) -> Result<Completion> {
        let body = serde_json::json!({
            "model": self.settings.model,
            "messages": prompt.messages.iter().map(|m| serde_json::json!({"role": m.role.name(), "content": m.content})).collect::<Vec<_>>(),
            "temperature": 0,
            "max_tokens": self.max_new_tokens,
            "stream": false,
        });
        let started = Instant::now();
        let (sender, receiver) = mpsc::sync_channel(1);
        let request = send_with_retries(self.client.clone(), self.settings.clone(), body, started + self.settings.timeout);
        let task = self.runtime.spawn(async move {
            let _ = sender.send(request.await);
        });
        /// Aborts the request when the wait ends in any way, an unwinding cancel included.
        struct AbortOnDrop(tokio::task::AbortHandle);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _abort = AbortOnDrop(task.abort_handle());
        let reply = loop {
            if let ControlFlow::Break(()) = observer.checkpoint() {
                return Err(Error::Cancelled);
            }
            match receiver.recv_timeout(CHECK_EVERY) {
                Ok(reply) => break reply?,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::RemoteReply("the request task ended without a reply".into()))
                }
            }
        };
        let elapsed = started.elapsed();
        let choice = reply.choices.into_iter().next().ok_or_else(|| Error::RemoteReply("the reply has no choices".into()))?;
        let text = choice.message.content.unwrap_or_default();
        observer.reply(&text);
        let usage = reply.usage.unwrap_or(Usage { prompt_tokens: 0, completion_tokens: 0 });
        Ok(Completion {
            text,
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: 0,
            generated_tokens: usage.completion_tokens,
            decode_steps: usage.completion_tokens.saturating_sub(1),
            finish: if choice.finish_reason.as_deref() == Some("length") { Finish::Length } else { Finish::Stop },
            // The server does not say how its time split between prompt and decode.
            timings: Timings { prefill: Duration::ZERO, decode: elapsed },
        })
    }
}

impl SqlModel for RemoteModel {
    fn complete(&mut self, prompt: &ChatPrompt, _constraint: Option<&SchemaConstraint>, observer: &mut dyn Observer) -> Result<Completion> {
        self.chat(prompt, observer)
    }
}

async fn send_with_retries(client: reqwest::Client, settings: RemoteSettings, body: serde_json::Value, deadline: Instant) -> Result<ChatReply> {
    let url = settings.completions_url()?;
    let endpoint = settings.shown_endpoint();
    let timed_out = || Error::RemoteTimeout { endpoint: endpoint.clone(), timeout_ms: settings.timeout.as_millis() as u64 };
    let mut backoff = FIRST_BACKOFF;
    let (mut last_reason, mut last_timed_out) = (String::new(), false);
    for attempt in 1..=TRIES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        let retry_after = match try_once(&client, &settings, &url, &body, left).await {
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

async fn try_once(
    client: &reqwest::Client,
    settings: &RemoteSettings,
    url: &reqwest::Url,
    body: &serde_json::Value,
    timeout: Duration,
) -> std::result::Result<ChatReply, TryFailure> {
    let mut request = client.post(url.clone()).json(body).timeout(timeout);
    if let Some(key) = settings.api_key.as_deref().filter(|key| !key.is_empty()) {
        request = request.bearer_auth(key);
    }
    let transient = |e: reqwest::Error| TryFailure::Transient { timed_out: e.is_timeout(), reason: describe(e), retry_after: None };
    let response = request.send().await.map_err(transient)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.map_err(transient)?;
    let quoted = || {
        let text = settings.redact(text.trim());
        match text.char_indices().nth(QUOTED_REPLY_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    };
    let endpoint = settings.shown_endpoint();
    match status.as_u16() {
        200..=299 => serde_json::from_str(&text).map_err(|e| TryFailure::Final(Error::RemoteReply(format!("{e}: {}", quoted())))),
        401 | 403 => Err(TryFailure::Final(Error::RemoteUnauthorized { endpoint, status: status.as_u16() })),
        429 | 500..=599 => Err(TryFailure::Transient { reason: format!("HTTP {status}: {}", quoted()), retry_after, timed_out: false }),
        _ => Err(TryFailure::Final(Error::RemoteRejected { endpoint, status: status.as_u16(), reply: quoted() })),
    }
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
