//! The R-Zero loop, top to bottom: resolve the config, open (or resume) the run directory,
//! then per iteration (1) train the Challenger against the frozen Solver, (2) build the
//! dataset with the new Challenger and the frozen Solver, (3) train the Solver on it,
//! (4) evaluate. Iteration `i` starts from iteration `i−1`'s models (the base model for
//! `i = 1`), as the reference's `scripts/main.sh` does.
//!
//! Resume: every stage's output is written atomically and checked before the stage runs;
//! training phases checkpoint after every GRPO step (`iter_N/.<phase>-train/`) and the
//! dataset is journaled per chunk, so a killed run redoes at most one step or chunk. A stage
//! ends with one commit point (its metric rows first, then its output; its in-progress folder
//! is removed after), and a rerun first removes what a kill left half-written. Nothing is
//! written to the run folder before the config, the base model and the remote Solver
//! settings are checked.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use tracing::{info, info_span, warn};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::Group;
use crate::rollout::Role;
use crate::rundir::{Phase, RunDir, State};
use eval::rows::{DatasetRow, SkippedRow};

/// What the loop reports to its caller (the CLI draws progress bars from it).
#[derive(Debug, Clone)]
pub enum Event {
    /// A stage started: (iteration, stage name, units of work).
    StageStart {
        /// Iteration (0 = base-model evaluation).
        iter: usize,
        /// Stage name.
        stage: &'static str,
        /// Units (steps or chunks).
        total: usize,
    },
    /// Progress inside the stage.
    StageProgress {
        /// Units done.
        done: usize,
    },
    /// A stage ended with a one-line summary.
    StageEnd {
        /// Summary line.
        summary: String,
    },
}

/// The evaluation hook: `(model folder or path, run dir, iteration)`.
pub type EvalHook<'a> = &'a mut dyn FnMut(&str, &RunDir, usize) -> Result<()>;

/// Builds one GRPO step's groups and metrics from (step, live policy).
type MakeGroups<'a> = &'a mut dyn FnMut(usize, &model::Model) -> Result<(Vec<Group>, Value)>;

/// Options of one run.
pub struct RunOptions<'a> {
    /// The resolved configuration.
    pub config: Config,
    /// The run directory.
    pub out: PathBuf,
    /// The resolved base-model location (folder, .gguf, or hub id).
    pub model_path: String,
    /// Progress callback.
    pub on_event: &'a mut dyn FnMut(Event),
    /// Evaluation hook: `(model folder or path, run dir, iteration)`; None disables eval.
    pub eval: Option<EvalHook<'a>>,
}

/// Runs (or resumes) the loop to the configured number of iterations.
pub fn run(opts: RunOptions<'_>) -> Result<()> {
    let RunOptions {
        config: cfg,
        out,
        model_path,
        on_event,
        mut eval,
    } = opts;
    let (run, mut state, mut solver_client) = open_run(&cfg, &out, &model_path)?;
    // 3. Base model evaluation (once).
    if let Some(ev) = eval.as_mut() {
        eval_stage(&run, &mut state, 0, &model_path, &mut **ev, on_event)?;
    }
    for iter in 1..=cfg.iterations {
        let _span = info_span!("iteration", iter).entered();
        let prev = |phase| {
            if iter == 1 {
                model_path.clone()
            } else {
                path_str(&run.model_dir(iter - 1, phase))
            }
        };
        let (prev_solver, prev_challenger) = (prev(Phase::Solver), prev(Phase::Challenger));
        std::fs::create_dir_all(run.iter_dir(iter)).map_err(|e| Error::Io {
            path: run.iter_dir(iter),
            source: e,
        })?;
        run.clean_leftovers(iter)?;
        // Remote Solver servers move to the previous iteration's Solver.
        if let Some(client) = solver_client.as_mut() {
            sync_remote_solver(&cfg, &run, iter, &prev_solver, client)?;
        }
        let ctx = Stage {
            cfg: &cfg,
            run: &run,
            iter,
            prev_solver: &prev_solver,
            solver_client: solver_client.as_ref(),
        };
        // 4. Challenger phase.
        challenger_stage(&ctx, &prev_challenger, &mut state, on_event)?;
        // 5. Dataset.
        let items = dataset_stage(&ctx, &mut state, on_event)?;
        let kept: Vec<&crate::dataset::DatasetItem> = items.iter().filter(|i| i.kept).collect();
        // 6. Solver phase (skipped, and reported, when nothing was kept).
        solver_stage(&ctx, &kept, &mut state, on_event)?;
        // 7. Evaluation of the new Solver.
        if let Some(ev) = eval.as_mut() {
            let solver_dir = path_str(&run.model_dir(iter, Phase::Solver));
            eval_stage(&run, &mut state, iter, &solver_dir, &mut **ev, on_event)?;
        }
        // (a resumed run passing over a finished iteration leaves the journal head alone)
        if state.completed_iterations < iter {
            state.completed_iterations = iter;
            set_stage(&run, &mut state, iter, "done", 0)?;
        }
    }
    run.rebuild_metrics()?;
    Ok(())
}

/// What every stage of an iteration reads.
struct Stage<'a> {
    cfg: &'a Config,
    run: &'a RunDir,
    iter: usize,
    /// The frozen Solver of this iteration (the previous iteration's, or the base model).
    prev_solver: &'a str,
    solver_client: Option<&'a remote::OpenAiClient>,
}

/// Steps 1-2: checks what can fail cheaply before anything is written to `out` (so a bad
/// --model or remote setting cannot leave a config.toml behind that the corrected rerun
/// would refuse as "a different configuration"), then opens the run directory: a new run
/// writes its resolved config; a resumed one may only have asked for more (or fewer)
/// iterations. Leftovers of a kill go first.
fn open_run(
    cfg: &Config,
    out: &Path,
    model_path: &str,
) -> Result<(RunDir, State, Option<remote::OpenAiClient>)> {
    cfg.validate()?;
    let cfg_text = cfg.to_commented_toml();
    let cfg_path = RunDir::at(out).config_path();
    let resumed_iterations = check_resumed_config(&cfg_path, cfg, out)?;
    if resumed_iterations.is_none() {
        // A new run: the base model must load (a resumed run checked it when it started).
        model::load(model_path, &model::LoadOptions::default())
            .map_err(|e| Error::Stage(format!("loading the model {model_path}: {e}")))?;
    }
    let solver_client = crate::rollout::solver_client(&cfg.remote)?;
    let run = RunDir::create(out)?;
    run.clean_leftovers_top()?;
    if resumed_iterations != Some(cfg.iterations) {
        crate::rundir::write_atomic(&cfg_path, cfg_text.as_bytes())?;
    }
    let mut state = run.state()?;
    state.iterations = cfg.iterations;
    Ok((run, state, solver_client))
}

/// Before iteration `iter` (> 1) samples anything: the remote Solver servers reload the
/// previous iteration's Solver (unless the dataset is done), or a warning says they keep
/// their weights.
fn sync_remote_solver(
    cfg: &Config,
    run: &RunDir,
    iter: usize,
    prev_solver: &str,
    client: &mut remote::OpenAiClient,
) -> Result<()> {
    if iter > 1 && !cfg.remote.reload_command.is_empty() && !run.dataset_path(iter).exists() {
        info!(iter, checkpoint = %prev_solver, "reloading the remote Solver servers");
        client
            .sync_to(Path::new(prev_solver))
            .map_err(|e| Error::Stage(format!("reloading the remote Solver: {e}")))?;
    } else if iter > 1 && cfg.remote.reload_command.is_empty() {
        warn!(
            iter,
            "remote.reload_command is empty: the remote servers keep their Solver weights"
        );
    }
    Ok(())
}

/// Evaluates `model` as iteration `iter` (0 = the base model) unless its `done` marker
/// exists.
fn eval_stage(
    run: &RunDir,
    state: &mut State,
    iter: usize,
    model: &str,
    ev: &mut dyn FnMut(&str, &RunDir, usize) -> Result<()>,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let done = run.eval_done_path(iter);
    if done.exists() {
        return Ok(());
    }
    enter_stage(
        run,
        state,
        iter,
        if iter == 0 { "base-eval" } else { "eval" },
    )?;
    (on_event)(Event::StageStart {
        iter,
        stage: "eval",
        total: 1,
    });
    let dir = run.eval_dir(iter);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    ev(model, run, iter)?;
    crate::rundir::write_atomic(&done, b"")?;
    let summary = if iter == 0 {
        "base model evaluated".to_string()
    } else {
        format!("iteration {iter} solver evaluated")
    };
    (on_event)(Event::StageEnd { summary });
    Ok(())
}

/// The Challenger phase: GRPO against the frozen Solver (a finished phase's in-progress
/// folder is a leftover of a kill between its export and the cleanup).
fn challenger_stage(
    ctx: &Stage<'_>,
    prev_challenger: &str,
    state: &mut State,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let (cfg, run, iter) = (ctx.cfg, ctx.run, ctx.iter);
    if run.model_dir(iter, Phase::Challenger).exists() {
        let _ = std::fs::remove_dir_all(run.train_work_dir(iter, Phase::Challenger));
        return Ok(());
    }
    let _s = info_span!("challenger").entered();
    enter_stage(run, state, iter, "challenger")?;
    let solver = model::load(ctx.prev_solver, &model::LoadOptions::default())
        .map_err(stage("loading the Solver"))?;
    let solver_model = solver.model().map_err(stage("building the Solver"))?;
    let solver_role = solver_role(ctx.cfg, &solver_model, &solver, ctx.solver_client)?;
    let start = model::load(prev_challenger, &model::LoadOptions::default())
        .map_err(stage("loading the Challenger"))?;
    train_phase(
        cfg,
        run,
        iter,
        Phase::Challenger,
        &start,
        &cfg.challenger.optim,
        state,
        on_event,
        &mut |step, policy| {
            let c_role = Role::local(policy, &start, &ctx.cfg.engine)?;
            rollout_row(crate::challenger::make_groups(
                cfg,
                iter,
                step,
                &c_role,
                &solver_role,
            ))
        },
    )
}

/// The dataset: read back when committed, else built with the new Challenger and the
/// frozen Solver, its metric row written, then committed.
fn dataset_stage(
    ctx: &Stage<'_>,
    state: &mut State,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<crate::dataset::DatasetItem>> {
    let (cfg, run, iter) = (ctx.cfg, ctx.run, ctx.iter);
    let dataset_path = run.dataset_path(iter);
    if dataset_path.exists() {
        // a kill after the commit point may have left the journal behind
        let _ = std::fs::remove_dir_all(run.dataset_chunks_dir(iter));
        return crate::dataset::load(&dataset_path);
    }
    let _s = info_span!("dataset").entered();
    enter_stage(run, state, iter, "dataset")?;
    let n_chunks = cfg.dataset.num_questions.div_ceil(cfg.dataset.chunk);
    (on_event)(Event::StageStart {
        iter,
        stage: "dataset",
        total: n_chunks,
    });
    let t0 = Instant::now();
    let ch = model::load(
        &path_str(&run.model_dir(iter, Phase::Challenger)),
        &model::LoadOptions::default(),
    )
    .map_err(stage("loading the Challenger"))?;
    let ch_model = ch.model().map_err(stage("building the Challenger"))?;
    let so = model::load(ctx.prev_solver, &model::LoadOptions::default())
        .map_err(stage("loading the Solver"))?;
    let so_model = so.model().map_err(stage("building the Solver"))?;
    let (items, summary) = crate::dataset::build(
        cfg,
        run,
        iter,
        &Role::local(&ch_model, &ch, &ctx.cfg.engine)?,
        &solver_role(ctx.cfg, &so_model, &so, ctx.solver_client)?,
        &mut |done, _| {
            // journal head: chunks done (the chunk files themselves are the journal;
            // chunks read back on resume do not move it)
            if done > state.step {
                if let Err(e) = set_stage(run, state, iter, "dataset", done) {
                    warn!("cannot update state.json: {e}");
                }
            }
            (on_event)(Event::StageProgress { done });
        },
    )?;
    let row = DatasetRow {
        iter,
        phase: "dataset".into(),
        step: 0,
        generated: summary.generated,
        valid: summary.valid,
        kept: summary.kept,
        truncated: summary.truncated,
        p_hat_hist: p_hat_histogram(&items),
        label_agreement_mean: mean(items.iter().map(|i| i.p_hat)),
        seconds: t0.elapsed().as_secs_f64(),
    };
    run.set_stage_metrics(iter, "dataset", &[row])?;
    // the commit point: metrics first, then dataset.jsonl, then the journal goes
    crate::dataset::commit(&dataset_path, &items)?;
    let _ = std::fs::remove_dir_all(run.dataset_chunks_dir(iter));
    let line = format!(
        "iteration {iter} dataset: {} generated, {} well-formed, {} kept ({:.0}s)",
        summary.generated,
        summary.valid,
        summary.kept,
        t0.elapsed().as_secs_f64()
    );
    info!("{line}");
    (on_event)(Event::StageEnd { summary: line });
    Ok(items)
}

/// The Solver phase: GRPO on the kept questions; with none kept, the phase is skipped (a
/// row says so) and the Solver saved unchanged.
fn solver_stage(
    ctx: &Stage<'_>,
    kept: &[&crate::dataset::DatasetItem],
    state: &mut State,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let (cfg, run, iter) = (ctx.cfg, ctx.run, ctx.iter);
    let solver_dir = run.model_dir(iter, Phase::Solver);
    if solver_dir.exists() {
        let _ = std::fs::remove_dir_all(run.train_work_dir(iter, Phase::Solver));
        return Ok(());
    }
    let _s = info_span!("solver").entered();
    enter_stage(run, state, iter, "solver")?;
    let start = model::load(ctx.prev_solver, &model::LoadOptions::default())
        .map_err(stage("loading the Solver"))?;
    if !kept.is_empty() {
        return train_phase(
            cfg,
            run,
            iter,
            Phase::Solver,
            &start,
            &cfg.solver.optim,
            state,
            on_event,
            &mut |step, policy| {
                rollout_row(crate::solver::make_groups(
                    cfg,
                    iter,
                    step,
                    kept,
                    &Role::local(policy, &start, &ctx.cfg.engine)?,
                ))
            },
        );
    }
    warn!(
        iter,
        "empty dataset: no question in the agreement band; the Solver phase is skipped"
    );
    let row = SkippedRow {
        iter,
        phase: "solver".into(),
        step: 0,
        skipped: "empty dataset".into(),
    };
    run.set_stage_metrics(iter, "solver", &[row])?;
    model::save_hf_folder(
        &solver_dir,
        &start.config,
        &start.weights,
        &start.tokenizer,
        start.chat_template.as_ref(),
        &start.generation,
    )
    .map_err(stage("saving the Solver"))?;
    (on_event)(Event::StageEnd {
        summary: format!("iteration {iter} solver: skipped (empty dataset)"),
    });
    Ok(())
}

fn stage<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Stage(format!("{what}: {e}"))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Counts of p̂ in ten bins [0, 0.1), …, [0.9, 1.0].
pub fn p_hat_histogram(items: &[crate::dataset::DatasetItem]) -> Vec<usize> {
    let mut h = vec![0usize; 10];
    for i in items {
        let b = ((i.p_hat * 10.0).floor() as usize).min(9);
        h[b] += 1;
    }
    h
}

/// The frozen Solver: on the remote servers when `remote.solver_urls` is set, else on the
/// in-process engine.
fn solver_role<'a>(
    cfg: &Config,
    model: &'a model::Model,
    loaded: &'a model::LoadedModel,
    client: Option<&'a remote::OpenAiClient>,
) -> Result<Role<'a>> {
    match client {
        Some(c) => Ok(Role::with_sampler(loaded, Box::new(c))),
        None => Role::local(model, loaded, &cfg.engine),
    }
}

fn set_stage(run: &RunDir, state: &mut State, iter: usize, stage: &str, step: usize) -> Result<()> {
    state.iteration = iter;
    state.stage = stage.to_string();
    state.step = step;
    run.set_state(state)
}

/// Records that `stage` of `iter` runs (its progress at 0), unless `state.json` already
/// says so (a resumed stage keeps the progress it recorded).
fn enter_stage(run: &RunDir, state: &mut State, iter: usize, stage: &str) -> Result<()> {
    if state.iteration == iter && state.stage == stage {
        return Ok(());
    }
    set_stage(run, state, iter, stage, 0)
}

/// For a resumed run (`config.toml` present): checks that `cfg` matches the recorded
/// configuration except for `iterations`, and returns the recorded number of iterations.
/// None for a new run. Writes nothing.
fn check_resumed_config(cfg_path: &Path, cfg: &Config, out: &Path) -> Result<Option<usize>> {
    let old = match std::fs::read_to_string(cfg_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                path: cfg_path.to_path_buf(),
                source: e,
            })
        }
    };
    let old_cfg = Config::from_toml(&old).map_err(|e| Error::BadFile {
        path: cfg_path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut a = old_cfg.clone();
    let mut b = cfg.clone();
    // more iterations may be asked of a finished run; everything else must match
    a.iterations = 0;
    b.iterations = 0;
    if a != b {
        return Err(Error::Mismatch(format!(
            "{} was started with a different configuration; use a new --out or the same settings",
            out.display()
        )));
    }
    Ok(Some(old_cfg.iterations))
}

/// One GRPO phase through the one training loop ([`train::driver::run`]): a rollout per
/// step (journaled), old log-probs once, shuffled mini-batches of `global_batch_size`
/// prompts with one AdamW update each, and a checkpoint after every step.
/// `make_groups(step, policy)` samples and rewards the step's rollout with the live policy.
#[allow(clippy::too_many_arguments)]
fn train_phase(
    cfg: &Config,
    run: &RunDir,
    iter: usize,
    phase: Phase,
    start: &model::LoadedModel,
    optim: &train::OptimKnobs,
    state: &mut State,
    on_event: &mut dyn FnMut(Event),
    make_groups: MakeGroups<'_>,
) -> Result<()> {
    let name = phase.name();
    let work = run.train_work_dir(iter, phase);
    let seed = crate::rollout::derive_seed(cfg.seed, &[iter as u64, phase_seed_tag(phase)]);
    // the temperature the phase's rollouts sample at, which its log-probs use
    let temperature = match phase {
        Phase::Challenger => cfg.challenger.sampling.temperature,
        Phase::Solver => cfg.solver.sampling.temperature,
    };
    let mut extra = serde_json::Map::new();
    extra.insert("iter".into(), json!(iter));
    extra.insert("phase".into(), json!(name));
    let files = crate::policy::PhaseFiles {
        work: work.clone(),
        metrics: run.stage_metrics_path(iter, name),
        row_extra: extra,
    };
    (on_event)(Event::StageStart {
        iter,
        stage: name,
        total: optim.steps,
    });
    let t_phase = Instant::now();
    let mut rollout = |step: u64,
                       policy: &model::Model,
                       _rng: &mut train::ChaCha8Rng|
     -> train::Result<train::RolloutBatch> {
        let (groups, metrics) =
            make_groups(step as usize, policy).map_err(|e| train::Error::Invalid(e.to_string()))?;
        let metrics = match metrics {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        Ok(train::RolloutBatch { groups, metrics })
    };
    let mut state_err: Option<Error> = None;
    let trainer = crate::policy::run_phase(
        start,
        optim,
        temperature,
        seed,
        &files,
        &mut rollout,
        &mut |p| match p {
            train::Progress::Rollout { step, .. } => {
                if let Err(e) = set_stage(run, state, iter, name, step as usize - 1) {
                    state_err.get_or_insert(e);
                }
            }
            train::Progress::Update(_) => {}
            train::Progress::Step(_, stats) => {
                info!(
                    iter,
                    phase = name,
                    step = stats.step,
                    reward_mean = stats.reward_mean,
                    loss = stats.means.loss.unwrap_or(f64::NAN),
                    ppo_kl = stats.means.ppo_kl.unwrap_or(f64::NAN),
                    "grpo step"
                );
                (on_event)(Event::StageProgress {
                    done: stats.step as usize,
                });
            }
        },
    )
    .map_err(|e| match e {
        Error::Diverged(m) => Error::Diverged(format!(
            "iteration {iter} {name}: {m}; the last good checkpoint is {}",
            work.join("checkpoint").display()
        )),
        e => e,
    })?;
    if let Some(e) = state_err {
        return Err(e);
    }
    run.rebuild_metrics()?;
    let rows: Vec<eval::rows::MetricRow> = run.stage_metrics(iter, name)?;
    crate::policy::export(&trainer, &run.model_dir(iter, phase), start)?;
    let _ = std::fs::remove_dir_all(&work);
    let reward = mean(
        rows.iter()
            .filter(|r| r.update.is_none())
            .filter_map(|r| r.reward_mean),
    );
    let line = format!(
        "iteration {iter} {name}: {} GRPO steps, mean reward {} ({:.0}s)",
        optim.steps,
        reward.map_or("n/a".to_string(), |r| format!("{r:.3}")),
        t_phase.elapsed().as_secs_f64()
    );
    info!("{line}");
    (on_event)(Event::StageEnd { summary: line });
    Ok(())
}

/// A rollout's groups with its typed metrics as the fields of the step's row.
fn rollout_row<T: serde::Serialize>(r: Result<(Vec<Group>, T)>) -> Result<(Vec<Group>, Value)> {
    let (groups, metrics) = r?;
    let v = serde_json::to_value(metrics).map_err(|e| Error::Stage(e.to_string()))?;
    Ok((groups, v))
}

/// The tag of a phase's seed (`derive_seed(seed, [iter, tag])`).
fn phase_seed_tag(phase: Phase) -> u64 {
    match phase {
        Phase::Challenger => 10,
        Phase::Solver => 11,
    }
}
