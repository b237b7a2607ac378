//! `rzero grpo`: GRPO on any JSONL of `question` / `answer` lines with the Solver reward
//! (0.9 · accuracy by the grader + 0.1 · format) — R-Zero's Solver phase on its own.
//!
//! Rollouts come from the inference engine (`engine::Engine` on the trainer's no-graph
//! policy); training, metrics and checkpoints from `train::driver::run`, the same loop the
//! R-Zero phases call, configured the same way: the flags (and `--config`) set a
//! `train::OptimKnobs`, the keys of a run's `[solver.optim]`, and
//! `OptimKnobs::grpo_config` / `loop_config` build the trainer's and the loop's configuration. Writes `OUT/checkpoint/` (HF folder + optimizer + RNG state) and
//! `OUT/metrics.jsonl`; rerunning with the same `--out` resumes.
//!
//! With `--lora-rank` the checkpoint holds a PEFT adapter (`checkpoint/adapter/`, with
//! `base_model_name_or_path` = `--model`) instead of the full weights, plus the merged model
//! (`checkpoint/model/`) with `--merge-on-save`. `rzero generate --model OUT/checkpoint/adapter`
//! loads the base with the adapter merged.

use std::path::PathBuf;

use anyhow::{bail, Context};
use rzero::grpo::{items_from_rows, SolverRollout};
use train::{GrpoConfig, LoopConfig, ModelFiles, OptimKnobs, Progress, Trainer};

/// Arguments of `rzero grpo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Policy to train (and the frozen KL reference): HF folder, .gguf file or hub id.
    #[arg(long)]
    pub model: String,
    /// Training data: JSONL with `question` and `answer` on each line.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder (checkpoint/ and metrics.jsonl); an existing checkpoint is resumed.
    #[arg(long)]
    pub out: PathBuf,
    /// Total training steps [default: 20].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Responses sampled per question (G).
    #[arg(long, default_value_t = 5)]
    pub group_size: usize,
    /// Questions (prompts) sampled per step: the rollout (veRL `data.rollout_batch_size`).
    #[arg(long, visible_alias = "batch-size", default_value_t = 8)]
    pub rollout_batch_size: usize,
    /// Questions per optimizer update (veRL `worker.actor.global_batch_size`): the rollout is
    /// shuffled and spent in mini-batches of this many questions, one AdamW update each; old
    /// log-probs are computed once per rollout, so later updates are clipped PPO updates.
    /// 0 = the whole rollout in one update [default: 0].
    #[arg(long)]
    pub global_batch_size: Option<usize>,
    /// Passes over each rollout (veRL `worker.actor.ppo_epochs`) [default: 1].
    #[arg(long)]
    pub ppo_epochs: Option<usize>,
    /// Learning rate (reference 1e-6).
    #[arg(long)]
    pub lr: Option<f64>,
    /// KL coefficient β (reference 1e-2).
    #[arg(long)]
    pub kl_coef: Option<f64>,
    /// Sequences per forward/backward pass inside an update (gradient accumulation).
    #[arg(long, visible_alias = "micro-batch")]
    pub micro_batch_size: Option<usize>,
    /// Most new tokens per response.
    #[arg(long, default_value_t = 1024)]
    pub max_new_tokens: usize,
    /// Sampling temperature of the rollouts (and of the log-probs).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Checkpoint every N steps (and after the last; 0: at the end only). A resume restarts
    /// from the last checkpoint; the rollout of an unfinished step is journaled and reused.
    #[arg(long, default_value_t = 1)]
    pub save_every: u64,
    /// Seed (data order and sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// GRPO settings as a TOML file with the keys of a run's `[solver.optim]` section
    /// (`rzero config` documents them; flags win, unset keys keep the defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train LoRA adapters of this rank instead of the full weights (base frozen; the KL
    /// reference is the base model).
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// LoRA α: the update B·A is scaled by α / rank [default: 2 × rank].
    #[arg(long, requires = "lora_rank")]
    pub lora_alpha: Option<f64>,
    /// Modules LoRA adapts in each layer, comma-separated, from q_proj,k_proj,v_proj,o_proj,
    /// gate_proj,up_proj,down_proj [default: all seven].
    #[arg(long, value_delimiter = ',', requires = "lora_rank")]
    pub lora_targets: Option<Vec<String>>,
    /// With LoRA, also write the merged model (checkpoint/model/, a full HF folder) beside the
    /// adapter in every checkpoint.
    #[arg(long, requires = "lora_rank")]
    pub merge_on_save: bool,
    /// Activation recomputation: keep only each layer's input in the forward pass and
    /// recompute layers during backward (less memory, about one more forward of time).
    #[arg(long)]
    pub recompute: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.group_size < 2 {
        bail!("--group-size must be at least 2 (advantages are scaled by the group std)");
    }
    if args.rollout_batch_size == 0 {
        bail!("--rollout-batch-size must be at least 1");
    }
    let knobs = knobs(&args)?;
    if knobs.ppo_epochs == 0 {
        bail!("--ppo-epochs must be at least 1");
    }
    let cfg = grpo_config(&args, &knobs)?;

    let loaded = model::load(&args.model, &model::LoadOptions::default())
        .with_context(|| format!("loading {}", args.model))?;
    let template = loaded.chat_template_or_chatml();
    let rows = crate::io::read_jsonl(Some(&args.data))?;
    let items = items_from_rows(
        &rows,
        &args.data.display().to_string(),
        &template,
        &loaded.tokenizer,
    )?;
    tracing::info!(
        items = items.len(),
        model = %args.model,
        lora_rank = cfg.optim.lora_rank,
        recompute = cfg.optim.recompute,
        "grpo"
    );

    let mut trainer = Trainer::new(
        cfg,
        &loaded.config,
        &loaded.weights,
        None,
        &model::device::default_device(),
    )?;
    let mut rollout = SolverRollout {
        items: &items,
        tokenizer: &loaded.tokenizer,
        eos_token_ids: loaded.generation.eos_token_ids.clone(),
        group_size: args.group_size,
        rollout_batch_size: args.rollout_batch_size,
        sampling: engine::SamplingKnobs {
            temperature: args.temperature,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: args.max_new_tokens,
        },
        data_seed: args.seed,
    };
    let lc = LoopConfig {
        save_every: args.save_every,
        ..knobs.loop_config(
            args.out.clone(),
            args.out.join("metrics.jsonl"),
            args.seed ^ 0x6d69_6e69_6261_7463,
        )
    };
    // The adapter's base_model_name_or_path: an absolute path when --model is one.
    let base_model = std::fs::canonicalize(&args.model)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| args.model.clone());
    let files = ModelFiles {
        tokenizer: &loaded.tokenizer,
        chat_template: loaded.chat_template.as_ref(),
        generation: &loaded.generation,
        base_model: Some(&base_model),
    };
    let done = train::driver::run(&mut trainer, &mut rollout, &lc, &files, &mut print_progress)?;
    let ckpt = train::driver::checkpoint_dir(&args.out);
    eprintln!("{} steps run; checkpoint in {}", done.len(), ckpt.display());
    if trainer.lora().is_some() {
        eprintln!(
            "LoRA adapter (PEFT layout): {}",
            ckpt.join("adapter").display()
        );
    }
    Ok(())
}

/// The memory part of an update's progress line: `  rss 1.23 GiB (peak 1.50)` and, on CUDA,
/// `  gpu 20.1/79.6 GiB`.
fn mem_text(m: &train::StepMetrics) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    let mut s = String::new();
    if let Some(r) = m.mem_rss_bytes {
        s += &format!("  rss {:.2} GiB", r as f64 / GIB);
        if let Some(p) = m.mem_rss_peak_bytes {
            s += &format!(" (peak {:.2})", p as f64 / GIB);
        }
    }
    if let (Some(u), Some(t)) = (m.mem_device_bytes, m.mem_device_total_bytes) {
        s += &format!("  gpu {:.1}/{:.1} GiB", u as f64 / GIB, t as f64 / GIB);
    }
    s
}

/// The GRPO knobs: `--config` over the defaults (the reference's, with 20 steps and the
/// whole rollout in one update), then the flags.
fn knobs(args: &Args) -> anyhow::Result<OptimKnobs> {
    let mut k = OptimKnobs {
        steps: 20,
        global_batch_size: 0,
        ..OptimKnobs::default()
    };
    if let Some(p) = &args.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let file: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        let mut table = toml::Table::try_from(&k)?;
        table.extend(file);
        k = table
            .try_into()
            .with_context(|| format!("parsing {}", p.display()))?;
    }
    let set = |v: &mut usize, flag: Option<usize>| *v = flag.unwrap_or(*v);
    set(&mut k.steps, args.steps);
    set(&mut k.global_batch_size, args.global_batch_size);
    set(&mut k.ppo_epochs, args.ppo_epochs);
    set(&mut k.micro_batch_size, args.micro_batch_size);
    k.lr = args.lr.unwrap_or(k.lr);
    k.kl_coef = args.kl_coef.unwrap_or(k.kl_coef);
    if let Some(rank) = args.lora_rank {
        k.lora_rank = rank;
        k.lora_alpha = args.lora_alpha.unwrap_or(k.lora_alpha);
        if let Some(t) = &args.lora_targets {
            k.lora_targets = t.iter().map(|s| s.trim().to_string()).collect();
        }
    }
    k.recompute |= args.recompute;
    Ok(k)
}

/// The trainer's configuration: the knobs through the function the R-Zero phases use, at
/// the rollouts' temperature, with the global `--dtype` as the compute dtype; checked.
fn grpo_config(args: &Args, knobs: &OptimKnobs) -> anyhow::Result<GrpoConfig> {
    let dtype =
        train::ComputeDtype::from_dtype(model::device::default_dtype()).context("--dtype")?;
    let cfg = GrpoConfig {
        merge_lora_on_save: args.merge_on_save,
        ..knobs.grpo_config(args.temperature, args.seed, dtype)
    };
    cfg.validate()?;
    Ok(cfg)
}

/// One progress line per rollout resume, update and step.
fn print_progress(p: Progress<'_>) {
    match p {
        Progress::Rollout {
            step,
            updates,
            resumed,
        } => {
            if resumed {
                eprintln!("step {step:>4}  rollout resumed from the journal ({updates} updates)");
            }
        }
        Progress::Update(m) => eprintln!(
            "step {:>4}  update  loss {:+.4}  kl {:.4}  ppo_kl {:+.5}  clip {:.3}  |g| {:.3}  {:.0} tok/s{}",
            m.step,
            m.grad.loss,
            m.grad.kl,
            m.grad.ppo_kl,
            m.grad.pg_clipfrac_higher,
            m.update.grad_norm,
            m.tokens_per_s,
            mem_text(m)
        ),
        Progress::Step(row, _) => eprintln!(
            "step {:>4}  reward {:.3}  updates {}  adv!=0 {:.2}  len {:.0}",
            row["step"],
            row["reward_mean"].as_f64().unwrap_or(f64::NAN),
            row["updates"],
            row["adv_nonzero_frac"].as_f64().unwrap_or(f64::NAN),
            row["response_len_mean"].as_f64().unwrap_or(f64::NAN),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let base = ["rzero", "--model", "m", "--data", "d.jsonl", "--out", "o"];
        Cli::parse_from(base.iter().chain(extra)).args
    }

    /// Without flags: the reference's GRPO settings with 20 steps and the whole rollout in
    /// one update, through the function the R-Zero phases use.
    #[test]
    fn defaults_go_through_the_phases_function() {
        let a = args(&[]);
        let k = knobs(&a).unwrap();
        let want = OptimKnobs {
            steps: 20,
            global_batch_size: 0,
            ..OptimKnobs::default()
        };
        assert_eq!(k, want);
        let c = grpo_config(&a, &k).unwrap();
        assert_eq!(c, k.grpo_config(1.0, 0, train::ComputeDtype::F32));
        assert_eq!(
            (c.optim.lr, c.clip_dual(), c.lora()),
            (1e-6, Some(3.0), None)
        );
    }

    /// `--config` holds `[solver.optim]` keys over the defaults; flags win; a wrong key is
    /// named with the file.
    #[test]
    fn config_file_then_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("g.toml");
        std::fs::write(
            &p,
            "lr = 1e-5\nsteps = 3\nclip_dual = 0.0\nppo_epochs = 2\n",
        )
        .unwrap();
        let file = p.to_str().unwrap();
        let a = args(&[
            "--config",
            file,
            "--steps",
            "4",
            "--lora-rank",
            "2",
            "--merge-on-save",
        ]);
        let k = knobs(&a).unwrap();
        assert_eq!(
            (k.steps, k.lr, k.ppo_epochs, k.global_batch_size),
            (4, 1e-5, 2, 0)
        );
        let c = grpo_config(&a, &k).unwrap();
        assert_eq!(c.clip_dual(), None);
        let l = c.lora().unwrap();
        assert_eq!((l.rank, l.alpha(), l.merge_on_save), (2, 4.0, true));
        std::fs::write(&p, "learning_rate = 1e-5\n").unwrap();
        let e = format!("{:#}", knobs(&args(&["--config", file])).unwrap_err());
        assert!(e.contains("learning_rate") && e.contains("g.toml"), "{e}");
    }
}
