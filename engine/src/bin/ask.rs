//! Developer command line: generate SQL for questions against a schema file.
//!
//!   cargo run -p nl2sql-engine --release --bin ask -- --schema schema.sql "question" ["question" ...]
//!
//! Several questions show the prefix cache at work: the second one reuses the schema's tokens.

use nl2sql_engine::paths::default_model_path;
use nl2sql_engine::{converse, Answer, Engine, Failure, Question, Quiet, RepairPolicy, Schema, Settings, SqlRequest, Verdict};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ask --schema FILE [--model GGUF] [--threads N] [--max-new-tokens N] [--device cpu|cuda] [--instructions TEXT] [--unconstrained] [--show-prompt] QUESTION...";

struct Args {
    schema: PathBuf,
    model: PathBuf,
    settings: Settings,
    instructions: Option<String>,
    show_prompt: bool,
    constrained: bool,
    questions: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut schema, mut model, mut instructions, mut show_prompt, mut constrained) = (None, default_model_path(), None, false, true);
    let mut settings = Settings::default();
    let mut questions = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        let number = |flag: &str, v: String| v.parse::<usize>().map_err(|_| format!("{flag} takes a whole number, not '{v}'"));
        match arg.as_str() {
            "--schema" => schema = Some(PathBuf::from(value("--schema")?)),
            "--model" => model = PathBuf::from(value("--model")?),
            "--threads" => settings.threads = number("--threads", value("--threads")?)?,
            "--max-new-tokens" => settings.max_new_tokens = number("--max-new-tokens", value("--max-new-tokens")?)?,
            "--device" => settings.device = value("--device")?.parse().map_err(|e| format!("{e}"))?,
            "--instructions" => instructions = Some(value("--instructions")?),
            "--show-prompt" => show_prompt = true,
            "--unconstrained" => constrained = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}\n{USAGE}")),
            _ => questions.push(arg),
        }
    }
    let schema = schema.ok_or(format!("--schema is required\n{USAGE}"))?;
    if questions.is_empty() {
        return Err(format!("give at least one question\n{USAGE}"));
    }
    Ok(Args { schema, model, settings, instructions, show_prompt, constrained, questions })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let schema = std::fs::read_to_string(&args.schema)
        .map_err(|e| format!("cannot read the schema file {}: {e}", args.schema.display()))?;
    let schema = Schema::from_ddl(&schema).map_err(|e| format!("{}: {e}", args.schema.display()))?;
    let mut engine = Engine::load(&args.model, args.settings).map_err(|e| e.to_string())?;
    eprintln!("loaded {} in {:.1} s", args.model.display(), engine.load_time().as_secs_f64());
    for text in &args.questions {
        let question = Question::parse(text).map_err(|e| e.to_string())?;
        let mut request = SqlRequest::new(&schema, &question);
        request.instructions = args.instructions.as_deref();
        request.constrained = args.constrained;
        if args.show_prompt {
            println!("{}", request.prompt(None).text());
        }
        // No database here to judge the SQL: the first statement found is the answer.
        let accept = |_: &str| Verdict::<(), String>::Accept(());
        let answer: Answer<()> = match converse(&mut engine, &request, RepairPolicy::repairs(0), &mut Quiet, accept, |_, _| true) {
            Ok(answer) => answer,
            Err(Failure::Engine(e)) => return Err(e.to_string()),
            Err(other) => return Err(format!("no SQL for {text:?}: {other:?}")),
        };
        println!("-- {text}\n{};", answer.sql);
        eprintln!("   generated in {:.2} s", answer.generation.as_secs_f64());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ask: {message}");
            ExitCode::FAILURE
        }
    }
}
