//! `rzero grade`: JSONL in, JSONL out. Each line has `gold` and either `pred` (a bare
//! answer) or `response` (a full solution whose answer is extracted with `--extract`:
//! `boxed` (default), `fallbacks`, or `free` for free text); the output is the input
//! object plus `"equal": bool`, and `"extracted"` (string or null) for `response`.

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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let rows = read_jsonl(args.input.as_deref())?;
    let mode = match (args.extract, args.fallbacks) {
        (Some(m), _) => m,
        (None, true) => grade::ExtractMode::Fallbacks,
        (None, false) => grade::ExtractMode::Boxed,
    };
    let mut out = JsonlOut::create(args.output.as_deref())?;
    let mut equal = 0usize;
    for (i, mut row) in rows.into_iter().enumerate() {
        let gold = match row.get("gold") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => bail!(
                "{name}: record {}: field `gold` is missing or not a string",
                i + 1
            ),
        };
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
