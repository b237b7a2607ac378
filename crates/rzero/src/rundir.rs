//! The run directory and its journal.
//!
//! Files are the source of truth: a stage is done when its output exists (each written
//! atomically: temporary file in the same folder, then rename). `state.json` is the
//! journal's head, rewritten after every committed unit of work, for people and the report.
//! Per-stage metrics live in `iter_N/metrics_<phase>.jsonl`, rewritten atomically with the
//! stage's progress; `metrics.jsonl` at the top is regenerated from them, so a resumed run
//! never holds duplicated or orphaned metric lines.
//!
//! ```text
//! RUN/config.toml  state.json  metrics.jsonl  logs/  base_eval/
//! RUN/iter_N/challenger/ questions.jsonl dataset.jsonl solver/ eval/ audit.json
//! RUN/iter_N/metrics_{challenger,dataset,solver,eval,audit}.jsonl
//! RUN/iter_N/.challenger-train/  .dataset-chunks/  .solver-train/   (in-progress work)
//! ```
//!
//! This module owns that layout: the loop, the dataset stage and the evaluation hook ask a
//! [`RunDir`] for their paths instead of joining names themselves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Where the loop is; written after every committed unit of work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Current iteration (1-based); 0 before the first.
    pub iteration: usize,
    /// Current stage: `base-eval`, `challenger`, `dataset`, `solver`, `eval`, `done`.
    pub stage: String,
    /// Progress inside the stage (step or chunk), when it has one.
    pub step: usize,
    /// Iterations completed.
    pub completed_iterations: usize,
    /// The configured number of iterations.
    pub iterations: usize,
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

/// A trained role: its phase names its output folder, work folder and metric file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The Challenger's GRPO phase.
    Challenger,
    /// The Solver's GRPO phase.
    Solver,
}

impl Phase {
    /// `challenger` / `solver`: the stage name in `state.json`, metric rows and file names.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Challenger => "challenger",
            Phase::Solver => "solver",
        }
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically ([`fsutil::write_atomic`]: temp file in the same
/// folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(fsutil::write_atomic(path, bytes)?)
}

/// Writes JSON lines atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut buf = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut buf, r).map_err(|e| Error::Stage(e.to_string()))?;
        buf.push(b'\n');
    }
    write_atomic(path, &buf)
}

/// Reads JSON lines; a bad line is an error naming the file and line.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            msg: format!("line {}: {e}", i + 1),
        })?);
    }
    Ok(out)
}

/// Removes the entries of `dir` that atomic writes leave behind when killed: hidden names
/// holding `.tmp-` or `.old-` (and `.tmp-*` itself). A missing `dir` is fine.
fn remove_temp_siblings(dir: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !fsutil::is_leftover(&name) {
            continue;
        }
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&p, e)),
        }
    }
    Ok(())
}

impl RunDir {
    /// A run directory at `root`, touching nothing on disk (its paths only).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Opens (creating) a run directory.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("logs")).map_err(|e| io_err(&root, e))?;
        Ok(Self { root })
    }

    /// `RUN/state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// `RUN/metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// A phase's exported model: `RUN/iter_N/challenger` or `RUN/iter_N/solver`.
    pub fn model_dir(&self, iter: usize, phase: Phase) -> PathBuf {
        self.iter_path(iter, phase.name())
    }

    /// A phase's in-progress folder (checkpoint, rollout journal): `RUN/iter_N/.PHASE-train`.
    pub fn train_work_dir(&self, iter: usize, phase: Phase) -> PathBuf {
        self.iter_path(iter, &format!(".{}-train", phase.name()))
    }

    /// `RUN/iter_N/dataset.jsonl` (the stage's commit point).
    pub fn dataset_path(&self, iter: usize) -> PathBuf {
        self.iter_path(iter, "dataset.jsonl")
    }

    /// `RUN/iter_N/questions.jsonl` (every generated question).
    pub fn questions_path(&self, iter: usize) -> PathBuf {
        self.iter_path(iter, "questions.jsonl")
    }

    /// The dataset's journal: `RUN/iter_N/.dataset-chunks`.
    pub fn dataset_chunks_dir(&self, iter: usize) -> PathBuf {
        self.iter_path(iter, ".dataset-chunks")
    }

    /// Evaluation output: `RUN/base_eval` for iteration 0 (the base model), else
    /// `RUN/iter_N/eval`.
    pub fn eval_dir(&self, iter: usize) -> PathBuf {
        if iter == 0 {
            self.base_eval_dir()
        } else {
            self.iter_path(iter, "eval")
        }
    }

    /// The marker of a finished evaluation: `done` in [`RunDir::eval_dir`].
    pub fn eval_done_path(&self, iter: usize) -> PathBuf {
        self.eval_dir(iter).join("done")
    }

    /// The folder of an iteration's stage files: `RUN/base_eval` for iteration 0, else
    /// `RUN/iter_N`.
    fn stage_dir(&self, iter: usize) -> PathBuf {
        if iter == 0 {
            self.base_eval_dir()
        } else {
            self.iter_dir(iter)
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `RUN/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `RUN/iter_N`.
    pub fn iter_dir(&self, iter: usize) -> PathBuf {
        self.root.join(format!("iter_{iter}"))
    }

    /// A path inside `RUN/iter_N`.
    pub fn iter_path(&self, iter: usize, name: &str) -> PathBuf {
        self.iter_dir(iter).join(name)
    }

    /// `RUN/base_eval` (evaluation of the base model).
    pub fn base_eval_dir(&self) -> PathBuf {
        self.root.join("base_eval")
    }

    /// Reads `state.json` (default when absent).
    pub fn state(&self) -> Result<State> {
        let p = self.state_path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::BadFile {
                path: p,
                msg: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_err(&p, e)),
        }
    }

    /// Rewrites `state.json`.
    pub fn set_state(&self, s: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(s).map_err(|e| Error::Stage(e.to_string()))?;
        write_atomic(&self.state_path(), &bytes)
    }

    /// Replaces the metric rows of one stage and regenerates `metrics.jsonl`.
    /// Rows are written as JSON objects with sorted keys (whatever the field order of `T`),
    /// as every metric row of the run is.
    pub fn set_stage_metrics<T: Serialize>(
        &self,
        iter: usize,
        phase: &str,
        rows: &[T],
    ) -> Result<()> {
        let rows = rows
            .iter()
            .map(serde_json::to_value)
            .collect::<std::result::Result<Vec<Value>, _>>()
            .map_err(|e| Error::Stage(e.to_string()))?;
        write_jsonl(&self.stage_metrics_path(iter, phase), &rows)?;
        self.rebuild_metrics()
    }

    /// Removes the temporary siblings a kill can leave in `iter_N/`, its `eval/` and its
    /// `.dataset-chunks/` (`.tmp-*`, `.NAME.tmp-*` and `.NAME.old-*` of atomic writes and
    /// folder replacements). The trainer's work folders (`.challenger-train/`,
    /// `.solver-train/`) are put in order by `train::driver::clean_work_dir`, which may need
    /// a `.checkpoint.old-*` folder back.
    pub fn clean_leftovers(&self, iter: usize) -> Result<()> {
        remove_temp_siblings(&self.iter_dir(iter))?;
        remove_temp_siblings(&self.eval_dir(iter))?;
        remove_temp_siblings(&self.dataset_chunks_dir(iter))
    }

    /// Removes the temporary siblings a kill can leave at the top of the run
    /// (`config.toml`, `state.json`, `metrics.jsonl`) and in `base_eval/`.
    pub fn clean_leftovers_top(&self) -> Result<()> {
        remove_temp_siblings(&self.root)?;
        remove_temp_siblings(&self.eval_dir(0))
    }

    /// The file of one stage's metric rows.
    pub fn stage_metrics_path(&self, iter: usize, phase: &str) -> PathBuf {
        self.stage_dir(iter).join(format!("metrics_{phase}.jsonl"))
    }

    /// Metric rows of one stage (empty when none yet).
    pub fn stage_metrics<T: for<'de> Deserialize<'de>>(
        &self,
        iter: usize,
        phase: &str,
    ) -> Result<Vec<T>> {
        let p = self.stage_metrics_path(iter, phase);
        if p.exists() {
            read_jsonl(&p)
        } else {
            Ok(Vec::new())
        }
    }

    /// Regenerates `metrics.jsonl` from the per-stage files, in run order.
    pub fn rebuild_metrics(&self) -> Result<()> {
        let mut rows: Vec<Value> = Vec::new();
        rows.extend(self.stage_metrics(0, "eval")?);
        rows.extend(self.stage_metrics(0, "audit")?);
        let mut iter = 1;
        while self.iter_dir(iter).exists() {
            for phase in ["challenger", "dataset", "solver", "eval", "audit"] {
                rows.extend(self.stage_metrics(iter, phase)?);
            }
            iter += 1;
        }
        write_jsonl(&self.metrics_path(), &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metrics_are_rebuilt_without_duplicates() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        std::fs::create_dir_all(run.iter_dir(1)).unwrap();
        run.set_stage_metrics(1, "challenger", &[json!({"step": 1})])
            .unwrap();
        // a resumed stage rewrites its rows: no duplicates
        run.set_stage_metrics(1, "challenger", &[json!({"step": 1}), json!({"step": 2})])
            .unwrap();
        run.set_stage_metrics(1, "solver", &[json!({"step": 1, "phase": "solver"})])
            .unwrap();
        let rows: Vec<Value> = read_jsonl(&run.root().join("metrics.jsonl")).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2]["phase"], "solver");
    }

    /// `metrics.jsonl` is rebuilt by reading the stage files back: their floats must come
    /// back as written (serde_json's `float_roundtrip`), so it holds the stage files' lines.
    #[test]
    fn rebuilt_metrics_hold_the_stage_rows_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("run")).unwrap();
        std::fs::create_dir_all(run.iter_dir(1)).unwrap();
        let rows = [
            json!({"step": 1, "grad_norm": 1.8870880944326507e-7}),
            json!({"step": 2, "loss": 1.490116141589226e-9, "kl": 2.9168327507216497e-10}),
        ];
        run.set_stage_metrics(1, "challenger", &rows).unwrap();
        let stage = std::fs::read_to_string(run.stage_metrics_path(1, "challenger")).unwrap();
        assert!(stage.contains("1.8870880944326507e-7"), "{stage}");
        let top = std::fs::read_to_string(run.metrics_path()).unwrap();
        assert_eq!(top, stage);
    }

    /// Run files are ordinary files: the mode of any new file (0644 under umask 022), not
    /// the 0600 of a temporary file.
    #[cfg(unix)]
    #[test]
    fn atomic_files_have_the_mode_of_a_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.json");
        write_atomic(&p, b"{}").unwrap();
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), mode(&plain));
    }

    #[test]
    fn leftovers_of_atomic_writes_are_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        let d = run.iter_dir(1);
        std::fs::create_dir_all(d.join(".solver.tmp-12-34")).unwrap();
        std::fs::write(d.join(".dataset.jsonl.tmp-1-2"), "x").unwrap();
        std::fs::write(d.join("dataset.jsonl"), "").unwrap();
        std::fs::create_dir_all(d.join(".solver-train")).unwrap();
        std::fs::create_dir_all(d.join("eval")).unwrap();
        std::fs::write(d.join("eval/.results.json.tmp-9"), "x").unwrap();
        std::fs::write(d.join("eval/results.json"), "{}").unwrap();
        std::fs::create_dir_all(d.join(".dataset-chunks")).unwrap();
        std::fs::write(d.join(".dataset-chunks/.tmp-AbC"), "x").unwrap();
        std::fs::write(d.join(".dataset-chunks/chunk_00000.json"), "{}").unwrap();
        std::fs::write(tmp.path().join(".tmp-XyZ"), "x").unwrap();
        std::fs::write(tmp.path().join("state.json"), "{}").unwrap();
        std::fs::create_dir_all(run.base_eval_dir()).unwrap();
        std::fs::write(run.base_eval_dir().join(".done.tmp-1-2"), "").unwrap();
        run.clean_leftovers(1).unwrap();
        run.clean_leftovers_top().unwrap();
        let names = |p: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&d),
            vec![".dataset-chunks", ".solver-train", "dataset.jsonl", "eval"]
        );
        assert_eq!(names(&d.join("eval")), vec!["results.json"]);
        assert_eq!(names(&d.join(".dataset-chunks")), vec!["chunk_00000.json"]);
        assert_eq!(
            names(tmp.path()),
            vec!["base_eval", "iter_1", "logs", "state.json"]
        );
        assert!(names(&run.base_eval_dir()).is_empty());
    }

    #[test]
    fn state_round_trips_and_bad_jsonl_names_line() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        assert_eq!(run.state().unwrap(), State::default());
        let s = State {
            iteration: 2,
            stage: "dataset".into(),
            step: 3,
            completed_iterations: 1,
            iterations: 3,
        };
        run.set_state(&s).unwrap();
        assert_eq!(run.state().unwrap(), s);
        let p = tmp.path().join("x.jsonl");
        std::fs::write(&p, "{\"a\":1}\nnot json\n").unwrap();
        let e = read_jsonl::<Value>(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
