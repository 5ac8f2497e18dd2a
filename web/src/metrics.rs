//! GET /metrics: the model worker's `nl2sql_stats()` in Prometheus' text format (0.0.4), for a
//! Prometheus server or any agent that scrapes it. Counters since the worker started (they go
//! back to zero when it restarts, which Prometheus' rate() expects); percentiles of the last
//! 1,000 requests as gauges with a `quantile` label.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::fmt::Write;

pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.database.stats().await?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], render(&stats)).into_response())
}

/// A label value as the format quotes it.
fn escaped(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The statistics as metric families: HELP, TYPE, then the samples.
pub fn render(stats: &Value) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let number = |key: &str| stats[key].as_f64().unwrap_or(0.0);
    let plain = |key: &str| vec![(String::new(), number(key))];

    let info = format!(
        "{{pid=\"{}\",model_path=\"{}\",device=\"{}\",threads=\"{}\"}}",
        stats["pid"],
        escaped(stats["model_path"].as_str().unwrap_or_default()),
        escaped(stats["device"].as_str().unwrap_or_default()),
        stats["threads"]
    );
    family("nl2sql_worker_info", "gauge", "The model worker's process and model (always 1).", &[(info, 1.0)]);
    family("nl2sql_model_load_seconds", "gauge", "How long loading the model took (0 until it is loaded).", &plain("load_seconds"));
    let outcomes = [("completed", number("completed")), ("cancelled", number("cancelled"))];
    let outcomes: Vec<(String, f64)> = outcomes.iter().map(|(outcome, n)| (format!("{{outcome=\"{outcome}\"}}"), *n)).collect();
    family("nl2sql_requests_total", "counter", "Requests answered or cancelled by their caller.", &outcomes);
    let failures: Vec<(String, f64)> = stats["failed"]
        .as_object()
        .map(|kinds| kinds.iter().map(|(kind, n)| (format!("{{kind=\"{}\"}}", escaped(kind)), n.as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    family("nl2sql_requests_failed_total", "counter", "Requests that failed, by the kind of error.", &failures);
    family("nl2sql_statement_cache_hits_total", "counter", "Completions given from the statement cache.", &plain("cache_hits"));
    family("nl2sql_prompt_tokens_total", "counter", "Prompt tokens of completed requests.", &plain("prompt_tokens"));
    family("nl2sql_cached_prompt_tokens_total", "counter", "Prompt tokens the prefix cache saved computing.", &plain("cached_prompt_tokens"));
    family("nl2sql_generated_tokens_total", "counter", "Tokens generated.", &plain("generated_tokens"));
    family("nl2sql_forward_passes_total", "counter", "Forward passes of the model (one per token step, whatever the batch).", &plain("forward_passes"));
    family("nl2sql_pass_sequences_total", "counter", "Sequences in those passes, summed: divided by the passes, the mean batch.", &plain("pass_sequences"));
    for (key, name, help) in [
        ("generation_ms", "nl2sql_recent_generation_seconds", "Time in the model per completion, over the last 1,000 computed."),
        ("queue_wait_ms", "nl2sql_recent_queue_wait_seconds", "Time a request waited for the worker, over the last 1,000."),
    ] {
        let samples: Vec<(String, f64)> = [("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")]
            .iter()
            .map(|(quantile, field)| (format!("{{quantile=\"{quantile}\"}}"), stats[key][*field].as_f64().unwrap_or(0.0) / 1000.0))
            .collect();
        family(name, "gauge", help, &samples);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_statistic_becomes_a_sample_with_its_family() {
        let stats = json!({
            "pid": 42, "model_path": "/m/q\"wen.gguf", "device": "cpu", "threads": 2, "load_seconds": 5.5,
            "completed": 7, "cache_hits": 2, "cancelled": 1, "failed": { "PromptTooLong": 3 },
            "prompt_tokens": 900, "cached_prompt_tokens": 600, "generated_tokens": 120,
            "generation_ms": { "count": 5, "p50": 1500.0, "p95": 4000.0, "p99": 4000.0 },
            "queue_wait_ms": { "count": 7, "p50": 2.0, "p95": 900.0, "p99": 1200.0 },
            "forward_passes": 40, "pass_sequences": 70,
        });
        let text = render(&stats);
        for line in [
            "# TYPE nl2sql_requests_total counter",
            "nl2sql_requests_total{outcome=\"completed\"} 7",
            "nl2sql_requests_total{outcome=\"cancelled\"} 1",
            "nl2sql_requests_failed_total{kind=\"PromptTooLong\"} 3",
            "nl2sql_statement_cache_hits_total 2",
            "nl2sql_generated_tokens_total 120",
            "nl2sql_pass_sequences_total 70",
            "nl2sql_recent_generation_seconds{quantile=\"0.5\"} 1.5",
            "nl2sql_recent_queue_wait_seconds{quantile=\"0.99\"} 1.2",
            "nl2sql_worker_info{pid=\"42\",model_path=\"/m/q\\\"wen.gguf\",device=\"cpu\",threads=\"2\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
