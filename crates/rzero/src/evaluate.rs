//! Evaluation on the engine: [`SamplerGenerator`] (the `eval::Generator` over the one
//! [`engine::Sampler`] seam, used by `rzero eval`, `rzero audit` and the loop) and the loop's
//! evaluation hook ([`eval_hook`]): greedy benchmark accuracy and the pseudo-label audit of
//! each iteration's Solver into the run directory.

use std::path::Path;

use engine::{EngineConfig, LocalSampler, Prompt, Sampler, SamplingParams, TextRequest};
use eval::rows::{AuditRow, EvalRow};
use model::{ChatMessage, ChatTemplate, LoadOptions, LoadedModel, Model};

use crate::error::{Error, Result};
use crate::rundir::RunDir;
use crate::Config;

/// Progress of one generation call: (samples done, samples total).
pub type GenProgress = Box<dyn FnMut(usize, usize) + Send>;

/// `eval::Generator` on rzero's engine: renders the chat template (when the model has one),
/// tokenizes, samples through [`LocalSampler`], and returns the completion texts.
pub struct SamplerGenerator {
    loaded: LoadedModel,
    model: Model,
    template: Option<ChatTemplate>,
    cfg: EngineConfig,
    on_progress: Option<GenProgress>,
    /// Forced final answers (`--force-answer`; `[eval].force_answer` in a run).
    pub force: Option<engine::ForceAnswer>,
}

impl SamplerGenerator {
    /// Loads `path` (a folder, `.gguf` file or hub id) for inference with the engine limits
    /// `cfg` (its EOS ids are the model's).
    pub fn load(
        path: &str,
        mut cfg: EngineConfig,
        force: Option<engine::ForceAnswer>,
    ) -> Result<Self> {
        let loaded = model::load(path, &LoadOptions::default())
            .map_err(|e| Error::Stage(format!("loading model {path}: {e}")))?;
        let model = loaded
            .model()
            .map_err(|e| Error::Stage(format!("building the model: {e}")))?;
        let template = loaded.chat_template.clone();
        if template.is_none() {
            tracing::info!("the model has no chat template: using the plain Solver prompt");
        }
        cfg.eos_token_ids = loaded.eos_token_ids();
        Ok(SamplerGenerator {
            loaded,
            model,
            template,
            cfg,
            on_progress: None,
            force,
        })
    }

    /// Reports (samples done, samples total) of each generation call to `f`.
    pub fn set_progress(&mut self, f: GenProgress) {
        self.on_progress = Some(f);
    }
}

/// The forced-answer setting as the eval/audit options record it (`None` = off).
pub fn describe_force(f: &Option<engine::ForceAnswer>) -> Option<String> {
    f.as_ref()
        .map(|f| serde_json::to_string(f).expect("serialises"))
}

fn gen_err(e: impl std::fmt::Display) -> eval::Error {
    eval::Error::Generation(e.to_string())
}

impl eval::Generator for SamplerGenerator {
    fn generate(
        &mut self,
        prompts: &[String],
        n: usize,
        p: &eval::GenParams,
    ) -> eval::Result<Vec<Vec<String>>> {
        let sampler = LocalSampler::new(
            &self.model,
            &self.loaded.tokenizer,
            self.template.clone(),
            self.cfg.clone(),
        )
        .map_err(gen_err)?;
        let reserve = sampler
            .engine()
            .force_reserve(&SamplingParams {
                force_answer: self.force.clone(),
                ..SamplingParams::default()
            })
            .map_err(gen_err)?;
        // A forced answer needs room after the prompt.
        let ctx = self
            .model
            .config()
            .max_position_embeddings
            .saturating_sub(reserve);
        let mut requests = Vec::with_capacity(prompts.len());
        let mut index = Vec::with_capacity(prompts.len());
        for (i, text) in prompts.iter().enumerate() {
            let ids = self.loaded.tokenizer.encode(text, false).map_err(gen_err)?;
            if ids.is_empty() {
                return Err(gen_err("a prompt has no tokens"));
            }
            if ids.len() >= ctx {
                // Long BBEH inputs can exceed a small model's context: the question gets an
                // empty response (no answer, graded wrong) instead of stopping the eval.
                tracing::warn!(
                    tokens = ids.len(),
                    context = ctx,
                    "a prompt does not fit the model's context: empty response"
                );
                continue;
            }
            let params = SamplingParams {
                n,
                temperature: p.temperature,
                top_p: p.top_p,
                top_k: p.top_k.unwrap_or(0),
                max_new_tokens: p.max_new_tokens,
                seed: p.seed.wrapping_add(i as u64),
                force_answer: self.force.clone(),
                ..SamplingParams::default()
            };
            params.validate().map_err(gen_err)?;
            requests.push(TextRequest {
                prompt: Prompt::Tokens(ids),
                params,
            });
            index.push(i);
        }
        let mut out = vec![vec![String::new(); n]; prompts.len()];
        if requests.is_empty() {
            return Ok(out);
        }
        let mut none = |_: usize, _: usize| {};
        let on_progress: &mut dyn FnMut(usize, usize) = match self.on_progress.as_mut() {
            Some(f) => f.as_mut(),
            None => &mut none,
        };
        let outputs = sampler
            .generate_with_progress(&requests, on_progress)
            .map_err(gen_err)?;
        for (i, o) in index.into_iter().zip(outputs) {
            out[i] = o.into_iter().map(|c| c.text).collect();
        }
        Ok(out)
    }

    fn format_prompt(&self, system: &str, user: &str) -> eval::Result<String> {
        match &self.template {
            Some(t) => t
                .render(
                    &[ChatMessage::system(system), ChatMessage::user(user)],
                    true,
                )
                .map_err(gen_err),
            None => Ok(eval::plain_prompt(system, user)),
        }
    }

    fn format_user_prompt(&self, user: &str) -> eval::Result<Option<String>> {
        match &self.template {
            Some(t) => t
                .render(&[ChatMessage::user(user)], true)
                .map(Some)
                .map_err(gen_err),
            None => Ok(None),
        }
    }
}

/// The judge of the re-check at `url` ("" = none), its API key read from the environment
/// variable `key_env` ("" = no key).
pub fn make_judge(url: &str, model: &str, key_env: &str) -> Result<Option<remote::OpenAiJudge>> {
    if url.trim().is_empty() {
        return Ok(None);
    }
    let api_key = if key_env.is_empty() {
        None
    } else {
        Some(std::env::var(key_env).map_err(|_| {
            Error::Config(format!(
                "the judge's API key variable {key_env} is not set (set it, or name another \
                 variable; \"\" sends no key)"
            ))
        })?)
    };
    let cfg = remote::JudgeConfig::new(url, model, api_key);
    remote::OpenAiJudge::new(&cfg)
        .map(Some)
        .map_err(|e| Error::Config(e.to_string()))
}

/// The loop's evaluation hook: `(model path, run dir, iteration)`.
pub type EvalHookFn = Box<dyn FnMut(&str, &RunDir, usize) -> Result<()>>;

/// The loop's evaluation hook for a resolved config (None when eval and audit are off):
/// greedy benchmark accuracy of the given model into `<dir>/` (`results.json`) and the
/// pseudo-label audit into `<dir>/audit.json`, where `<dir>` is `RUN/base_eval` for the base
/// model and `RUN/iter_N/eval` for iteration N's Solver. Both are resumable.
pub fn eval_hook(cfg: &Config) -> Option<EvalHookFn> {
    if cfg.eval.benchmarks.is_empty() && cfg.audit.benchmarks.is_empty() {
        return None;
    }
    let cfg = cfg.clone();
    Some(Box::new(
        move |model_path: &str, run: &RunDir, iter: usize| {
            eval_for_run(&cfg, model_path, run, iter)
                .map_err(|e| Error::Stage(format!("evaluation: {e}")))
        },
    ))
}

/// Checks what the evaluation hook of [`eval_hook`] will need (benchmark names and files, the
/// judge's settings) before a run writes anything.
pub fn check_eval(cfg: &Config) -> Result<()> {
    let list = |names: &[String], key: &str| {
        eval::Benchmark::load_list(&names.join(","))
            .map(|_| ())
            .map_err(|e| Error::Config(format!("{key}: {e}")))
    };
    list(&cfg.eval.benchmarks, "eval.benchmarks")?;
    list(&cfg.audit.benchmarks, "audit.benchmarks")?;
    if !cfg.eval.benchmarks.is_empty() {
        make_judge(
            &cfg.eval.judge_url,
            &cfg.eval.judge_model,
            &cfg.eval.judge_api_key_env,
        )
        .map_err(|e| Error::Config(format!("eval.judge_url: {e}")))?;
    }
    Ok(())
}

/// `path` relative to `root` when it lies inside it, else `path` unchanged.
fn run_relative(path: &str, root: &Path) -> String {
    let p = Path::new(path);
    let abs = |x: &Path| std::path::absolute(x).unwrap_or_else(|_| x.to_path_buf());
    match abs(p).strip_prefix(abs(root)) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

fn eval_err(e: eval::Error) -> Error {
    Error::Stage(e.to_string())
}

fn eval_for_run(cfg: &Config, model_path: &str, run: &RunDir, iter: usize) -> Result<()> {
    let dir = if iter == 0 {
        run.base_eval_dir()
    } else {
        run.iter_path(iter, "eval")
    };
    let ecfg = EngineConfig {
        max_batch_size: cfg.engine.max_batch_size,
        ..EngineConfig::default()
    };
    let mut gen = SamplerGenerator::load(model_path, ecfg, None)?;
    // A model inside the run (an iteration's Solver) is recorded by its path relative to
    // the run, so the run folder can be moved (and resumed) elsewhere.
    let recorded = run_relative(model_path, run.root());
    let limit = |n: usize| (n > 0).then_some(n);
    let mut evals = Vec::new();
    if !cfg.eval.benchmarks.is_empty() {
        let benches =
            eval::Benchmark::load_list(&cfg.eval.benchmarks.join(",")).map_err(eval_err)?;
        let opts = eval::EvalOptions {
            model: recorded.clone(),
            limit: limit(cfg.eval.limit),
            per_category: limit(cfg.eval.per_category),
            samples: 0,
            max_new_tokens: cfg.eval.max_new_tokens,
            batch_size: cfg.engine.max_batch_size,
            seed: cfg.seed,
            answer: cfg.eval.answer,
            force_answer: describe_force(&cfg.force_answer(cfg.eval.force_answer)),
            ..Default::default()
        };
        let mut judge = make_judge(
            &cfg.eval.judge_url,
            &cfg.eval.judge_model,
            &cfg.eval.judge_api_key_env,
        )?;
        let judge_ref = judge.as_mut().map(|j| j as &mut dyn eval::Judge);
        gen.force = cfg.force_answer(cfg.eval.force_answer);
        let r = eval::run_eval_judged(&mut gen, judge_ref, &benches, &opts, &dir, &mut |_| {})
            .map_err(eval_err)?;
        tracing::info!(iter, "{}", eval::format_table(&r));
        evals.extend(r.benchmarks.iter().map(|b| EvalRow::of(iter, b)));
    }
    let mut audits = Vec::new();
    if !cfg.audit.benchmarks.is_empty() {
        let benches =
            eval::Benchmark::load_list(&cfg.audit.benchmarks.join(",")).map_err(eval_err)?;
        // The audit answers as the dataset stage labels: its Solver sampling and forced
        // answers (only the token budget is the audit's own, `audit.max_new_tokens`).
        let ds = &cfg.dataset.solver_sampling;
        let opts = eval::AuditOptions {
            model: recorded.clone(),
            limit: limit(cfg.audit.limit),
            m: cfg.audit.samples,
            temperature: ds.temperature as f32,
            top_p: ds.top_p as f32,
            top_k: Some(ds.top_k),
            max_new_tokens: cfg.audit.max_new_tokens,
            filter: reward::vote::FilterBand {
                low: cfg.dataset.min_p_hat,
                high: cfg.dataset.max_p_hat,
                ..Default::default()
            },
            batch_size: cfg.engine.max_batch_size,
            seed: cfg.seed,
            force_answer: describe_force(&cfg.force_answer(cfg.dataset.solver_force_answer)),
        };
        gen.force = cfg.force_answer(cfg.dataset.solver_force_answer);
        let a = eval::run_audit(&mut gen, &benches, &opts, &dir, &mut |_| {}).map_err(eval_err)?;
        audits.push(AuditRow::of(iter, &a));
    }
    run.set_stage_metrics(iter, "eval", &evals)?;
    run.set_stage_metrics(iter, "audit", &audits)?;
    Ok(())
}
