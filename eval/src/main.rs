//! nl2sql-eval: accuracy of nl2sql on Defog's sql-eval questions, scored as sql-eval scores.
//!
//!   nl2sql-eval --database-url postgres://user@host:port/postgres [--questions eval/questions_dev.csv]
//!               [--run NAME] [--out eval/results] [--limit N] [--db NAME] [--category NAME] [--timeout-s 30]
//!               [--without-descriptions] [--without-joins] [--set nl2sql.setting=value ...]
//!
//! The role in the URL must be able to create databases. Results go to <out>/<run>.json and
//! <out>/<run>.md; running again with the same --run skips the questions already scored.

mod databases;
mod evaluate;
mod gold_constraint;
mod questions;
mod report;
mod scoring;

use indicatif::{ProgressBar, ProgressStyle};
use postgres::{Client, NoTls};
use report::Report;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: nl2sql-eval --database-url URL [--questions FILE] [--run NAME] [--out DIR] [--limit N] [--db NAME] [--category NAME] [--timeout-s N] [--without-descriptions] [--without-joins] [--set NAME=VALUE]...";

struct Args {
    database_url: String,
    questions: PathBuf,
    run: String,
    out: PathBuf,
    limit: Option<usize>,
    db: Option<String>,
    category: Option<String>,
    timeout_ms: u64,
    /// Run without defog-data's column descriptions (to measure what they are worth).
    without_descriptions: bool,
    /// Run without defog-data's joinable columns as virtual foreign keys (likewise).
    without_joins: bool,
    /// Settings for the session that asks (e.g. nl2sql.constrained_decoding=off).
    settings: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        database_url: String::new(),
        questions: manifest.join("questions_dev.csv"),
        run: "dev".into(),
        out: manifest.join("results"),
        limit: None,
        db: None,
        category: None,
        timeout_ms: 30_000,
        without_descriptions: false,
        without_joins: false,
        settings: Vec::new(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--database-url" => args.database_url = value()?,
            "--questions" => args.questions = value()?.into(),
            "--run" => args.run = value()?,
            "--out" => args.out = value()?.into(),
            "--limit" => args.limit = Some(value()?.parse().map_err(|_| "--limit takes a number")?),
            "--db" => args.db = Some(value()?),
            "--category" => args.category = Some(value()?),
            "--timeout-s" => args.timeout_ms = 1000 * value()?.parse::<u64>().map_err(|_| "--timeout-s takes a number")?,
            "--without-descriptions" => args.without_descriptions = true,
            "--without-joins" => args.without_joins = true,
            "--set" => {
                let setting = value()?;
                let (name, value) = setting.split_once('=').ok_or(format!("--set takes NAME=VALUE, not '{setting}'"))?;
                args.settings.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.database_url.is_empty() {
        return Err(format!("--database-url is required\n{USAGE}"));
    }
    Ok(args)
}

fn git_commit() -> Option<String> {
    let output = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut selected: Vec<_> = questions::load(&args.questions)?
        .into_iter()
        .filter(|(_, q)| args.db.as_ref().is_none_or(|db| &q.db_name == db))
        .filter(|(_, q)| args.category.as_ref().is_none_or(|c| &q.query_category == c))
        .collect();
    if let Some(limit) = args.limit {
        selected.truncate(limit);
    }
    if selected.is_empty() {
        return Err("no question matches the filters".into());
    }

    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let json_path = args.out.join(format!("{}.json", args.run));
    let mut report = report::load(&json_path).unwrap_or_else(|| Report { run: args.run.clone(), ..Default::default() });
    let done: BTreeSet<usize> = report.results.iter().map(|r| r.index).collect();
    let todo: Vec<_> = selected.into_iter().filter(|(i, _)| !done.contains(i)).collect();
    eprintln!("{} question(s) to evaluate, {} already in {}", todo.len(), done.len(), json_path.display());

    let dumps = databases::dumps()?;
    let progress = ProgressBar::new(todo.len() as u64);
    progress.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}, ETA {eta_precise}] {msg}").unwrap());
    let mut connection: Option<(String, Client)> = None;
    for (index, question) in &todo {
        if connection.as_ref().is_none_or(|(db, _)| db != &question.db_name) {
            let documentation = databases::Documentation { descriptions: !args.without_descriptions, joins: !args.without_joins };
            databases::ensure(&args.database_url, &question.db_name, &dumps, documentation)?;
            let url = databases::url_for(&args.database_url, &question.db_name);
            let mut client = Client::connect(&url, NoTls).map_err(|e| format!("cannot connect to {url}: {e}"))?;
            for (name, value) in &args.settings {
                client
                    .execute("SELECT pg_catalog.set_config($1, $2, false)", &[name, value])
                    .map_err(|e| format!("cannot set {name} = {value}: {e}"))?;
            }
            if report.setup.is_null() {
                let status: serde_json::Value = client.query_one("SELECT nl2sql_status()", &[]).map_err(|e| e.to_string())?.get(0);
                report.setup = json!({
                    "backend": status["backend"], "endpoint": status["endpoint"],
                    "model": status["model_path"], "threads": status["threads"], "max_new_tokens": status["max_new_tokens"],
                    "repair_attempts": status["repair_attempts"], "candidates": status["candidates"], "rescue_candidates": status["rescue_candidates"], "constrained_decoding": status["constrained_decoding"],
                    "schema_budget_tokens": status["schema_budget_tokens"], "mention_values": status["mention_values"],
                    "exact_arithmetic": status["exact_arithmetic"],
                    "examples": status["examples"],
                    "git_commit": git_commit(),
                    "questions": args.questions.file_name().map(|f| f.to_string_lossy().into_owned()),
                    "column_descriptions": !args.without_descriptions,
                    "virtual_foreign_keys": !args.without_joins,
                });
            }
            connection = Some((question.db_name.clone(), client));
        }
        let (_, client) = connection.as_mut().expect("connected above");
        progress.set_message(format!("{} #{index}", question.db_name));
        let result = evaluate::evaluate(client, *index, question, args.timeout_ms);
        report.results.push(result);
        report.results.sort_by_key(|r| r.index);
        report.totals = report::totals(&report.results);
        report::save(&json_path, &report)?;
        progress.inc(1);
    }
    progress.finish_and_clear();

    let summary = report::markdown(&report);
    let md_path = args.out.join(format!("{}.md", args.run));
    std::fs::write(&md_path, &summary).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    println!("{summary}");
    println!("results: {} and {}", json_path.display(), md_path.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("nl2sql-eval: {message}");
            ExitCode::FAILURE
        }
    }
}
