//! Engine benchmark: prints numbers, asserts nothing.
//!
//!   cargo run -p nl2sql-engine --release --bin engine-bench [-- --threads N] [--draft-tokens N]
//!
//! For each of ten fixed questions on a sales schema: time to first token with an empty prefix
//! cache (cold), time to first token when the schema is already cached (after another question),
//! and the whole reply twice with the schema cached: without and with the schema constraint, for
//! decode speed with and without the mask. Then what one forward pass over k tokens costs against
//! a pass over one (k = 2, 4, 8): whether decoding k requests together would pay on this device.
//! Also model load time and peak resident memory.

use nl2sql_engine::paths::default_model_path;
use nl2sql_engine::settings::MAX_NEW_TOKENS;
use nl2sql_engine::{Completion, Engine, Question, Quiet, Schema, SchemaConstraint, Settings, SqlModel, SqlRequest};
use std::time::Instant;

const SCHEMA: &str = include_str!("../../examples/sales.sql");
const QUESTIONS: [&str; 10] = [
    "How many customers signed up in 2024?",
    "What is the total revenue per product category?",
    "Which 5 customers spent the most money?",
    "What is the average order value by country?",
    "How many orders were cancelled each month of 2024?",
    "Which products have never been ordered?",
    "What share of orders were returned?",
    "What is the best-selling product by quantity in Germany?",
    "How many distinct customers ordered games last month?",
    "List the daily revenue for the last 7 days.",
];

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = Settings::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--threads", Some(n)) => settings.threads = n.parse()?,
            ("--draft-tokens", Some(n)) => settings.draft_tokens = n.parse()?,
            _ => return Err("usage: engine-bench [--threads N] [--draft-tokens N]".into()),
        }
    }
    let schema = Schema::from_ddl(SCHEMA)?;
    let constraint = SchemaConstraint::new(&schema);
    let path = default_model_path();
    let mut engine = Engine::load(&path, settings.clone())?;
    println!("model: {}", path.display());
    println!("threads: {}, draft tokens: {}", settings.threads, settings.draft_tokens);
    println!("load time: {:.2} s", engine.load_time().as_secs_f64());

    let generate = |engine: &mut Engine, question: &str, max_new_tokens: usize, constrained: bool| -> Result<Completion, Box<dyn std::error::Error>> {
        engine.set_max_new_tokens(max_new_tokens)?;
        let question = Question::parse(question)?;
        let prompt = SqlRequest::new(&schema, &question).prompt(None);
        Ok(engine.complete(&prompt, constrained.then_some(&constraint), &mut Quiet)?)
    };
    // candle repacks quantized weights lazily on first use: keep that out of the numbers.
    let started = Instant::now();
    generate(&mut engine, "warm up", MAX_NEW_TOKENS.min, false)?;
    println!("warm-up (first prompt ever): {:.2} s", started.elapsed().as_secs_f64());

    println!(
        "\n{:<60} {:>7} {:>9} {:>9} {:>8} {:>7} {:>9} {:>9}",
        "question", "prompt", "cold ttft", "warm ttft", "speedup", "tokens", "decode/s", "masked/s"
    );
    let (mut cold_ttft, mut warm_ttft, mut prefill_rate, mut decode_rate, mut masked_rate) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut generated, mut drafted) = (0, 0);
    for (i, question) in QUESTIONS.iter().enumerate() {
        engine.clear_prefix_cache();
        let cold = generate(&mut engine, question, MAX_NEW_TOKENS.min, false)?;
        engine.clear_prefix_cache();
        generate(&mut engine, QUESTIONS[(i + 1) % QUESTIONS.len()], MAX_NEW_TOKENS.min, false)?;
        let warm = generate(&mut engine, question, MAX_NEW_TOKENS.default, false)?;
        let masked = generate(&mut engine, question, MAX_NEW_TOKENS.default, true)?;
        let (cold_s, warm_s) = (cold.timings.prefill.as_secs_f64(), warm.timings.prefill.as_secs_f64());
        println!(
            "{:<60} {:>7} {:>8.2}s {:>8.2}s {:>7.1}x {:>7} {:>9.1} {:>9.1}",
            question,
            cold.prompt_tokens,
            cold_s,
            warm_s,
            cold_s / warm_s,
            warm.generated_tokens,
            warm.decode_tokens_per_second(),
            masked.decode_tokens_per_second()
        );
        cold_ttft.push(cold_s);
        warm_ttft.push(warm_s);
        prefill_rate.push(cold.prefill_tokens_per_second());
        decode_rate.push(warm.decode_tokens_per_second());
        masked_rate.push(masked.decode_tokens_per_second());
        for reply in [&warm, &masked] {
            generated += reply.generated_tokens;
            drafted += reply.drafted_tokens;
        }
    }
    println!("\nmedian prompt speed (cold): {:.1} tokens/s", median(prefill_rate));
    let (decode, masked) = (median(decode_rate), median(masked_rate));
    println!("median decode speed: {decode:.1} tokens/s without the schema constraint, {masked:.1} with it ({:+.1}%)", (masked / decode - 1.0) * 100.0);
    println!("tokens guessed from the prompt and kept: {drafted} of {generated} ({:.1}%)", 100.0 * drafted as f64 / generated.max(1) as f64);
    let (cold, warm) = (median(cold_ttft), median(warm_ttft));
    println!("median time to first token: cold {cold:.2} s, schema cached {warm:.2} s ({:.1}x faster)", cold / warm);
    // Whether batching requests would pay here: one pass over k tokens against one over a single
    // token, after the first question's prompt.
    let question = Question::parse(QUESTIONS[0])?;
    let context = engine.prompt_tokens(&SqlRequest::new(&schema, &question).prompt(None))?;
    let single = engine.pass_seconds(&context, 1, 7)?;
    print!("one pass over k tokens after {} tokens of context (median of 7):", context.len());
    for k in [1, 2, 4, 8] {
        let seconds = if k == 1 { single } else { engine.pass_seconds(&context, k, 7)? };
        print!(" k={k}: {:.0} ms ({:.2}x, {:.1}x the tokens per second)", seconds * 1000.0, seconds / single, k as f64 * single / seconds);
    }
    println!();
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    Ok(())
}
