//! One module per subcommand.

pub mod audit;
pub mod bench;
pub mod bench_cluster;
pub mod bench_generate;
pub mod bench_grade;
pub mod bench_model;
pub mod bench_shared;
pub mod bench_train;
pub mod cluster;
pub mod config;
pub mod download;
pub mod eval;
pub mod extract;
pub mod generate;
pub mod grade;
pub mod grpo;

pub mod report;
pub mod run;
pub mod score;
pub mod serve;

/// Resolves a model argument: `smollm2` is the embedded default model (the SmolLM2-135M
/// GGUF fetched from PyPI by `scripts/fetch-smollm2.sh` into the cache); anything else is
/// passed through (folder, `.gguf` file or hub id).
pub fn resolve_model(spec: &str) -> anyhow::Result<String> {
    if spec.is_empty() {
        anyhow::bail!(
            "no model given: pass --model PATH (folder, .gguf file, hub id, or `smollm2`)"
        );
    }
    if spec != "smollm2" {
        return Ok(spec.to_string());
    }
    if let Some(p) = std::env::var_os("RZERO_SMOLLM2_GGUF").filter(|p| !p.is_empty()) {
        return Ok(std::path::PathBuf::from(p).to_string_lossy().into_owned());
    }
    let p = model::smollm2::cached_gguf();
    if p.is_file() {
        return Ok(p.to_string_lossy().into_owned());
    }
    anyhow::bail!(
        "the embedded default model is not in the cache ({}); fetch it with `bash scripts/fetch-smollm2.sh`",
        p.display()
    )
}

/// The loop's evaluation hook for a resolved config (None when eval and audit are off):
/// greedy benchmark accuracy of the given model into `<dir>/` (`results.json`) and the
/// pseudo-label audit into `<dir>/audit.json`, where `<dir>` is `RUN/base_eval` for the base
/// model and `RUN/iter_N/eval` for iteration N's Solver. Both are resumable.
#[allow(clippy::type_complexity)]
pub fn eval_hook(
    cfg: &rzero::Config,
) -> Option<Box<dyn FnMut(&str, &rzero::rundir::RunDir, usize) -> rzero::Result<()>>> {
    if cfg.eval.benchmarks.is_empty() && cfg.audit.benchmarks.is_empty() {
        return None;
    }
    let cfg = cfg.clone();
    Some(Box::new(
        move |model_path: &str, run: &rzero::rundir::RunDir, iter: usize| {
            eval_for_run(&cfg, model_path, run, iter)
                .map_err(|e| rzero::Error::Stage(format!("evaluation: {e:#}")))
        },
    ))
}

/// Checks what the evaluation hook of [`eval_hook`] will need (benchmark names and files, the
/// judge's settings) before a run writes anything.
pub fn check_eval(cfg: &rzero::Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    ::eval::Benchmark::load_list(&cfg.eval.benchmarks.join(",")).context("eval.benchmarks")?;
    ::eval::Benchmark::load_list(&cfg.audit.benchmarks.join(",")).context("audit.benchmarks")?;
    if !cfg.eval.benchmarks.is_empty() {
        eval::make_judge(
            &cfg.eval.judge_url,
            &cfg.eval.judge_model,
            &cfg.eval.judge_api_key_env,
        )
        .context("eval.judge_url")?;
    }
    Ok(())
}

/// `path` relative to `root` when it lies inside it, else `path` unchanged.
fn run_relative(path: &str, root: &std::path::Path) -> String {
    let p = std::path::Path::new(path);
    let abs = |x: &std::path::Path| std::path::absolute(x).unwrap_or_else(|_| x.to_path_buf());
    match abs(p).strip_prefix(abs(root)) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

fn eval_for_run(
    cfg: &rzero::Config,
    model_path: &str,
    run: &rzero::rundir::RunDir,
    iter: usize,
) -> anyhow::Result<()> {
    let dir = if iter == 0 {
        run.base_eval_dir()
    } else {
        run.iter_path(iter, "eval")
    };
    let engine = eval::EngineArgs {
        batch_size: cfg.engine.max_batch_size,
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::hidden();
    let mut gen = eval::EngineGenerator::load(model_path, &engine, bar)?;
    // A model inside the run (an iteration's Solver) is recorded by its path relative to
    // the run, so the run folder can be moved (and resumed) elsewhere.
    let recorded = run_relative(model_path, run.root());
    let limit = |n: usize| (n > 0).then_some(n);
    let mut rows = Vec::new();
    if !cfg.eval.benchmarks.is_empty() {
        let benches = ::eval::Benchmark::load_list(&cfg.eval.benchmarks.join(","))?;
        let opts = ::eval::EvalOptions {
            model: recorded.clone(),
            limit: limit(cfg.eval.limit),
            per_category: limit(cfg.eval.per_category),
            samples: 0,
            max_new_tokens: cfg.eval.max_new_tokens,
            batch_size: cfg.engine.max_batch_size,
            seed: cfg.seed,
            answer: cfg.eval.answer,
            force_answer: eval::describe_force(&cfg.force_answer(cfg.eval.force_answer)),
            ..Default::default()
        };
        let mut judge = eval::make_judge(
            &cfg.eval.judge_url,
            &cfg.eval.judge_model,
            &cfg.eval.judge_api_key_env,
        )?;
        let judge_ref = judge.as_mut().map(|j| j as &mut dyn ::eval::Judge);
        gen.force = cfg.force_answer(cfg.eval.force_answer);
        let r = ::eval::run_eval_judged(&mut gen, judge_ref, &benches, &opts, &dir, &mut |_| {})?;
        tracing::info!(iter, "{}", ::eval::format_table(&r));
        for b in &r.benchmarks {
            let mut row = serde_json::json!({"iter": iter, "phase": "eval", "bench": b.name, "pass@1": b.pass_at_1, "n": b.n, "kind": b.kind});
            if let Some(j) = b.pass_at_1_judged {
                row["pass@1+judge"] = serde_json::json!(j);
            }
            rows.push(row);
        }
    }
    if !cfg.audit.benchmarks.is_empty() {
        let benches = ::eval::Benchmark::load_list(&cfg.audit.benchmarks.join(","))?;
        let opts = ::eval::AuditOptions {
            model: recorded.clone(),
            limit: limit(cfg.audit.limit),
            m: cfg.audit.samples,
            max_new_tokens: cfg.audit.max_new_tokens,
            filter: reward::vote::FilterBand {
                low: cfg.dataset.min_p_hat,
                high: cfg.dataset.max_p_hat,
                ..Default::default()
            },
            batch_size: cfg.engine.max_batch_size,
            seed: cfg.seed,
            force_answer: eval::describe_force(&cfg.force_answer(cfg.dataset.solver_force_answer)),
            ..Default::default()
        };
        // the audit answers as the dataset stage does
        gen.force = cfg.force_answer(cfg.dataset.solver_force_answer);
        let a = ::eval::run_audit(&mut gen, &benches, &opts, &dir, &mut |_| {})?;
        rows.push(serde_json::json!({
            "iter": iter, "phase": "audit", "n": a.n, "label_accuracy": a.label_accuracy,
            "kept": a.kept, "kept_label_accuracy": a.kept_label_accuracy,
        }));
    }
    let evals: Vec<_> = rows
        .iter()
        .filter(|r| r["phase"] == "eval")
        .cloned()
        .collect();
    let audits: Vec<_> = rows
        .iter()
        .filter(|r| r["phase"] == "audit")
        .cloned()
        .collect();
    run.set_stage_metrics(iter, "eval", &evals)?;
    run.set_stage_metrics(iter, "audit", &audits)?;
    Ok(())
}
