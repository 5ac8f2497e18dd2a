//! Latency of nl2sql() on the demo questions, then of explain_rows() on those whose answer is one
//! row, and the memory of the backend that runs the model;
//! or, with --sessions, throughput: questions per minute with N sessions asking at once, and the
//! memory they and the model worker use; or, with --soak-minutes, errors and the worker's memory
//! under sessions that ask without pause; or, with
//! --cancel, how soon a question stops when cancelled in each of its phases, and when its client
//! hangs up. Prints numbers, asserts nothing.
//!
//!   nl2sql-bench --database-url postgres://nl2sql_web@127.0.0.1:5433/nl2sql [--rounds 3]
//!   nl2sql-bench --database-url URL --sessions 1,4,8 [--per-session 3] [--set nl2sql.backend=openai ...]
//!   nl2sql-bench --database-url URL --cancel [--set ...]
//!   nl2sql-bench --database-url URL --soak-minutes 10 --sessions 16 [--set ...]   (scripts/soak)
//!
//! The first call of a connection loads the model (reported apart); the percentiles are over the
//! calls after it, on the same connection, as a pooled web service sees them. In throughput mode
//! every session first asks one question untimed (a local backend loads its model then), then all
//! ask --per-session questions each, together; --set applies settings to every session (as the
//! connecting role may: the backend settings need a superuser).

use nl2sql_engine::worker::Percentiles;
use postgres::{Client, Config, NoTls};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

const QUESTIONS: [&str; 6] = [
    "What is the most bought pizza on Fridays?",
    "What was the total revenue in each month?",
    "Which 3 pizzas were sold most often?",
    "What is the average price of a large pizza?",
    "How many different pizza names are there?",
    "How many pizzas were sold between March 1 and March 15, 2015?",
];

/// A field of /proc/<pid>/<file> in MiB (status: VmRSS, VmHWM; smaps_rollup: Pss).
fn proc_mib(pid: i32, file: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix(field))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn connect(url: &str, settings: &[String]) -> Result<Client, Error> {
    let mut client = Client::connect(url, NoTls)?;
    apply(&mut client, settings)?;
    Ok(client)
}

/// The --set name=value settings, for the session.
fn apply(client: &mut Client, settings: &[String]) -> Result<(), Error> {
    for setting in settings {
        let (name, value) = name_and_value(setting)?;
        client.execute("SELECT set_config($1, $2, false)", &[&name, &value])?;
    }
    Ok(())
}

fn name_and_value(setting: &str) -> Result<(&str, &str), Error> {
    Ok(setting.split_once('=').ok_or_else(|| format!("--set {setting}: expected name=value"))?)
}

/// `sessions` connections ask `per_session` questions each, all at once; prints questions per
/// minute and the errors.
fn throughput(url: &str, settings: &[String], sessions: usize, per_session: usize) -> Result<(), Error> {
    let mut clients = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..sessions {
        let mut client = connect(url, settings)?;
        pids.push(client.query_one("SELECT pg_backend_pid()", &[])?.get::<_, i32>(0));
        clients.push(client);
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
    print_memory(&mut clients[0], &pids);
    Ok(())
}

/// The memory the sessions' backends and the model worker (if the server runs one) use, as PSS:
/// shared pages (shared_buffers, the mapped library) are counted once, split among the processes.
fn print_memory(client: &mut Client, backends: &[i32]) {
    let worker: Option<i32> = client.query_one("SELECT (nl2sql_stats()->>'pid')::int", &[]).ok().map(|row| row.get(0));
    let pss = |pid: i32| proc_mib(pid, "smaps_rollup", "Pss:");
    let Some(sessions) = backends.iter().map(|&pid| pss(pid)).sum::<Option<f64>>() else {
        return println!("  memory: not readable (run on the database host, as root or the server user)");
    };
    let model = worker.and_then(pss).unwrap_or(0.0);
    match worker {
        Some(pid) => println!("  memory (PSS): {} backends {sessions:.0} MiB + model worker {pid} {model:.0} MiB = {:.0} MiB", backends.len(), sessions + model),
        None => println!("  memory (PSS): {} backends, each with its own model: {sessions:.0} MiB", backends.len()),
    }
}

/// `sessions` connections ask the demo questions in turn, all at once, until `minutes` have
/// passed; every 30 s prints the answers and errors so far and the model worker's RSS, and at the
/// end the errors (there should be none) and how the RSS moved (it should stay flat).
fn soak(url: &str, settings: &[String], sessions: usize, minutes: f64) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut monitor = connect(url, settings)?;
    // Asked once, and again only when the process is gone: nl2sql_stats() waits its turn behind
    // every session's question, which would stretch the 30 s between samples.
    let worker_pid = |client: &mut Client| -> Option<i32> { client.query_one("SELECT (nl2sql_stats()->>'pid')::int", &[]).ok().map(|row| row.get(0)) };
    let mut pid = worker_pid(&mut monitor);
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let errors = Mutex::new(Vec::<String>::new());
    let mut rss_samples = Vec::new();
    std::thread::scope(|scope| -> Result<(), Error> {
        for session in 0..sessions {
            let (answered, errors) = (&answered, &errors);
            let mut client = connect(url, settings)?;
            scope.spawn(move || {
                let mut i = session;
                while Instant::now() < deadline {
                    let question = QUESTIONS[i % QUESTIONS.len()];
                    match client.query("SELECT * FROM nl2sql($1)", &[&question]) {
                        Ok(_) => drop(answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                        Err(e) => errors.lock().unwrap().push(format!("session {session}: {question}: {e}")),
                    }
                    i += 1;
                }
            });
        }
        let started = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(30).min(deadline.saturating_duration_since(Instant::now())));
            let mut rss = pid.and_then(|pid| proc_mib(pid, "status", "VmRSS:"));
            if rss.is_none() {
                pid = worker_pid(&mut monitor);
                rss = pid.and_then(|pid| proc_mib(pid, "status", "VmRSS:"));
            }
            println!(
                "{:5.0} s  answered {:5}  errors {:3}  model worker {} RSS {}",
                started.elapsed().as_secs_f64(),
                answered.load(std::sync::atomic::Ordering::Relaxed),
                errors.lock().unwrap().len(),
                pid.map_or("?".to_owned(), |p| p.to_string()),
                rss.map_or("?".to_owned(), |r| format!("{r:.0} MiB")),
            );
            rss_samples.extend(rss);
        }
        Ok(())
    })?;
    let errors = errors.into_inner().unwrap();
    for error in &errors {
        eprintln!("{error}");
    }
    let (first, last) = (rss_samples.first().copied().unwrap_or(0.0), rss_samples.last().copied().unwrap_or(0.0));
    let peak = rss_samples.iter().copied().fold(0.0, f64::max);
    println!(
        "soak: {sessions} sessions, {minutes} min: {} answered, {} errors; model worker RSS {first:.0} -> {last:.0} MiB (peak {peak:.0})",
        answered.into_inner(),
        errors.len()
    );
    Ok(())
}

/// A moment of a question: the start of a phase (as nl2sql_ask's progress NOTICEs name it), or
/// the `n`th token of the SQL or of the answer being written.
#[derive(Clone, Copy)]
enum Moment {
    /// The first question of a new connection, 1.5 s after its SQL is to be written: a local
    /// backend is loading the model or computing its first prompt.
    Loading,
    Phase(&'static str),
    SqlToken(usize),
    AnswerToken(usize),
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Moment::Loading => write!(f, "loading (1st question, +1.5 s)"),
            Moment::Phase("writing_sql") => write!(f, "prompting (writing_sql starts)"),
            Moment::Phase(phase) => write!(f, "{phase} starts"),
            Moment::SqlToken(n) => write!(f, "decoding (SQL token {n})"),
            Moment::AnswerToken(n) => write!(f, "narrating (answer token {n})"),
        }
    }
}

/// Cancels a question (what a client's cancel, pg_cancel_backend and statement_timeout all do:
/// a query-cancel interrupt) at each moment, and prints how long the call took to return after
/// it; then kills a psql mid-question and prints how long its backend lived on.
fn cancel_latency(url: &str, settings: &[String]) -> Result<(), Error> {
    let moments = [
        Moment::Loading,
        Moment::Phase("reading_schema"),
        Moment::Phase("writing_sql"),
        Moment::SqlToken(3),
        Moment::Phase("running"),
        Moment::Phase("explaining"),
        Moment::AnswerToken(3),
    ];
    for moment in moments {
        let (sender, notices) = mpsc::channel::<serde_json::Value>();
        let sender = Mutex::new(sender);
        let mut config: Config = url.parse()?;
        config.notice_callback(move |notice| {
            if let Some(detail) = notice.detail().and_then(|d| serde_json::from_str(d).ok()) {
                let _ = sender.lock().expect("not poisoned").send(detail);
            }
        });
        let mut client = config.connect(NoTls)?;
        apply(&mut client, settings)?;
        if !matches!(moment, Moment::Loading) {
            client.query("SELECT * FROM nl2sql($1)", &[&QUESTIONS[1]])?; // loads the model, untimed
        }
        let cancel = client.cancel_token();
        let asking = std::thread::spawn(move || {
            let outcome = client.query_one("SELECT nl2sql_ask($1, progress => true)", &[&QUESTIONS[0]]);
            (Instant::now(), outcome)
        });
        let (mut sql_tokens, mut answer_tokens) = (0, 0);
        let cancelled_at = loop {
            let Ok(detail) = notices.recv_timeout(Duration::from_secs(300)) else { break None };
            sql_tokens += detail.get("text").is_some() as usize;
            answer_tokens += detail.get("answer").is_some() as usize;
            let reached = match moment {
                Moment::Loading => detail["phase"] == "writing_sql",
                Moment::Phase(phase) => detail["phase"] == phase,
                Moment::SqlToken(n) => sql_tokens == n,
                Moment::AnswerToken(n) => answer_tokens == n,
            };
            if reached {
                if matches!(moment, Moment::Loading) {
                    std::thread::sleep(Duration::from_millis(1500)); // well into loading the model
                }
                let at = Instant::now();
                cancel.cancel_query(NoTls)?;
                break Some(at);
            }
        };
        let (returned, outcome) = asking.join().expect("no panic");
        let how = match &outcome {
            Err(e) if e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) => "cancelled".to_owned(),
            Err(e) => format!("failed otherwise: {e}"),
            Ok(_) => "it finished first".to_owned(),
        };
        match cancelled_at {
            Some(at) => println!("cancel at {:<34} returned after {:6.0} ms ({how})", moment.to_string(), returned.duration_since(at).as_secs_f64() * 1000.0),
            None => println!("cancel at {:<34} never reached ({how})", moment.to_string()),
        }
    }
    hang_up_latency(url, settings)
}

/// A psql asks a question and is killed while the model writes: how long its backend lives on.
fn hang_up_latency(url: &str, settings: &[String]) -> Result<(), Error> {
    use std::io::{BufRead, Write};
    let mut psql = std::process::Command::new("psql")
        .args(["-X", "-q", "-A", "-t", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("psql: {e}"))?;
    let mut input = psql.stdin.take().expect("piped");
    let mut output = std::io::BufReader::new(psql.stdout.take().expect("piped"));
    for setting in settings {
        let (name, value) = name_and_value(setting)?;
        writeln!(input, "SELECT set_config('{name}', '{value}', false) IS NULL;")?;
    }
    writeln!(input, "SELECT pg_backend_pid();")?;
    let mut line = String::new();
    while line.trim().parse::<i32>().is_err() {
        line.clear();
        if output.read_line(&mut line)? == 0 {
            return Err("psql ended before it gave its backend's pid".into());
        }
    }
    let pid: i32 = line.trim().parse()?;
    writeln!(input, "SELECT count(*) FROM nl2sql('{}');", QUESTIONS[1].replace('\'', "''"))?; // loads the model
    line.clear();
    output.read_line(&mut line)?;
    writeln!(input, "SELECT count(*) FROM nl2sql('{}');", QUESTIONS[0].replace('\'', "''"))?;
    std::thread::sleep(Duration::from_millis(1500)); // the prompt is cached: the model is writing by now
    let mut watcher = Client::connect(url, NoTls)?;
    let alive = |watcher: &mut Client| -> Result<bool, Error> { Ok(watcher.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", &[&pid])?.get::<_, i64>(0) == 1) };
    if !alive(&mut watcher)? {
        println!("hang-up: the question ended within 1.5 s; nothing to measure");
        return Ok(());
    }
    psql.kill()?;
    let killed = Instant::now();
    psql.wait()?;
    while alive(&mut watcher)? && killed.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("hang-up while decoding: backend {pid} ended {:.0} ms after its psql was killed", killed.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut url = std::env::var("DATABASE_URL").unwrap_or_default();
    let mut rounds = 3usize;
    let (mut sessions, mut per_session, mut settings) = (Vec::<usize>::new(), 3usize, Vec::<String>::new());
    let mut cancel = false;
    let mut soak_minutes: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--cancel" {
            cancel = true;
            continue;
        }
        match (flag.as_str(), args.next()) {
            ("--database-url", Some(v)) => url = v,
            ("--rounds", Some(v)) => rounds = v.parse()?,
            ("--sessions", Some(v)) => sessions = v.split(',').map(str::parse).collect::<Result<_, _>>()?,
            ("--per-session", Some(v)) => per_session = v.parse()?,
            ("--soak-minutes", Some(v)) => soak_minutes = Some(v.parse()?),
            ("--set", Some(v)) => settings.push(v),
            _ => return Err("usage: nl2sql-bench --database-url URL [--rounds N] [--sessions 1,4,8 [--per-session K]] [--cancel] [--soak-minutes M --sessions N] [--set name=value]...".into()),
        }
    }
    if cancel {
        return cancel_latency(&url, &settings);
    }
    if let Some(minutes) = soak_minutes {
        return soak(&url, &settings, sessions.first().copied().unwrap_or(16), minutes);
    }
    if !sessions.is_empty() {
        for n in sessions {
            throughput(&url, &settings, n, per_session)?;
        }
        return Ok(());
    }
    let mut client = connect(&url, &settings)?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    // The seconds nl2sql() took, and its rows as JSON where the answer is one row (what
    // explain_rows() is timed on below; aggregating a few rows costs nothing beside generation).
    let time = |client: &mut Client, question: &str| -> Result<(f64, Option<String>), Error> {
        let started = Instant::now();
        let result = client.query_one("SELECT jsonb_agg(r)::text, count(*) FROM nl2sql($1) r", &[&question])?;
        let (rows, count): (Option<String>, i64) = (result.get(0), result.get(1));
        Ok((started.elapsed().as_secs_f64(), rows.filter(|_| count == 1)))
    };

    let (first, _) = time(&mut client, QUESTIONS[0])?;
    println!("first call of the connection (loads the model into the backend, unless the server runs the model worker): {first:.1} s");
    let mut warm = Vec::new();
    let mut one_row = Vec::new();
    for round in 1..=rounds {
        for question in QUESTIONS {
            let (seconds, rows) = time(&mut client, question)?;
            println!("round {round}  {seconds:6.1} s  {question}");
            warm.push(seconds);
            if round == rounds {
                one_row.extend(rows.map(|rows| (question, rows)));
            }
        }
    }
    let latency = Percentiles::of(warm);
    println!("\nnl2sql() latency over {} warm calls: p50 {:.1} s, p95 {:.1} s", latency.count, latency.p50, latency.p95);
    // The answer in words: explain_rows() on each question's own result (of the last round),
    // where it is one row.
    let mut explained = Vec::new();
    for (question, rows) in one_row {
        let started = Instant::now();
        let answer: Option<String> = client.query_one("SELECT explain_rows($1, $2::text::jsonb)", &[&question, &rows])?.get(0);
        let seconds = started.elapsed().as_secs_f64();
        println!("explain_rows {seconds:6.1} s  {question} -> {}", answer.unwrap_or_default());
        explained.push(seconds);
    }
    let explain = Percentiles::of(explained);
    println!("explain_rows() latency over {} one-row answers: p50 {:.1} s, p95 {:.1} s", explain.count, explain.p50, explain.p95);
    match (proc_mib(pid, "status", "VmRSS:"), proc_mib(pid, "status", "VmHWM:")) {
        (Some(rss), Some(peak)) => println!("backend {pid}: RSS {rss:.0} MiB, peak {peak:.0} MiB"),
        _ => println!("backend {pid}: memory not readable (run on the database host, as root or the server user)"),
    }
    Ok(())
}
