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

use crate::config::{Config, Optim};
use crate::error::{Error, Result};
use crate::policy::Group;
use crate::rollout::Role;
use crate::rundir::{RunDir, State};

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
    // 1. Everything that can fail cheaply is checked before anything is written to `out`,
    //    so a bad --model or remote setting cannot leave a config.toml behind that the
    //    corrected rerun would refuse as "a different configuration".
    cfg.validate()?;
    let cfg_text = cfg.to_commented_toml();
    let cfg_path = out.join("config.toml");
    let resumed_iterations = check_resumed_config(&cfg_path, &cfg, &out)?;
    if resumed_iterations.is_none() {
        // A new run: the base model must load (a resumed run checked it when it started).
        model::load(&model_path, &model::LoadOptions::default())
            .map_err(|e| Error::Stage(format!("loading the model {model_path}: {e}")))?;
    }
    let mut solver_client = crate::rollout::solver_client(&cfg.remote)?;

    // 2. The run directory: a new run writes its resolved config; a resumed one may only
    //    have asked for more (or fewer) iterations. Leftovers of a kill go first.
    let run = RunDir::create(&out)?;
    run.clean_leftovers_top()?;
    if resumed_iterations != Some(cfg.iterations) {
        crate::rundir::write_atomic(&cfg_path, cfg_text.as_bytes())?;
    }
    let mut state = run.state()?;
    state.iterations = cfg.iterations;

    // 3. Base model evaluation (once).
    if let Some(ev) = eval.as_mut() {
        if !run.base_eval_dir().join("done").exists() {
            enter_stage(&run, &mut state, 0, "base-eval")?;
            (on_event)(Event::StageStart {
                iter: 0,
                stage: "eval",
                total: 1,
            });
            std::fs::create_dir_all(run.base_eval_dir()).map_err(|e| Error::Io {
                path: run.base_eval_dir(),
                source: e,
            })?;
            ev(&model_path, &run, 0)?;
            crate::rundir::write_atomic(&run.base_eval_dir().join("done"), b"")?;
            (on_event)(Event::StageEnd {
                summary: "base model evaluated".into(),
            });
        }
    }

    for iter in 1..=cfg.iterations {
        let _span = info_span!("iteration", iter).entered();
        let prev_solver = if iter == 1 {
            model_path.clone()
        } else {
            path_str(&run.iter_path(iter - 1, "solver"))
        };
        let prev_challenger = if iter == 1 {
            model_path.clone()
        } else {
            path_str(&run.iter_path(iter - 1, "challenger"))
        };
        std::fs::create_dir_all(run.iter_dir(iter)).map_err(|e| Error::Io {
            path: run.iter_dir(iter),
            source: e,
        })?;
        run.clean_leftovers(iter)?;

        // Remote Solver servers move to the previous iteration's Solver.
        let challenger_dir = run.iter_path(iter, "challenger");
        let dataset_path = run.iter_path(iter, "dataset.jsonl");
        if let Some(client) = solver_client.as_mut() {
            if iter > 1 && !cfg.remote.reload_command.is_empty() && !dataset_path.exists() {
                info!(iter, checkpoint = %prev_solver, "reloading the remote Solver servers");
                client
                    .sync_to(Path::new(&prev_solver))
                    .map_err(|e| Error::Stage(format!("reloading the remote Solver: {e}")))?;
            } else if iter > 1 && cfg.remote.reload_command.is_empty() {
                warn!(
                    iter,
                    "remote.reload_command is empty: the remote servers keep their Solver weights"
                );
            }
        }

        // 4. Challenger phase (a finished phase's in-progress folder is a leftover of a kill
        //    between its export and the cleanup).
        if challenger_dir.exists() {
            let _ = std::fs::remove_dir_all(run.iter_path(iter, ".challenger-train"));
        } else {
            let _s = info_span!("challenger").entered();
            enter_stage(&run, &mut state, iter, "challenger")?;
            let solver = model::load(&prev_solver, &model::LoadOptions::default())
                .map_err(stage("loading the Solver"))?;
            let solver_model = solver.model().map_err(stage("building the Solver"))?;
            let solver_role = solver_role(&cfg, &solver_model, &solver, solver_client.as_ref())?;
            let start = model::load(&prev_challenger, &model::LoadOptions::default())
                .map_err(stage("loading the Challenger"))?;
            train_phase(
                &cfg,
                &run,
                iter,
                "challenger",
                &start,
                &cfg.challenger.optim,
                &mut state,
                on_event,
                &mut |step, policy| {
                    let c_role = Role::local(policy, &start, &cfg.engine)?;
                    crate::challenger::make_groups(&cfg, iter, step, &c_role, &solver_role)
                },
            )?;
        }

        // 5. Dataset.
        let kept: Vec<crate::dataset::DatasetItem> = if dataset_path.exists() {
            // a kill after the commit point may have left the journal behind
            let _ = std::fs::remove_dir_all(run.iter_path(iter, ".dataset-chunks"));
            crate::dataset::load(&dataset_path)?
        } else {
            let _s = info_span!("dataset").entered();
            enter_stage(&run, &mut state, iter, "dataset")?;
            let n_chunks = cfg.dataset.num_questions.div_ceil(cfg.dataset.chunk);
            (on_event)(Event::StageStart {
                iter,
                stage: "dataset",
                total: n_chunks,
            });
            let t0 = Instant::now();
            let ch = model::load(&path_str(&challenger_dir), &model::LoadOptions::default())
                .map_err(stage("loading the Challenger"))?;
            let ch_model = ch.model().map_err(stage("building the Challenger"))?;
            let so = model::load(&prev_solver, &model::LoadOptions::default())
                .map_err(stage("loading the Solver"))?;
            let so_model = so.model().map_err(stage("building the Solver"))?;
            let (items, summary) = crate::dataset::build(
                &cfg,
                &run,
                iter,
                &Role::local(&ch_model, &ch, &cfg.engine)?,
                &solver_role(&cfg, &so_model, &so, solver_client.as_ref())?,
                &mut |done, _| {
                    // journal head: chunks done (the chunk files themselves are the journal;
                    // chunks read back on resume do not move it)
                    if done > state.step {
                        if let Err(e) = set_stage(&run, &mut state, iter, "dataset", done) {
                            warn!("cannot update state.json: {e}");
                        }
                    }
                    (on_event)(Event::StageProgress { done });
                },
            )?;
            let hist = p_hat_histogram(&items);
            run.set_stage_metrics(
                iter,
                "dataset",
                &[json!({
                    "iter": iter, "phase": "dataset", "step": 0,
                    "generated": summary.generated, "valid": summary.valid, "kept": summary.kept,
                    "truncated": summary.truncated, "p_hat_hist": hist,
                    "label_agreement_mean": mean(items.iter().map(|i| i.p_hat)),
                    "seconds": t0.elapsed().as_secs_f64(),
                })],
            )?;
            // the commit point: metrics first, then dataset.jsonl, then the journal goes
            crate::dataset::commit(&dataset_path, &items)?;
            let _ = std::fs::remove_dir_all(run.iter_path(iter, ".dataset-chunks"));
            let line = format!(
                "iteration {iter} dataset: {} generated, {} well-formed, {} kept ({:.0}s)",
                summary.generated,
                summary.valid,
                summary.kept,
                t0.elapsed().as_secs_f64()
            );
            info!("{line}");
            (on_event)(Event::StageEnd { summary: line });
            items
        };
        let kept: Vec<&crate::dataset::DatasetItem> = kept.iter().filter(|i| i.kept).collect();

        // 6. Solver phase (skipped, and reported, when nothing was kept).
        let solver_dir = run.iter_path(iter, "solver");
        if solver_dir.exists() {
            let _ = std::fs::remove_dir_all(run.iter_path(iter, ".solver-train"));
        } else {
            let _s = info_span!("solver").entered();
            enter_stage(&run, &mut state, iter, "solver")?;
            let start = model::load(&prev_solver, &model::LoadOptions::default())
                .map_err(stage("loading the Solver"))?;
            if kept.is_empty() {
                warn!(
                    iter,
                    "empty dataset: no question in the agreement band; the Solver phase is skipped"
                );
                run.set_stage_metrics(iter, "solver", &[json!({"iter": iter, "phase": "solver", "step": 0, "skipped": "empty dataset"})])?;
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
            } else {
                train_phase(
                    &cfg,
                    &run,
                    iter,
                    "solver",
                    &start,
                    &cfg.solver.optim,
                    &mut state,
                    on_event,
                    &mut |step, policy| {
                        crate::solver::make_groups(
                            &cfg,
                            iter,
                            step,
                            &kept,
                            &Role::local(policy, &start, &cfg.engine)?,
                        )
                    },
                )?;
            }
        }

        // 7. Evaluation of the new Solver.
        if let Some(ev) = eval.as_mut() {
            let done = run.iter_path(iter, "eval/done");
            if !done.exists() {
                enter_stage(&run, &mut state, iter, "eval")?;
                (on_event)(Event::StageStart {
                    iter,
                    stage: "eval",
                    total: 1,
                });
                std::fs::create_dir_all(run.iter_path(iter, "eval")).map_err(|e| Error::Io {
                    path: run.iter_path(iter, "eval"),
                    source: e,
                })?;
                ev(&path_str(&solver_dir), &run, iter)?;
                crate::rundir::write_atomic(&done, b"")?;
                (on_event)(Event::StageEnd {
                    summary: format!("iteration {iter} solver evaluated"),
                });
            }
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
    phase: &'static str,
    start: &model::LoadedModel,
    optim: &Optim,
    state: &mut State,
    on_event: &mut dyn FnMut(Event),
    make_groups: MakeGroups<'_>,
) -> Result<()> {
    let work = run.iter_path(iter, &format!(".{phase}-train"));
    let seed = crate::rollout::derive_seed(
        cfg.seed,
        &[iter as u64, if phase == "challenger" { 10 } else { 11 }],
    );
    let mut extra = serde_json::Map::new();
    extra.insert("iter".into(), json!(iter));
    extra.insert("phase".into(), json!(phase));
    let files = crate::policy::PhaseFiles {
        work: work.clone(),
        metrics: run.stage_metrics_path(iter, phase),
        row_extra: extra,
    };
    (on_event)(Event::StageStart {
        iter,
        stage: phase,
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
    let trainer =
        crate::policy::run_phase(start, optim, seed, &files, &mut rollout, &mut |p| match p {
            train::Progress::Rollout { step, .. } => {
                if let Err(e) = set_stage(run, state, iter, phase, step as usize - 1) {
                    state_err.get_or_insert(e);
                }
            }
            train::Progress::Update(_) => {}
            train::Progress::Step(row) => {
                info!(
                    iter,
                    phase,
                    step = row["step"].as_u64().unwrap_or(0),
                    reward_mean = row["reward_mean"].as_f64().unwrap_or(f64::NAN),
                    loss = row["loss"].as_f64().unwrap_or(f64::NAN),
                    ppo_kl = row["ppo_kl"].as_f64().unwrap_or(f64::NAN),
                    "grpo step"
                );
                (on_event)(Event::StageProgress {
                    done: row["step"].as_u64().unwrap_or(0) as usize,
                });
            }
        })
        .map_err(|e| match e {
            Error::Diverged(m) => Error::Diverged(format!(
                "iteration {iter} {phase}: {m}; the last good checkpoint is {}",
                work.join("checkpoint").display()
            )),
            e => e,
        })?;
    if let Some(e) = state_err {
        return Err(e);
    }
    run.rebuild_metrics()?;
    let rows = run.stage_metrics(iter, phase)?;
    let out = run.iter_path(iter, phase);
    crate::policy::export(&trainer, &out, start)?;
    let _ = std::fs::remove_dir_all(&work);
    let reward = mean(
        rows.iter()
            .filter(|r| r.get("update").is_none())
            .filter_map(|r| r["reward_mean"].as_f64()),
    );
    let line = format!(
        "iteration {iter} {phase}: {} GRPO steps, mean reward {} ({:.0}s)",
        optim.steps,
        reward.map_or("n/a".to_string(), |r| format!("{r:.3}")),
        t_phase.elapsed().as_secs_f64()
    );
    info!("{line}");
    (on_event)(Event::StageEnd { summary: line });
    Ok(())
}
