//! The run configuration: one TOML file with every hyperparameter of the method, built-in
//! presets (`paper`, `demo`, `tiny`), `--set key=value` overrides, and a commented rendering.
//!
//! Resolution order: preset (default `demo`) → `--config FILE` → command-line flags and
//! `--set` overrides. Each layer is a TOML table merged key by key; the merged table is then
//! deserialised with `deny_unknown_fields`, so a typo names the bad key and lists the valid
//! ones. Defaults are the reference implementation's values (see `docs/method.md`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod keys;
mod presets;

use keys::render;

/// Everything `rzero run` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base model: a Hugging Face folder, a `.gguf` file or a hub id. Challenger and Solver
    /// both start from it.
    pub model: String,
    /// Number of R-Zero iterations (the reference runs 3-5).
    pub iterations: usize,
    /// Master seed; every stage derives its own seeds from it.
    pub seed: u64,
    /// Also take the Solver's answer from "the answer is X" / "Final Answer: X" when a
    /// response has no `\boxed{}` (pseudo-labels and Solver rewards; benchmark evaluation
    /// stays strict). Off in the reference; on in `demo` because SmolLM2-135M rarely boxes.
    pub answer_fallbacks: bool,
    /// Generation engine limits.
    pub engine: EngineSection,
    /// Challenger phase (GRPO against the frozen Solver).
    pub challenger: ChallengerSection,
    /// Dataset construction.
    pub dataset: DatasetSection,
    /// Solver phase (GRPO on the pseudo-labelled dataset).
    pub solver: SolverSection,
    /// Benchmark evaluation of the base model and of each iteration's Solver.
    pub eval: EvalSection,
    /// Pseudo-label audit on benchmark questions with known answers.
    pub audit: AuditSection,
    /// OpenAI-compatible inference servers for the frozen Solver's answers.
    pub remote: RemoteSection,
}

/// Remote rollouts: the frozen Solver's `m` answers per question (Challenger rewards and
/// dataset labels) can come from vLLM / SGLang / llama.cpp / `rzero serve` servers while
/// training stays local. See `docs/scale-out.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSection {
    /// Server roots (e.g. `http://10.0.0.5:8000`); empty = the in-process engine.
    pub solver_urls: Vec<String>,
    /// Model id the servers serve (vLLM `--served-model-name`).
    pub model: String,
    /// Name of the environment variable that holds the bearer token ("" = none). The key
    /// itself never enters the config, so it is not written to `RUN/config.toml`.
    pub api_key_env: String,
    /// Most requests in flight per server.
    pub max_concurrency: usize,
    /// Limit of one HTTP call, seconds.
    pub timeout_s: f64,
    /// Retries of a failed call (with exponential backoff).
    pub retries: usize,
    /// Shell command that reloads the servers with a new Solver checkpoint (`{checkpoint}` is
    /// replaced by its folder), run before each iteration after the first; "" = servers keep
    /// their weights.
    pub reload_command: String,
}

/// Engine limits shared by every generation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Sequences decoded together.
    pub max_batch_size: usize,
    /// KV-cache budget in bytes (0 = automatic).
    pub max_kv_bytes: u64,
    /// Forced final answers (where a stage turns them on): the cue appended to a Solver
    /// response that ends without a closed `\boxed{}`.
    #[serde(default = "default_force_cue")]
    pub force_answer_cue: String,
    /// Forced final answers: most tokens the model writes after the cue before its box is
    /// closed for it.
    #[serde(default = "default_force_tokens")]
    pub force_answer_tokens: usize,
    /// How f32 weight matrices without a GGUF block copy (a trained policy) are sampled from.
    #[serde(default)]
    pub policy_weights: engine::PolicyWeights,
}

fn default_force_cue() -> String {
    engine::force::DEFAULT_CUE.into()
}

fn default_force_tokens() -> usize {
    engine::force::DEFAULT_MAX_TOKENS
}

/// Sampling parameters of one generation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f64,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Maximum new tokens per response.
    pub max_new_tokens: usize,
}

/// GRPO optimisation settings of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optim {
    /// GRPO steps per iteration.
    pub steps: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Coefficient of the low-variance KL to the reference policy.
    pub kl_coef: f64,
    /// Gradient-norm clip.
    pub max_grad_norm: f64,
    /// PPO clip ε_low.
    pub clip_low: f64,
    /// PPO clip ε_high (clip-higher).
    pub clip_high: f64,
    /// Prompts per optimizer update (veRL `worker.actor.global_batch_size`): each rollout is
    /// shuffled and spent in mini-batches of this many prompts, one AdamW update each.
    pub global_batch_size: usize,
    /// Passes over each rollout (veRL `worker.actor.ppo_epochs`).
    pub ppo_epochs: usize,
    /// Sequences per forward/backward pass inside an update (veRL
    /// `micro_batch_size_per_device_for_update`; gradient accumulation).
    pub micro_batch_size: usize,
    /// Dual-clip constant c (the loss of a negative advantage is capped at −c·A); 0 = off.
    pub clip_dual: f64,
    /// LoRA rank; 0 = full fine-tuning (the reference). With LoRA the phase's checkpoints
    /// hold the adapter and its export is the merged model.
    #[serde(default)]
    pub lora_rank: usize,
    /// LoRA α (the update is scaled by α / rank); 0 = 2 × rank.
    #[serde(default)]
    pub lora_alpha: f64,
    /// Modules LoRA adapts in each decoder layer.
    #[serde(default = "all_lora_targets")]
    pub lora_targets: Vec<String>,
    /// Activation recomputation (less memory, about one more forward pass of time).
    #[serde(default)]
    pub recompute: bool,
    /// Shared prompts: each distinct prompt's forward once per micro-batch, its responses
    /// attending to its keys and values (same loss; float reassociation only).
    #[serde(default = "yes")]
    pub shared_prompts: bool,
}

fn yes() -> bool {
    true
}

fn all_lora_targets() -> Vec<String> {
    model::lora::ALL_TARGETS.map(String::from).to_vec()
}

/// How the m Solver answers of a question are counted into p̂.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vote {
    /// As the reference counts in this place (Challenger reward: a missing box is the class
    /// "None", p̂ = largest class / m; dataset: the same classes, p̂ = largest class /
    /// non-empty answers). Both merge answers that contain "no ".
    Reference,
    /// Only extracted answers count: p̂ = largest class / extracted answers.
    Extracted,
}

/// Challenger phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengerSection {
    /// Prompts sampled per GRPO step (veRL `data.rollout_batch_size`; reference 512).
    pub rollout_batch_size: usize,
    /// Samples per prompt (G).
    pub group_size: usize,
    /// Challenger sampling.
    pub sampling: Sampling,
    /// Solver answers per generated question (m).
    pub solver_samples: usize,
    /// How the m answers are counted into p̂.
    pub vote: Vote,
    /// Solver sampling when scoring the Challenger's questions.
    pub solver_sampling: Sampling,
    /// Force a final answer on the Solver's responses when scoring the Challenger's
    /// questions (see `engine::force`; not in the reference).
    #[serde(default)]
    pub solver_force_answer: bool,
    /// Reward of a response without `<question>` or `\boxed{}` (before the repetition penalty).
    pub format_failure_reward: f64,
    /// BLEU distance threshold of the repetition clustering.
    pub repetition_threshold: f64,
    /// Show two example answers in the output format as earlier turns of the conversation
    /// (helps small models; off in the reference).
    pub format_example: bool,
    /// Text the Challenger's answer starts with, appended after the generation prompt and
    /// prepended to the response before parsing (e.g. `"<question>\n"`; empty in the
    /// reference).
    pub response_prefix: String,
    /// Optimisation.
    pub optim: Optim,
}

/// Dataset construction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// Questions generated per iteration (reference: 8 × 1,000).
    pub num_questions: usize,
    /// Challenger sampling when generating the dataset.
    pub sampling: Sampling,
    /// Solver answers per question (m).
    pub solver_samples: usize,
    /// How the m answers are counted into p̂ (and the label chosen).
    pub vote: Vote,
    /// Solver sampling for the pseudo-labels.
    pub solver_sampling: Sampling,
    /// Force a final answer on the Solver's responses for the pseudo-labels (and the
    /// pseudo-label audit; not in the reference).
    #[serde(default)]
    pub solver_force_answer: bool,
    /// Keep questions with `min_p_hat <= p̂`.
    pub min_p_hat: f64,
    /// Keep questions with `p̂ <= max_p_hat`.
    pub max_p_hat: f64,
    /// Questions per journal chunk (progress is saved after each chunk).
    pub chunk: usize,
}

/// Solver phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverSection {
    /// Questions sampled per GRPO step (veRL `data.rollout_batch_size`; reference 512).
    pub rollout_batch_size: usize,
    /// Samples per question (G).
    pub group_size: usize,
    /// Solver sampling during training.
    pub sampling: Sampling,
    /// Weight of accuracy against the pseudo-label.
    pub accuracy_weight: f64,
    /// Weight of the `<think>…</think> … \boxed{}` format.
    pub format_weight: f64,
    /// Show a worked example (a question and its answer ending in `\boxed{}`) as an earlier
    /// exchange before each question, wherever the Solver answers in the loop (training
    /// rollouts, the Challenger reward, the dataset labels); benchmark evaluation and the
    /// label audit keep the reference prompt. Helps small models; off in the reference.
    #[serde(default)]
    pub format_example: bool,
    /// Force a final answer on the Solver's training responses: the cue tokens are in the
    /// context but get no gradient (not in the reference).
    #[serde(default)]
    pub force_answer: bool,
    /// Optimisation.
    pub optim: Optim,
}

/// Benchmark evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Benchmarks (names of `data/benchmarks/*.jsonl`: the math sets, `mmlu_pro`, `bbeh`;
    /// `supergpqa=PATH`; or paths); empty = no eval.
    pub benchmarks: Vec<String>,
    /// Questions per benchmark (0 = all); a seeded stratified subset for the general sets.
    pub limit: usize,
    /// Questions per category of the general-domain sets (0 = all).
    #[serde(default)]
    pub per_category: usize,
    /// Maximum new tokens per answer (greedy).
    pub max_new_tokens: usize,
    /// Force a final answer on the evaluated responses (not in the reference).
    #[serde(default)]
    pub force_answer: bool,
    /// Which `\boxed{}` is the answer: `first-boxed` (the reference's
    /// `evaluation/datasets_loader.py`) or `last-boxed` (what training reads).
    #[serde(default)]
    pub answer: grade::AnswerRule,
    /// OpenAI-compatible server of the reference's LLM re-check of wrong answers
    /// (`evaluation/results_recheck.py`); "" = no judge.
    #[serde(default)]
    pub judge_url: String,
    /// The judge model (the reference: `gpt-4o`).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Benchmarks to audit on; empty = no audit.
    pub benchmarks: Vec<String>,
    /// Questions per benchmark.
    pub limit: usize,
    /// Answers per question (m).
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
        for (key, g) in [
            ("challenger.group_size", self.challenger.group_size),
            ("solver.group_size", self.solver.group_size),
            (
                "challenger.rollout_batch_size",
                self.challenger.rollout_batch_size,
            ),
            ("solver.rollout_batch_size", self.solver.rollout_batch_size),
            (
                "challenger.optim.global_batch_size",
                self.challenger.optim.global_batch_size,
            ),
            (
                "solver.optim.global_batch_size",
                self.solver.optim.global_batch_size,
            ),
            (
                "challenger.optim.ppo_epochs",
                self.challenger.optim.ppo_epochs,
            ),
            ("solver.optim.ppo_epochs", self.solver.optim.ppo_epochs),
            ("challenger.solver_samples", self.challenger.solver_samples),
            ("dataset.solver_samples", self.dataset.solver_samples),
            ("dataset.chunk", self.dataset.chunk),
            (
                "challenger.optim.micro_batch_size",
                self.challenger.optim.micro_batch_size,
            ),
            (
                "solver.optim.micro_batch_size",
                self.solver.optim.micro_batch_size,
            ),
            ("engine.max_batch_size", self.engine.max_batch_size),
        ] {
            if g == 0 {
                return bad(key, "must be at least 1");
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
            ("challenger.sampling", &self.challenger.sampling),
            (
                "challenger.solver_sampling",
                &self.challenger.solver_sampling,
            ),
            ("dataset.sampling", &self.dataset.sampling),
            ("dataset.solver_sampling", &self.dataset.solver_sampling),
            ("solver.sampling", &self.solver.sampling),
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
        for (key, o) in [
            ("challenger.optim", &self.challenger.optim),
            ("solver.optim", &self.solver.optim),
        ] {
            if !(o.lr > 0.0 && o.lr.is_finite()) {
                return bad(&format!("{key}.lr"), "must be a positive number");
            }
            if !(o.clip_dual == 0.0 || (o.clip_dual > 1.0 && o.clip_dual.is_finite())) {
                return bad(&format!("{key}.clip_dual"), "must be 0 (off) or > 1");
            }
            if !(o.lora_alpha >= 0.0 && o.lora_alpha.is_finite()) {
                return bad(&format!("{key}.lora_alpha"), "must be >= 0 (0 = 2 x rank)");
            }
            if o.lora_rank > 0 {
                if let Err(e) = model::lora::check_targets(&o.lora_targets) {
                    return bad(&format!("{key}.lora_targets"), &e.to_string());
                }
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
             # prints a full file to start from. Defaults of the `paper` preset are the reference's.\n",
        );
        render(&v, "", &mut out);
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
