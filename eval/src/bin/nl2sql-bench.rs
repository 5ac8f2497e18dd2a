//! Latency of nl2sql() on the demo questions, and the memory of the backend that runs the model.
//! Prints numbers, asserts nothing.
//!
//!   nl2sql-bench --database-url postgres://nl2sql_web@127.0.0.1:5433/nl2sql [--rounds 3]
//!
//! The first call of a connection loads the model (reported apart); the percentiles are over the
//! calls after it, on the same connection, as a pooled web service sees them.

use postgres::{Client, NoTls};
use std::time::Instant;

const QUESTIONS: [&str; 6] = [
    "What is the most bought pizza on Fridays?",
    "What was the total revenue in each month?",
    "Which 3 pizzas were sold most often?",
    "What is the average price of a large pizza?",
    "How many different pizza names are there?",
    "How many pizzas were sold between March 1 and March 15, 2015?",
];

fn memory_mib(pid: i32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix(field))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[(((p / 100.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = std::env::var("DATABASE_URL").unwrap_or_default();
    let mut rounds = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--database-url", Some(v)) => url = v,
            ("--rounds", Some(v)) => rounds = v.parse()?,
            _ => return Err("usage: nl2sql-bench --database-url URL [--rounds N]".into()),
        }
    }
    let mut client = Client::connect(&url, NoTls)?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let time = |client: &mut Client, question: &str| -> Result<f64, Box<dyn std::error::Error>> {
        let started = Instant::now();
        client.query("SELECT * FROM nl2sql($1)", &[&question])?;
        Ok(started.elapsed().as_secs_f64())
    };

    let first = time(&mut client, QUESTIONS[0])?;
    println!("first call (loads the model into the backend): {first:.1} s");
    let mut warm = Vec::new();
    for round in 1..=rounds {
        for question in QUESTIONS {
            let seconds = time(&mut client, question)?;
            println!("round {round}  {seconds:6.1} s  {question}");
            warm.push(seconds);
        }
    }
    warm.sort_by(f64::total_cmp);
    println!("\nnl2sql() latency over {} warm calls: p50 {:.1} s, p95 {:.1} s", warm.len(), percentile(&warm, 50.0), percentile(&warm, 95.0));
    match (memory_mib(pid, "VmRSS:"), memory_mib(pid, "VmHWM:")) {
        (Some(rss), Some(peak)) => println!("backend {pid}: RSS {rss:.0} MiB, peak {peak:.0} MiB"),
        _ => println!("backend {pid}: memory not readable (run on the database host, as root or the server user)"),
    }
    Ok(())
}
