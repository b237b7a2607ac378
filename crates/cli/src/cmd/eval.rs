//! `rzero eval`: accuracy of a model on math benchmarks with known answers, and on the
//! general-domain sets the paper reports (MMLU-Pro, BBEH, SuperGPQA from a file).
//!
//! Math: the Solver prompt (system "Please reason step by step, and put your final answer
//! within \boxed{}." + the question as the user message) is rendered with the model's chat
//! template, or as a plain prompt for base models without one. Greedy pass@1 always; with
//! `--samples k` also mean@k and maj@k. General-domain sets: R-Zero's prompts and answer
//! rules (`grade::mmlu_pro`, `grade::bbeh`), greedy, micro-averaged and per-category
//! accuracy; `--limit` takes a seeded subset stratified by category. Output folder: `responses.jsonl` (every response with
//! its extracted answer and verdict; append-only, so a killed eval resumes where it
//! stopped), `options.json`, and `results.json`. The table is printed on stdout.
//!
//! `--answer first-boxed` reads the first `\boxed{}` as the reference's `evaluation/` does
//! (default `last-boxed`, what training reads). `--judge-url` adds the reference's LLM re-check
//! of wrong answers (`results_recheck.py`): `pass@1+judge` beside `pass@1`, replies journaled
//! in `judge.jsonl`.
//!
//! [`load_generator`] (`rzero::evaluate::SamplerGenerator`, the `eval::Generator` on rzero's
//! engine) is shared with `rzero audit`.

use std::path::PathBuf;

use anyhow::Context;
use engine::EngineConfig;
use rzero::evaluate::SamplerGenerator;
pub use rzero::evaluate::{describe_force, make_judge};

/// Arguments of `rzero eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: HF folder, .gguf file, hub id in the local cache, or `smollm2`.
    #[arg(long)]
    pub model: String,
    /// Comma-separated benchmarks: math500, gsm8k, amc23, minerva, olympiadbench, aime2024,
    /// aime2025, mmlu_pro, bbeh, supergpqa (needs --data), `NAME=PATH` for a general-domain
    /// set's file, or paths of JSONL files with `question` and `answer`.
    #[arg(
        long,
        default_value = "math500,gsm8k,amc23,minerva,olympiadbench,aime2024,aime2025"
    )]
    pub bench: String,
    /// At most N problems per benchmark: the first N for math; for mmlu_pro, bbeh and
    /// supergpqa a seeded subset stratified by category (every category covered when N is at
    /// least the number of categories).
    #[arg(long)]
    pub limit: Option<usize>,
    /// At most N problems per category (general-domain sets; seeded).
    #[arg(long)]
    pub per_category: Option<usize>,
    /// Multiple choice: count a response without a letter as wrong instead of guessing a
    /// (seeded) random letter as the reference does. Guesses are reported either way.
    #[arg(long)]
    pub no_guess: bool,
    /// The SuperGPQA JSONL file (MMLU-Pro's format: `question`, `options`, `answer_letter`
    /// or `answer`, `discipline`), used where --bench names `supergpqa`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Sampled responses per problem for mean@k and maj@k (0 = greedy pass@1 only).
    #[arg(long, default_value_t = 0)]
    pub samples: usize,
    /// Temperature of the sampled responses (pass@1 is always greedy).
    #[arg(long, default_value_t = 0.6)]
    pub temperature: f32,
    /// Top-p of the sampled responses.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Top-k of the sampled responses (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Most new tokens per response.
    #[arg(long, default_value_t = 2048)]
    pub max_new_tokens: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (resumed when it holds an earlier run with the same options).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Problems per generation call (each call's responses are journaled at once).
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    /// How answers are taken from responses: boxed (as training), fallbacks, or free
    /// (free text: "the answer is", the last number or math, for base models).
    #[arg(long, default_value = "boxed")]
    pub extract: grade::ExtractMode,
    /// Which `\boxed{}` is the answer: `first-boxed` (the reference's evaluation) or
    /// `last-boxed` (what training reads).
    #[arg(long, default_value = "last-boxed")]
    pub answer: eval::AnswerRule,
    /// OpenAI-compatible server (e.g. https://api.openai.com) that re-checks the answers
    /// graded wrong with the reference's prompt; reported as pass@1+judge beside pass@1.
    #[arg(long)]
    pub judge_url: Option<String>,
    /// The judge model.
    #[arg(long, default_value = "gpt-4o")]
    pub judge_model: String,
    /// Environment variable holding the judge's API key ("" = send none).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub judge_api_key_env: String,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Engine limits shared by `rzero eval` and `rzero audit`.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// KV-cache budget, bytes (suffixes K, M, G accepted).
    #[arg(long, default_value = "4G", value_parser = super::generate::parse_bytes)]
    pub max_kv_bytes: usize,
    /// Most prompt tokens prefilled per step.
    #[arg(long, default_value_t = 512)]
    pub prefill_chunk: usize,
    #[command(flatten)]
    pub force: super::generate::ForceArgs,
}

/// The engine-backed `eval::Generator` (`rzero::evaluate::SamplerGenerator`) for `spec`
/// (resolved like every `--model`), reporting each generation call on `bar`.
pub fn load_generator(
    spec: &str,
    engine: &EngineArgs,
    bar: indicatif::ProgressBar,
) -> anyhow::Result<SamplerGenerator> {
    let path = super::resolve_model(spec)?;
    let cfg = EngineConfig {
        max_batch_size: engine.batch_size,
        max_kv_bytes: engine.max_kv_bytes,
        prefill_chunk: engine.prefill_chunk,
        eos_token_ids: Vec::new(),
    };
    let mut gen = SamplerGenerator::load(&path, cfg, engine.force.option()?)?;
    gen.set_progress(Box::new(move |done, total| {
        bar.set_message(format!("{done}/{total} samples in this batch"));
    }));
    Ok(gen)
}

/// `--bench` with `supergpqa` turned into `supergpqa=FILE` by `--data FILE`.
fn bench_list(bench: &str, data: Option<&std::path::Path>) -> anyhow::Result<String> {
    let mut used = false;
    let list: Vec<String> = bench
        .split(',')
        .map(|b| {
            let t = b.trim();
            if eval::Kind::general_from_name(t) == Some(eval::Kind::SuperGpqa) {
                if let Some(d) = data {
                    used = true;
                    return format!("supergpqa={}", d.display());
                }
            }
            t.to_string()
        })
        .collect();
    if data.is_some() && !used {
        anyhow::bail!("--data is the SuperGPQA file: add `supergpqa` to --bench");
    }
    Ok(list.join(","))
}

/// A progress bar over eval/audit work units.
pub fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {prefix} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// Default output folder: `eval-<last path component of the model>`.
pub fn default_out(prefix: &str, model: &str) -> PathBuf {
    let base = std::path::Path::new(model.trim_end_matches('/'))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("{prefix}-{safe}"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let list = bench_list(&args.bench, args.data.as_deref())?;
    let benches = eval::Benchmark::load_list(&list)?;
    anyhow::ensure!(!benches.is_empty(), "no benchmark given");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out("eval", &args.model));
    let opts = eval::EvalOptions {
        model: args.model.clone(),
        limit: args.limit,
        per_category: args.per_category,
        guess: !args.no_guess,
        samples: args.samples,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: (args.top_k > 0).then_some(args.top_k),
        max_new_tokens: args.max_new_tokens,
        batch_size: args.chunk,
        seed: args.seed,
        extract: args.extract,
        answer: args.answer,
        force_answer: describe_force(&args.engine.force.option()?),
    };
    let mut judge = match &args.judge_url {
        Some(url) => make_judge(url, &args.judge_model, &args.judge_api_key_env)?,
        None => None,
    };
    let bar = progress_bar();
    let mut gen = load_generator(&args.model, &args.engine, bar.clone())?;
    let judge_ref = judge.as_mut().map(|j| j as &mut dyn eval::Judge);
    let results = eval::run_eval_judged(&mut gen, judge_ref, &benches, &opts, &out, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_prefix(format!("{} {}", p.bench, p.mode));
    })
    .with_context(|| format!("evaluating into {}", out.display()))?;
    bar.finish_and_clear();
    print!("{}", eval::format_table(&results));
    println!("responses: {}", out.join("responses.jsonl").display());
    println!("results:   {}", out.join("results.json").display());
    Ok(())
}
