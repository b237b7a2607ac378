//! `rzero cluster`: R-Zero's repetition penalty for a batch of questions.
//!
//! Reads JSONL lines with a `question` field, clusters the questions by BLEU distance
//! (earlier line = hypothesis, as R-Zero orders the pairs) with average linkage at
//! `--threshold`, and writes every input line back with two more fields: `cluster` (an
//! integer label, numbered by first appearance) and `penalty` (cluster size / batch size).

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::io::{read_jsonl, JsonlOut};

/// Arguments of `rzero cluster`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// BLEU-distance threshold: clusters merge while their average distance is below it.
    #[arg(long, default_value_t = reward::cluster::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Input JSONL with a string field `question` on every line (default: stdin).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output JSONL (default: stdout); a file is written atomically.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.threshold.is_finite() || args.threshold < 0.0 {
        bail!(
            "--threshold must be a finite number >= 0, got {}",
            args.threshold
        );
    }
    let name = args
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let rows = read_jsonl(args.input.as_deref())?;
    let questions = rows
        .iter()
        .enumerate()
        .map(|(k, row)| match row.get("question") {
            Some(Value::String(q)) => Ok(q.clone()),
            Some(_) => bail!("{name}: record {}: field `question` is not a string", k + 1),
            None => bail!("{name}: record {}: missing field `question`", k + 1),
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let start = std::time::Instant::now();
    let labels = reward::cluster::cluster_questions(&questions, args.threshold);
    let penalties = reward::cluster::repetition_penalties(&labels);
    let clusters = labels.iter().copied().max().map_or(0, |m| m + 1);
    tracing::info!(
        questions = questions.len(),
        clusters,
        seconds = start.elapsed().as_secs_f64(),
        "clustered"
    );
    let mut out = JsonlOut::create(args.output.as_deref())?;
    for ((mut row, label), penalty) in rows.into_iter().zip(labels).zip(penalties) {
        row.insert("cluster".into(), Value::from(label));
        row.insert("penalty".into(), Value::from(penalty));
        out.write(&Value::Object(row))?;
    }
    out.finish().context("writing the clustered questions")
}
