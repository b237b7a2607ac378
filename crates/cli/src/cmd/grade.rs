//! `rzero grade`: JSONL in, JSONL out.
//!
//! `--rules math` (default): each line has `gold` (or `answer`) and either `pred` (a bare
//! answer) or `response` (a full solution whose answer is extracted with `--extract`: `boxed`
//! (default), `fallbacks`, or `free` for free text); the output is the
//! input object plus `"equal": bool`, and `"extracted"` (string or null) for `response`.
//!
//! `--rules mmlu_pro` / `bbeh`: each line has `response` and `answer` (or `gold`), graded
//! with R-Zero's general-domain rules (`grade::mmlu_pro`, `grade::bbeh`). The output adds
//! `equal`; for `mmlu_pro` also `prediction` (the extracted letter, or null when none is
//! found, before any guess) and, with `--guess`, `guess` (the seeded letter used instead);
//! for `bbeh` also `extracted` (the last `\boxed{}` or `Final Answer:` text, or null).

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::io::{read_jsonl, JsonlOut};

/// Arguments of `rzero grade`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input JSONL (stdin when absent or `-`).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output JSONL (stdout when absent or `-`), written atomically.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also accept "the answer is X", "Final Answer:" and choice letters when a
    /// response has no \boxed{} (the same as `--extract fallbacks`).
    #[arg(long, conflicts_with = "extract")]
    pub fallbacks: bool,
    /// How answers are taken from responses: boxed (the last \boxed{}, as the training
    /// reward), fallbacks, or free (free text: "the answer is", "=" chains, the last
    /// number or math of the response; units and currency dropped).
    #[arg(long)]
    pub extract: Option<grade::ExtractMode>,
    /// Answer rules: `math` (equivalence of final answers), `mmlu_pro` (option letter, as
    /// R-Zero's eval_mmlupro.py / eval_supergpqa.py) or `bbeh` (BBEH's fuzzy match).
    #[arg(long, default_value = "math", value_parser = ["math", "mmlu_pro", "bbeh"])]
    pub rules: String,
    /// mmlu_pro: guess a random letter (seeded by --seed and the line number) where none is
    /// found, as the reference does; off = counted wrong.
    #[arg(long)]
    pub guess: bool,
    /// Seed of --guess.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The reference answer of a record: `answer`, else `gold` (`gold` first for math).
fn reference(
    row: &serde_json::Map<String, Value>,
    keys: &[&str],
    name: &str,
    i: usize,
) -> anyhow::Result<String> {
    for k in keys {
        match row.get(*k) {
            Some(Value::String(s)) => return Ok(s.clone()),
            Some(Value::Number(n)) => return Ok(n.to_string()),
            Some(Value::Bool(b)) => return Ok(b.to_string()),
            _ => {}
        }
    }
    bail!(
        "{name}: record {}: field `{}` is missing or not a string",
        i + 1,
        keys.join("` or `")
    )
}

/// `--rules mmlu_pro|bbeh`.
fn run_general(
    args: &Args,
    name: &str,
    rows: Vec<serde_json::Map<String, Value>>,
) -> anyhow::Result<()> {
    let mut out = JsonlOut::create(args.output.as_deref())?;
    let (mut equal, mut failed, mut guessed) = (0usize, 0usize, 0usize);
    let total = rows.len();
    for (i, mut row) in rows.into_iter().enumerate() {
        let answer = reference(&row, &["answer", "gold"], name, i)?;
        let response = match row.get("response") {
            Some(Value::String(s)) => s.clone(),
            _ => bail!(
                "{name}: record {}: field `response` is missing or not a string",
                i + 1
            ),
        };
        let eq = if args.rules == "bbeh" {
            let (sol, eq) = grade::bbeh::grade(&response, &answer);
            failed += sol.is_none() as usize;
            row.insert("extracted".into(), sol.map_or(Value::Null, Value::String));
            eq
        } else {
            let seed = args.guess.then(|| {
                args.seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64)
            });
            let v = grade::mmlu_pro::grade(&response, &answer, seed);
            failed += v.prediction.is_none() as usize;
            guessed += v.guess.is_some() as usize;
            row.insert(
                "prediction".into(),
                v.prediction
                    .map_or(Value::Null, |c| Value::String(c.to_string())),
            );
            if let Some(g) = v.guess {
                row.insert("guess".into(), Value::String(g.to_string()));
            }
            v.correct
        };
        equal += eq as usize;
        row.insert("equal".into(), Value::Bool(eq));
        out.write(&Value::Object(row))?;
    }
    out.finish()?;
    tracing::info!(
        total,
        equal,
        extraction_failures = failed,
        guessed,
        "graded"
    );
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let rows = read_jsonl(args.input.as_deref())?;
    if args.rules != "math" {
        return run_general(&args, &name, rows);
    }
    let mode = match (args.extract, args.fallbacks) {
        (Some(m), _) => m,
        (None, true) => grade::ExtractMode::Fallbacks,
        (None, false) => grade::ExtractMode::Boxed,
    };
    let mut out = JsonlOut::create(args.output.as_deref())?;
    let mut equal = 0usize;
    for (i, mut row) in rows.into_iter().enumerate() {
        let gold = reference(&row, &["gold", "answer"], &name, i)?;
        let pred = if let Some(r) = row.get("response") {
            let r = r.as_str().with_context(|| {
                format!("{name}: record {}: field `response` is not a string", i + 1)
            })?;
            let e = mode.extract(r);
            row.insert(
                "extracted".into(),
                e.clone().map_or(Value::Null, Value::String),
            );
            e
        } else {
            match row.get("pred") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Null) => None,
                _ => bail!(
                    "{name}: record {}: needs a `pred` or a `response` string",
                    i + 1
                ),
            }
        };
        let eq = pred.is_some_and(|p| grade::equivalent(&p, &gold));
        equal += eq as usize;
        row.insert("equal".into(), Value::Bool(eq));
        out.write(&Value::Object(row))?;
    }
    out.finish()?;
    tracing::info!(equal, "graded");
    Ok(())
}
