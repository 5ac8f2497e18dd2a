//! Latency of nl2sql() on the demo questions, and the memory of the backend that runs the model;
//! or, with --sessions, throughput: questions per minute with N sessions asking at once.
//! Prints numbers, asserts nothing.
//!
//!   nl2sql-bench --database-url postgres://nl2sql_web@127.0.0.1:5433/nl2sql [--rounds 3]
//!   nl2sql-bench --database-url URL --sessions 1,4,8 [--per-session 3] [--set nl2sql.backend=openai ...]
//!
//! The first call of a connection loads the model (reported apart); the percentiles are over the
//! calls after it, on the same connection, as a pooled web service sees them. In throughput mode
//! every session first asks one question untimed (a local backend loads its model then), then all
//! ask --per-session questions each, together; --set applies settings to every session (as the
//! connecting role may: the backend settings need a superuser).

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

type Error = Box<dyn std::error::Error + Send + Sync>;

fn connect(url: &str, settings: &[String]) -> Result<Client, Error> {
    let mut client = Client::connect(url, NoTls)?;
    for setting in settings {
        let (name, value) = setting.split_once('=').ok_or_else(|| format!("--set {setting}: expected name=value"))?;
        client.execute("SELECT set_config($1, $2, false)", &[&name, &value])?;
    }
    Ok(client)
}

/// `sessions` connections ask `per_session` questions each, all at once; prints questions per
/// minute and the errors.
fn throughput(url: &str, settings: &[String], sessions: usize, per_session: usize) -> Result<(), Error> {
    let mut clients = Vec::new();
    for _ in 0..sessions {
        clients.push(connect(url, settings)?);
    }
    let warm = std::thread::scope(|scope| {
        let handles: Vec<_> = clients.iter_mut().map(|c| scope.spawn(move || c.query("SELECT * FROM nl2sql($1)", &[&QUESTIONS[0]]).map(drop))).collect();
        handles.into_iter().map(|h| h.join().expect("no panic")).collect::<Result<Vec<_>, _>>()
    });
    warm?;
    let started = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .enumerate()
            .map(|(session, client)| {
                scope.spawn(move || {
                    let (mut answered, mut failed) = (0, 0);
                    for i in 0..per_session {
                        let question = QUESTIONS[(session + i) % QUESTIONS.len()];
                        match client.query("SELECT * FROM nl2sql($1)", &[&question]) {
                            Ok(_) => answered += 1,
                            Err(e) => {
                                failed += 1;
                                eprintln!("session {session}: {question}: {e}");
                            }
                        }
                    }
                    (answered, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("no panic")).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let answered: usize = results.iter().map(|r| r.0).sum();
    let failed: usize = results.iter().map(|r| r.1).sum();
    println!(
        "{sessions} session(s) x {per_session} questions: {:.1} questions/minute ({answered} answered, {failed} failed, {seconds:.0} s)",
        (answered + failed) as f64 * 60.0 / seconds
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut url = std::env::var("DATABASE_URL").unwrap_or_default();
    let mut rounds = 3usize;
    let (mut sessions, mut per_session, mut settings) = (Vec::<usize>::new(), 3usize, Vec::<String>::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--database-url", Some(v)) => url = v,
            ("--rounds", Some(v)) => rounds = v.parse()?,
            ("--sessions", Some(v)) => sessions = v.split(',').map(str::parse).collect::<Result<_, _>>()?,
            ("--per-session", Some(v)) => per_session = v.parse()?,
            ("--set", Some(v)) => settings.push(v),
            _ => return Err("usage: nl2sql-bench --database-url URL [--rounds N] [--sessions 1,4,8 [--per-session K]] [--set name=value]...".into()),
        }
    }
    if !sessions.is_empty() {
        for n in sessions {
            throughput(&url, &settings, n, per_session)?;
        }
        return Ok(());
    }
    let mut client = connect(&url, &settings)?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let time = |client: &mut Client, question: &str| -> Result<f64, Error> {
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
