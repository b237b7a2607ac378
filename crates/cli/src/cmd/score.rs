//! `rzero score`: per-token log-probabilities of completions given prompts.
//!
//! Input JSONL: each line has `prompt` + `completion` strings (tokenized separately, no
//! special tokens added) or `prompt_ids` + `completion_ids` arrays. Output JSONL: the input
//! object plus `completion_ids` and `logprobs` (log p of each completion token given
//! everything before it), and `logprob_sum`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::io::JsonlOut;

/// Arguments of `rzero score`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: HF folder, .gguf file or hub id.
    #[arg(long)]
    pub model: String,
    /// Input JSONL (`-` for stdin).
    #[arg(long)]
    pub input: PathBuf,
    /// Output JSONL (stdout when absent), written atomically.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
}

fn id_array(v: &Value, field: &str, at: &str) -> anyhow::Result<Vec<u32>> {
    let arr = v
        .as_array()
        .with_context(|| format!("{at}: `{field}` must be an array of token ids"))?;
    arr.iter()
        .map(|x| {
            x.as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .map(|n| n as u32)
                .with_context(|| format!("{at}: `{field}` must hold token ids, got {x}"))
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (name, lines) = crate::io::read_jsonl_numbered(Some(&args.input))?;
    let loaded = model::load(&args.model, &model::LoadOptions::default())
        .with_context(|| format!("loading {}", args.model))?;
    let m = loaded
        .model()
        .with_context(|| format!("building {}", args.model))?;
    let cfg = m.config().clone();
    let mut items = Vec::with_capacity(lines.len());
    for (ln, obj) in &lines {
        let at = format!("{name}:{ln}");
        let (p, c) = match (obj.get("prompt_ids"), obj.get("completion_ids")) {
            (Some(p), Some(c)) => (id_array(p, "prompt_ids", &at)?, id_array(c, "completion_ids", &at)?),
            _ => match (obj.get("prompt"), obj.get("completion")) {
                (Some(Value::String(p)), Some(Value::String(c))) => (
                    loaded.tokenizer.encode(p, false).with_context(|| format!("{at}: prompt"))?,
                    loaded.tokenizer.encode(c, false).with_context(|| format!("{at}: completion"))?,
                ),
                _ => bail!(
                    "{at}: needs `prompt` and `completion` strings, or `prompt_ids` and `completion_ids` arrays"
                ),
            },
        };
        if let Some(&bad) = p.iter().chain(&c).find(|&&t| t as usize >= cfg.vocab_size) {
            bail!(
                "{at}: token id {bad} out of range (vocab_size {})",
                cfg.vocab_size
            );
        }
        if p.is_empty() && !c.is_empty() {
            bail!("{at}: the prompt is empty (the first completion token has no context)");
        }
        if p.len() + c.len() > cfg.max_position_embeddings {
            return Err(model::Error::TooLong {
                len: p.len() + c.len(),
                max: cfg.max_position_embeddings,
            })
            .with_context(|| at.to_string());
        }
        items.push((p, c));
    }
    let t0 = std::time::Instant::now();
    let scores = model::logprobs::score(&m, &items, args.batch_size.max(1)).context("scoring")?;
    let ntok: usize = items.iter().map(|(p, c)| p.len() + c.len()).sum();
    tracing::info!(
        lines = items.len(),
        tokens = ntok,
        secs = t0.elapsed().as_secs_f64(),
        "scored"
    );
    let mut out = JsonlOut::create(args.output.as_deref())?;
    for (((_, obj), (_, c)), lp) in lines.into_iter().zip(&items).zip(scores) {
        let mut obj = obj;
        obj.insert("completion_ids".into(), Value::from(c.clone()));
        let sum: f64 = lp.iter().map(|&x| x as f64).sum();
        obj.insert(
            "logprobs".into(),
            Value::Array(lp.iter().map(|&x| Value::from(x as f64)).collect()),
        );
        obj.insert("logprob_sum".into(), Value::from(sum));
        out.write(&Value::Object(obj))?;
    }
    out.finish()
}
