//! `rzero generate`: completions for prompts on rzero's batched engine.
//!
//! Input: `--prompt TEXT`, or `--input FILE.jsonl` whose lines hold `prompt` (a string) or
//! `messages` (a chat: `[{"role", "content"}]`, always rendered with the model's chat
//! template). `--chat` renders plain prompts as one user message. Output: one JSONL line per
//! completion, in input order: `id` (input line index), `index` (sample), `prompt` (the
//! rendered prompt text), `completion`, `completion_ids`, `finish_reason` (`stop` / `length`)
//! and, with `--logprobs`, `logprobs`. Greedy when the temperature is 0. With
//! `--force-answer` a completion without a closed `\boxed{}` is continued after a cue
//! (`engine::force`), and its line has `forced` (one bool per completion id: written by
//! the engine, not sampled).

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use engine::{Engine, EngineConfig, Event, Request, SamplingParams};
use model::{ChatMessage, LoadOptions};

use crate::io::{read_jsonl, JsonlOut};

/// Arguments of `rzero generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: HF folder, .gguf file or hub id in the local cache.
    #[arg(long)]
    pub model: String,
    /// JSONL prompts (`prompt` or `messages` per line); `-` for stdin.
    #[arg(long, conflicts_with = "prompt", required_unless_present = "prompt")]
    pub input: Option<PathBuf>,
    /// One prompt given on the command line.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Output JSONL (default stdout); written atomically.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Render plain prompts with the model's chat template (one user message).
    #[arg(long)]
    pub chat: bool,
    /// Most new tokens per completion.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Seed of every request (sample i of a prompt uses stream i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Completions per prompt.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Do not stop at EOS.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Stop string (repeatable); the completion is cut before it.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Also print each token's log-probability.
    #[arg(long)]
    pub logprobs: bool,
    #[command(flatten)]
    pub force: ForceArgs,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// KV-cache budget, bytes (suffixes K, M, G accepted).
    #[arg(long, default_value = "4G", value_parser = parse_bytes)]
    pub max_kv_bytes: usize,
    /// Most prompt tokens prefilled per step.
    #[arg(long, default_value_t = 512)]
    pub prefill_chunk: usize,
}

/// Forced final answers (`rzero generate`, `rzero eval`, `rzero audit`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ForceArgs {
    /// Force a final answer: a completion that ends without a closed \boxed{} gets the cue
    /// (`--force-answer-cue`) appended and continues for at most `--force-answer-tokens`
    /// tokens until the box closes (`}` is appended for it after that). Not in the reference.
    #[arg(long)]
    pub force_answer: bool,
    /// Most tokens the model writes after the cue.
    #[arg(long, default_value_t = engine::force::DEFAULT_MAX_TOKENS)]
    pub force_answer_tokens: usize,
    /// The cue appended to a completion without a closed \boxed{} (default: two newlines,
    /// then `Final answer: \boxed{`).
    #[arg(long, default_value = engine::force::DEFAULT_CUE, hide_default_value = true)]
    pub force_answer_cue: String,
}

impl ForceArgs {
    /// The engine option (`None` without `--force-answer`), checked.
    pub fn option(&self) -> anyhow::Result<Option<engine::ForceAnswer>> {
        if !self.force_answer {
            return Ok(None);
        }
        let f = engine::ForceAnswer {
            cue: self.force_answer_cue.clone(),
            max_tokens: self.force_answer_tokens,
        };
        f.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(f))
    }
}

/// `4096`, `512K`, `2M`, `4G` (binary multiples) -> bytes.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: usize = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a byte size: {s:?}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("byte size must be positive: {s:?}"));
    }
    Ok((v * mul as f64) as usize)
}

/// A prompt to complete and where it came from (for error messages).
struct Item {
    origin: String,
    text: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = model::load(&args.model, &LoadOptions::default())
        .with_context(|| format!("loading model {}", args.model))?;
    let m = loaded.model().context("building the model")?;
    let items = read_items(&args, &loaded.chat_template_or_chatml())?;

    let params = SamplingParams {
        n: args.n,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        min_p: args.min_p,
        max_new_tokens: args.max_new_tokens,
        stop: args.stop.clone(),
        stop_token_ids: Vec::new(),
        ignore_eos: args.ignore_eos,
        seed: args.seed,
        logprobs: args.logprobs,
        force_answer: args.force.option()?,
    };
    params.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = m.config().max_position_embeddings;
    let mut requests = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let ids = loaded
            .tokenizer
            .encode(&it.text, false)
            .with_context(|| format!("{}: tokenizing", it.origin))?;
        if ids.is_empty() {
            bail!("{}: the prompt is empty", it.origin);
        }
        if ids.len() >= ctx {
            bail!(
                "{}: the prompt has {} tokens, the model's context is {ctx} tokens",
                it.origin,
                ids.len()
            );
        }
        requests.push(Request {
            id: i as u64,
            prompt_ids: ids,
            params: params.clone(),
        });
    }

    let eos = loaded.eos_token_ids();
    let cfg = EngineConfig {
        max_batch_size: args.batch_size,
        max_kv_bytes: args.max_kv_bytes,
        prefill_chunk: args.prefill_chunk,
        eos_token_ids: eos,
    };
    let eng = Engine::new(&m, &loaded.tokenizer, cfg)?;
    for r in &requests {
        eng.validate(r)
            .map_err(|e| anyhow::anyhow!("{}: {e}", items[r.id as usize].origin))?;
    }
    let total = requests.len() * args.n;
    let bar = progress_bar(total);
    let outputs = eng.generate(&requests, |e| {
        if let Event::Progress(p) = e {
            bar.set_position(p.samples_done as u64);
            let tps = p.generated_tokens as f64 / p.elapsed_s.max(1e-9);
            bar.set_message(format!("{tps:.1} tok/s, {} running", p.running));
        }
    })?;
    bar.finish_and_clear();

    write_outputs(args.output.as_deref(), &outputs, &items)
}

/// The prompts of `--prompt` or `--input`, rendered.
fn read_items(args: &Args, template: &model::ChatTemplate) -> anyhow::Result<Vec<Item>> {
    let render_user = |text: &str| -> anyhow::Result<String> {
        Ok(template.render(&[ChatMessage::user(text)], true)?)
    };

    let mut items = Vec::new();
    if let Some(p) = &args.prompt {
        let text = if args.chat {
            render_user(p)?
        } else {
            p.clone()
        };
        items.push(Item {
            origin: "--prompt".into(),
            text,
        });
    } else {
        let path = args.input.as_deref();
        let name = match path {
            Some(p) if p.as_os_str() != "-" => p.display().to_string(),
            _ => "<stdin>".to_string(),
        };
        for (i, line) in read_jsonl(path)?.into_iter().enumerate() {
            let origin = format!("{name}: record {}", i + 1);
            let text = prompt_of(&line, args.chat, template).with_context(|| origin.clone())?;
            items.push(Item { origin, text });
        }
    }
    if items.is_empty() {
        bail!("no prompt given");
    }
    Ok(items)
}

/// The bar over `total` completions.
fn progress_bar(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} completions {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// One JSONL line per completion, in input order.
fn write_outputs(
    path: Option<&std::path::Path>,
    outputs: &[engine::RequestOutput],
    items: &[Item],
) -> anyhow::Result<()> {
    let mut out = JsonlOut::create(path)?;
    for (r, it) in outputs.iter().zip(items) {
        for c in &r.completions {
            let mut line = json!({
                "id": r.request_id,
                "index": c.index,
                "prompt": it.text,
                "completion": c.text,
                "completion_ids": c.token_ids,
                "finish_reason": c.finish_reason.as_str(),
            });
            if let Some(lp) = &c.logprobs {
                line["logprobs"] = json!(lp);
            }
            if !c.forced.is_empty() {
                line["forced"] = json!(c.forced);
            }
            out.write(&line)?;
        }
    }
    out.finish()
}

/// The prompt text of one input record.
fn prompt_of(
    line: &Map<String, Value>,
    chat: bool,
    template: &model::ChatTemplate,
) -> anyhow::Result<String> {
    if let Some(msgs) = line.get("messages") {
        let arr = msgs
            .as_array()
            .context("field `messages` must be an array of {role, content}")?;
        let mut v = Vec::with_capacity(arr.len());
        for (k, m) in arr.iter().enumerate() {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => v.push(ChatMessage::new(r, c)),
                _ => bail!("messages[{k}] needs string fields `role` and `content`"),
            }
        }
        return Ok(template.render(&v, true)?);
    }
    match line.get("prompt") {
        Some(Value::String(p)) if chat => Ok(template.render(&[ChatMessage::user(p)], true)?),
        Some(Value::String(p)) => Ok(p.clone()),
        Some(_) => bail!("field `prompt` must be a string"),
        None => bail!("needs a `prompt` (string) or `messages` (chat) field"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("2M").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert!(parse_bytes("3X").is_err());
        assert!(parse_bytes("-1").is_err());
    }
}
