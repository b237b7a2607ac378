//! `rzero bench shared-prompts`: the time of one Challenger-phase GRPO update with shared
//! prompts (`grpo.shared_prompts`, the default) and without, on the same trainer, in one run.
//!
//! The batch is one rollout group as the demo preset's Challenger trains it: the Challenger
//! prompt rendered with the model's chat template (with the format examples and the
//! `<question>\n` response prefix, as `demo` sets them; `--prompt-len P` instead: P random
//! ids), `--group` responses of `--resp-len` random ids with distinct rewards. An update is
//! what the GRPO driver runs per mini-batch: the old (and, with `--kl-coef > 0`, reference)
//! log-probs without a graph, then forward + backward + AdamW. Each measured round runs the
//! shared update, then the unshared one (after one warm-up round of each).

use std::time::Instant;

use anyhow::Context;
use train::{Group, GrpoConfig, Response, Trainer};

/// Arguments of `rzero bench shared-prompts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: super::bench::ModelArgs,
    /// Prompt length (random ids) instead of the rendered Challenger prompt (needed with
    /// --random-init).
    #[arg(long)]
    pub prompt_len: Option<usize>,
    /// Responses of the prompt (the group size).
    #[arg(long, default_value_t = 4)]
    pub group: usize,
    /// Tokens per response.
    #[arg(long, default_value_t = 64)]
    pub resp_len: usize,
    /// Sequences per forward/backward pass (unshared); the shared micro-batch holds as many
    /// responses as fit the same number of rows.
    #[arg(long, default_value_t = 2)]
    pub micro_batch: usize,
    #[command(flatten)]
    pub grpo: super::bench::GrpoArgs,
}

/// The Challenger prompt of the demo preset, tokenized with the model's tokenizer.
fn challenger_prompt_ids(spec: &str) -> anyhow::Result<(model::Config, model::Weights, Vec<u32>)> {
    let loaded = model::load(spec, &model::LoadOptions::default())
        .with_context(|| format!("loading {spec}"))?;
    let text =
        rzero::prompts::challenger_prompt(loaded.chat_template.as_ref(), true, "<question>\n")
            .context("rendering the Challenger prompt")?;
    let ids = loaded
        .tokenizer
        .encode(&text, false)
        .context("tokenizing the Challenger prompt")?;
    Ok((loaded.config, loaded.weights, ids))
}

/// One update as the driver runs it: old/reference log-probs, then the update.
fn update(trainer: &mut Trainer, groups: &[Group]) -> anyhow::Result<(f64, f64)> {
    let mut g = groups.to_vec();
    let t = Instant::now();
    trainer.fill_rollout_logprobs(&mut g, true)?;
    let m = trainer.update(&g)?;
    Ok((t.elapsed().as_secs_f64(), m.grad.loss))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.group >= 2 && args.resp_len >= 1,
        "--group >= 2 and --resp-len >= 1"
    );
    let (config, weights, label, prompt) = match (&args.model.random_init, args.prompt_len) {
        (Some(c), Some(p)) => {
            let (config, weights) = super::bench::random_init(c)?;
            (config, weights, c.display().to_string(), vec![1u32; p])
        }
        (Some(_), None) => anyhow::bail!("--random-init needs --prompt-len"),
        (None, p) => {
            let (config, weights, ids) = challenger_prompt_ids(&args.model.model)?;
            let ids = match p {
                Some(p) => vec![1u32; p],
                None => ids,
            };
            (config, weights, args.model.model.clone(), ids)
        }
    };
    let mut cfg = GrpoConfig {
        loss_agg: train::LossAgg::MicrobatchTokenMean,
        ..args.grpo.grpo_config(args.micro_batch)?
    };
    cfg.optim.shared_prompts = true;
    let dev = model::device::default_device();
    let mut trainer = Trainer::new(cfg, &config, &weights, None, &dev)?;
    drop(weights);
    let mut next = super::bench::id_stream(config.vocab_size as u64);
    let prompt: Vec<u32> = if args.prompt_len.is_some() {
        prompt.iter().map(|_| next()).collect()
    } else {
        prompt
    };
    let groups = vec![Group {
        prompt: prompt.clone(),
        responses: (0..args.group)
            .map(|i| Response {
                ids: (0..args.resp_len).map(|_| next()).collect(),
                reward: i as f32,
                ..Default::default()
            })
            .collect(),
    }];
    let mut times = [Vec::new(), Vec::new()];
    let mut losses = [0f64; 2];
    for round in 0..=args.grpo.steps {
        for (k, shared) in [true, false].into_iter().enumerate() {
            trainer.set_shared_prompts(shared);
            let (t, loss) = update(&mut trainer, &groups)?;
            if round > 0 {
                times[k].push(t);
            } else {
                losses[k] = loss;
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ts, tu) = (mean(&times[0]), mean(&times[1]));
    let tokens = args.group * (prompt.len() + args.resp_len);
    let mut rows = Vec::new();
    for (k, shared) in [true, false].into_iter().enumerate() {
        let t = [ts, tu][k];
        let mut out = serde_json::json!({
            "bench": "train-shared-prompts",
            "model": label,
            "shared_prompts": shared,
            "prompt_len": prompt.len(),
            "group": args.group,
            "resp_len": args.resp_len,
            "micro_batch": args.micro_batch,
            "kl_coef": args.grpo.kl_coef,
            "lora_rank": args.grpo.lora_rank,
            "recompute": args.grpo.recompute,
            "tokens_per_update": tokens,
            "update_s": t,
            "update_times_s": times[k],
            "tokens_per_s": tokens as f64 / t,
            "first_update_loss": losses[k],
            "speedup_shared_over_unshared": tu / ts,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        });
        super::bench::device_fields(&mut out, trainer.compute_dtype());
        rows.push(out);
    }
    if args.grpo.json {
        for r in rows {
            println!("{r}");
        }
    } else {
        println!(
            "shared prompts: prompt {} + {} x {} tokens, micro-batch {}: shared {:.2} s/update, unshared {:.2} s/update ({:.2}x)",
            prompt.len(),
            args.group,
            args.resp_len,
            args.micro_batch,
            ts,
            tu,
            tu / ts
        );
    }
    Ok(())
}
