//! `rzero bench ...`: benchmarks that print figures and compare with a peer.

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Generation throughput (prompt and generated tokens/s) per batch size.
    Generate(super::bench_generate::Args),
    /// Training throughput (forward + backward + AdamW) and peak memory.
    Train(super::bench_train::Args),
    /// One Challenger-phase GRPO update with and without shared prompts.
    SharedPrompts(super::bench_shared::Args),
    /// Answer grading throughput and worst-case time.
    Grade(super::bench_grade::Args),
    /// BLEU clustering time at 64 / 2,000 / 8,000 questions.
    Cluster(super::bench_cluster::Args),
    /// `rzero score` and greedy generate tokens/s of the plain model.
    Model(super::bench_model::Args),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Generate(a) => super::bench_generate::run(a),
        BenchCommand::Train(a) => super::bench_train::run(a),
        BenchCommand::SharedPrompts(a) => super::bench_shared::run(a),
        BenchCommand::Grade(a) => super::bench_grade::run(a),
        BenchCommand::Cluster(a) => super::bench_cluster::run(a),
        BenchCommand::Model(a) => super::bench_model::run(a),
    }
}

/// The model flags of the benchmarks that load one.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Model: HF folder, .gguf file or hub id (in the local cache).
    #[arg(long, required_unless_present = "random_init", default_value = "")]
    pub model: String,
    /// Instead of --model: random weights in the shape of this Hugging Face config.json.
    #[arg(long, value_name = "CONFIG.json", conflicts_with = "model")]
    pub random_init: Option<std::path::PathBuf>,
}

/// The GRPO flags `bench train` and `bench shared-prompts` share.
#[derive(clap::Args, Debug)]
pub struct GrpoArgs {
    /// Measured steps (rounds for shared-prompts), after one warm-up.
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// KL coefficient (0 skips the reference forward).
    #[arg(long, default_value_t = 1e-2)]
    pub kl_coef: f64,
    /// LoRA rank (0: full fine-tuning).
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    /// Activation recomputation.
    #[arg(long)]
    pub recompute: bool,
    /// Operands of the training matrix products: f32, or bf16 (rounded, summed in f32;
    /// AMX tiles where the CPU has them).
    #[arg(long, default_value = "f32")]
    pub matmul_precision: model::ops::MatmulPrecision,
    /// Print JSON (one object per row) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl GrpoArgs {
    /// The trainer's configuration: these flags, `micro_batch` sequences per pass, the
    /// process's compute dtype, the rest defaults.
    pub fn grpo_config(&self, micro_batch: usize) -> anyhow::Result<train::GrpoConfig> {
        use anyhow::Context;
        Ok(train::GrpoConfig {
            optim: train::OptimKnobs {
                micro_batch_size: micro_batch,
                kl_coef: self.kl_coef,
                lora_rank: self.lora_rank,
                recompute: self.recompute,
                matmul_precision: self.matmul_precision,
                ..Default::default()
            },
            compute_dtype: train::ComputeDtype::from_dtype(model::device::default_dtype())
                .context("--dtype")?,
            ..Default::default()
        })
    }
}

/// The device and dtype fields every benchmark row carries.
pub fn device_fields(row: &mut serde_json::Value, dtype: candle_core::DType) {
    row["device"] = serde_json::json!(model::device::active_spec().to_string());
    row["dtype"] = serde_json::json!(model::device::dtype_name(dtype));
}

/// A model of the shape in `config` (a Hugging Face config.json) with random weights
/// (normal, std 0.02; norms 1), created on the process's device in its dtype:
/// throughput does not depend on the values. Returns the config and the weights.
pub fn random_init(config: &std::path::Path) -> anyhow::Result<(model::Config, model::Weights)> {
    use anyhow::Context;
    use candle_core::{DType, Tensor};
    let cfg = model::Config::from_hf_json(config)
        .with_context(|| format!("--random-init {}", config.display()))?;
    let dev = model::device::default_device();
    let dtype = model::device::default_dtype();
    if !dev.is_cpu() {
        // candle's CPU generator cannot be seeded; values do not matter for throughput.
        dev.set_seed(0)?;
    }
    let (h, d, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
    let (qd, kvd) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut w = model::Weights::new();
    let mut rand = |name: String, shape: &[usize]| -> anyhow::Result<()> {
        let t = Tensor::randn(0f32, 0.02, shape, &dev)?.to_dtype(dtype)?;
        w.insert(name, t);
        Ok(())
    };
    rand("model.embed_tokens.weight".into(), &[cfg.vocab_size, h])?;
    if !cfg.tie_word_embeddings {
        rand("lm_head.weight".into(), &[cfg.vocab_size, h])?;
    }
    for l in 0..cfg.num_hidden_layers {
        let a = format!("model.layers.{l}.self_attn");
        let m = format!("model.layers.{l}.mlp");
        rand(format!("{a}.q_proj.weight"), &[qd, h])?;
        rand(format!("{a}.k_proj.weight"), &[kvd, h])?;
        rand(format!("{a}.v_proj.weight"), &[kvd, h])?;
        rand(format!("{a}.o_proj.weight"), &[h, qd])?;
        rand(format!("{m}.gate_proj.weight"), &[i, h])?;
        rand(format!("{m}.up_proj.weight"), &[i, h])?;
        rand(format!("{m}.down_proj.weight"), &[h, i])?;
        if cfg.attention_bias {
            rand(format!("{a}.q_proj.bias"), &[qd])?;
            rand(format!("{a}.k_proj.bias"), &[kvd])?;
            rand(format!("{a}.v_proj.bias"), &[kvd])?;
        }
    }
    let ones = |n: usize| Tensor::ones(n, DType::F32, &dev);
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        w.insert(format!("{p}.input_layernorm.weight"), ones(h)?);
        w.insert(format!("{p}.post_attention_layernorm.weight"), ones(h)?);
        if cfg.qk_norm {
            w.insert(format!("{p}.self_attn.q_norm.weight"), ones(d)?);
            w.insert(format!("{p}.self_attn.k_norm.weight"), ones(d)?);
        }
    }
    w.insert("model.norm.weight".into(), ones(h)?);
    Ok((cfg, w))
}

/// Detokenizer of a random-init model (no tokenizer): ids as short words.
pub struct IdText;

impl engine::stop::Detokenize for IdText {
    fn decode(&self, ids: &[u32], _skip_special: bool) -> engine::Result<String> {
        Ok(ids.iter().map(|i| format!(" t{i}")).collect())
    }
}

/// Prompt ids of a random-init model: the prompt's bytes mapped into the vocabulary.
pub fn id_encode(vocab: usize) -> impl Fn(&str) -> engine::Result<Vec<u32>> {
    move |s: &str| {
        Ok(s.bytes()
            .map(|b| 100 + b as u32 % (vocab as u32 - 100))
            .collect())
    }
}

/// Deterministic pseudo-random token ids below `vocab` (splitmix64).
pub fn id_stream(vocab: u64) -> impl FnMut() -> u32 {
    let mut state = 0x1234_5678u64;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % vocab) as u32
    }
}
