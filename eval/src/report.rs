//! Results on disk: eval/results/<run>.json (per question and totals; re-read to resume) and a
//! markdown summary next to it.

use crate::evaluate::{QuestionResult, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub questions: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Share of questions whose generated SQL failed to run (or was not produced).
    pub failed_to_run: f64,
    pub p50_latency_ms: f64,
    pub p95_latency_ms: f64,
    pub by_category: BTreeMap<String, CategoryTotals>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CategoryTotals {
    pub questions: usize,
    pub correct: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    /// Model, settings, git commit, questions file.
    pub setup: Value,
    pub totals: Totals,
    pub results: Vec<QuestionResult>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

pub fn totals(results: &[QuestionResult]) -> Totals {
    // Questions whose gold SQL does not run cannot be scored and are left out of the totals.
    let scored: Vec<&QuestionResult> = results.iter().filter(|r| r.verdict != Verdict::GoldFailed).collect();
    let correct = scored.iter().filter(|r| r.verdict == Verdict::Correct).count();
    let failed = scored.iter().filter(|r| matches!(r.verdict, Verdict::ExecutionFailed | Verdict::GenerationFailed)).count();
    let mut latencies: Vec<f64> = scored.iter().map(|r| r.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let mut by_category: BTreeMap<String, CategoryTotals> = BTreeMap::new();
    for r in &scored {
        let c = by_category.entry(r.category.clone()).or_default();
        c.questions += 1;
        c.correct += usize::from(r.verdict == Verdict::Correct);
    }
    for c in by_category.values_mut() {
        c.accuracy = share(c.correct, c.questions);
    }
    Totals {
        questions: scored.len(),
        correct,
        accuracy: share(correct, scored.len()),
        failed_to_run: share(failed, scored.len()),
        p50_latency_ms: percentile(&latencies, 50.0),
        p95_latency_ms: percentile(&latencies, 95.0),
        by_category,
    }
}

pub fn load(path: &Path) -> Option<Report> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub fn save(path: &Path, report: &Report) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let temporary = path.with_extension("json.partial");
    std::fs::write(&temporary, json).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn markdown(report: &Report) -> String {
    let t = &report.totals;
    let mut out = format!(
        "# nl2sql on sql-eval: run `{}`\n\n{}\n\n| | questions | correct | accuracy |\n|---|---:|---:|---:|\n| **overall** | {} | {} | **{:.1}%** |\n",
        report.run,
        serde_json::to_string(&report.setup).unwrap_or_default(),
        t.questions,
        t.correct,
        100.0 * t.accuracy
    );
    for (name, c) in &t.by_category {
        out.push_str(&format!("| {name} | {} | {} | {:.1}% |\n", c.questions, c.correct, 100.0 * c.accuracy));
    }
    out.push_str(&format!(
        "\nGenerated SQL that failed to run (or no SQL): {:.1}%. Latency of nl2sql_sql per question: p50 {:.1} s, p95 {:.1} s.\n",
        100.0 * t.failed_to_run,
        t.p50_latency_ms / 1000.0,
        t.p95_latency_ms / 1000.0
    ));
    let unscored = report.results.iter().filter(|r| r.verdict == Verdict::GoldFailed).count();
    if unscored > 0 {
        out.push_str(&format!("\n{unscored} question(s) left out: their gold SQL did not run here.\n"));
    }
    out
}
