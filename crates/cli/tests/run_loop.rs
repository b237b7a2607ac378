//! End-to-end tests of `rzero run` on the `tiny` preset with the chain test model
//! (`rzero::testing`): every artifact and its schema, and kill -9 / resume at several points
//! giving the same datasets and checkpoints as an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn rzero() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rzero"));
    c.env("RZERO_LOG", "warn");
    c
}

fn chain_model(dir: &Path) -> PathBuf {
    let m = dir.join("chain-model");
    rzero::testing::write_chain_model(&m).expect("writes the chain model");
    m
}

fn run_args(model: &Path, out: &Path) -> Vec<String> {
    vec![
        "run".into(),
        "--preset".into(),
        "tiny".into(),
        "--model".into(),
        model.to_string_lossy().into_owned(),
        "--out".into(),
        out.to_string_lossy().into_owned(),
        "--no-eval".into(),
        "--quiet".into(),
    ]
}

fn read_jsonl(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

fn run_to_end(model: &Path, out: &Path) {
    let o = rzero()
        .args(run_args(model, out))
        .output()
        .expect("runs rzero");
    assert!(
        o.status.success(),
        "rzero run failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn two_iterations_write_every_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let out = tmp.path().join("run");
    run_to_end(&model, &out);

    // resolved config and journal head
    let cfg = rzero::Config::from_toml(&std::fs::read_to_string(out.join("config.toml")).unwrap())
        .unwrap();
    assert_eq!(cfg.iterations, 2);
    assert_eq!(cfg.model, model.to_string_lossy());
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["completed_iterations"], 2);
    assert_eq!(state["stage"], "done");

    let metrics = read_jsonl(&out.join("metrics.jsonl"));
    for iter in 1..=2 {
        let dir = out.join(format!("iter_{iter}"));
        // checkpoints load back
        for role in ["challenger", "solver"] {
            let p = dir.join(role);
            for f in [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
            ] {
                assert!(p.join(f).is_file(), "{}/{f} missing", p.display());
            }
            let loaded = model::load(&p.to_string_lossy(), &model::LoadOptions::default()).unwrap();
            assert_eq!(loaded.config.vocab_size, cfg_vocab(&model));
        }
        // questions and dataset
        let qs = read_jsonl(&dir.join("questions.jsonl"));
        let ds = read_jsonl(&dir.join("dataset.jsonl"));
        assert_eq!(qs.len(), ds.len());
        assert!(
            !ds.is_empty(),
            "the chain model writes well-formed questions"
        );
        for row in &ds {
            assert!(row["question"].is_string());
            assert!(row["answer"].is_string());
            assert!(row["label"].is_string() || row["label"].is_null());
            let p = row["p_hat"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p));
            let answers = row["answers"].as_array().unwrap();
            assert_eq!(answers.len(), cfg.dataset.solver_samples);
            assert!(row["kept"].is_boolean());
        }
        // no in-progress leftovers
        for hidden in [".challenger-train", ".dataset-chunks", ".solver-train"] {
            assert!(!dir.join(hidden).exists(), "{hidden} left behind");
        }
        // metrics: one row per GRPO step, one per optimizer update, one dataset row
        let rows = |phase: &str, updates: bool| {
            metrics
                .iter()
                .filter(|r| r["iter"] == iter && r["phase"] == phase)
                .filter(|r| r.get("update").is_some() == updates)
                .count()
        };
        let per_step =
            |rb: usize, o: &rzero::config::Optim| rb.div_ceil(o.global_batch_size) * o.ppo_epochs;
        let c = &cfg.challenger;
        assert_eq!(rows("challenger", false), c.optim.steps);
        assert_eq!(
            rows("challenger", true),
            c.optim.steps * per_step(c.rollout_batch_size, &c.optim)
        );
        assert!(per_step(c.rollout_batch_size, &c.optim) >= 2);
        assert_eq!(rows("dataset", false), 1);
        let kept = ds.iter().filter(|r| r["kept"] == true).count();
        if kept > 0 {
            assert_eq!(rows("solver", false), cfg.solver.optim.steps);
        }
        for r in metrics.iter().filter(|r| {
            r["iter"] == iter && r["phase"] == "challenger" && r.get("update").is_some()
        }) {
            // the first update of each rollout runs on the rollout's own policy
            if r["update"] == 1 {
                assert_eq!(r["ratio_min"], 1.0, "{r}");
                assert_eq!(r["ratio_max"], 1.0, "{r}");
            }
            for k in [
                "ppo_kl",
                "pg_clipfrac_higher",
                "pg_clipfrac_lower",
                "entropy",
            ] {
                assert!(r[k].is_number(), "update rows lack {k}: {r}");
            }
        }
        for r in metrics.iter().filter(|r| {
            r["iter"] == iter && r["phase"] == "challenger" && r.get("update").is_none()
        }) {
            for k in [
                "reward_mean",
                "r_unc_mean",
                "r_rep_mean",
                "format_valid_frac",
                "loss",
                "kl",
                "grad_norm",
                "adv_nonzero_frac",
            ] {
                assert!(r.get(k).is_some(), "challenger metrics lack {k}: {r}");
            }
        }
    }
}

fn cfg_vocab(model: &Path) -> usize {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    v["vocab_size"].as_u64().unwrap() as usize
}

/// Kills `rzero run` with SIGKILL as soon as `state.json` shows `stage` at step >= `step`.
fn run_and_kill_at(model: &Path, out: &Path, iter: usize, stage: &str, step: usize) -> bool {
    let mut child = rzero()
        .env("RZERO_TEST_JOURNAL_PAUSE_MS", "300")
        .args(run_args(model, out))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns rzero");
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false; // finished before the kill point
        }
        if let Ok(text) = std::fs::read_to_string(out.join("state.json")) {
            if let Ok(s) = serde_json::from_str::<Value>(&text) {
                if s["iteration"] == iter
                    && s["stage"] == stage
                    && s["step"].as_u64().unwrap_or(0) as usize >= step
                {
                    child.kill().expect("SIGKILL");
                    child.wait().unwrap();
                    return true;
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "run did not reach {stage}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn same_bytes(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

#[test]
fn kill_and_resume_gives_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let a = tmp.path().join("uninterrupted");
    run_to_end(&model, &a);

    let b = tmp.path().join("killed");
    let mut kills = 0;
    for (iter, stage, step) in [
        (1, "challenger", 1),
        (1, "dataset", 0),
        (1, "solver", 1),
        (2, "challenger", 0),
    ] {
        if run_and_kill_at(&model, &b, iter, stage, step) {
            kills += 1;
        }
    }
    assert_eq!(kills, 4, "every kill landed inside its stage");
    run_to_end(&model, &b);

    for iter in 1..=2 {
        for f in [
            "questions.jsonl",
            "dataset.jsonl",
            "challenger/model.safetensors",
            "solver/model.safetensors",
        ] {
            let rel = format!("iter_{iter}/{f}");
            same_bytes(&a.join(&rel), &b.join(&rel));
        }
    }
    // the metrics hold one row per step, no duplicates from the redone work
    let ma = read_jsonl(&a.join("metrics.jsonl"));
    let mb = read_jsonl(&b.join("metrics.jsonl"));
    assert_eq!(ma.len(), mb.len());
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(
            (&x["iter"], &x["phase"], &x["step"]),
            (&y["iter"], &y["phase"], &y["step"])
        );
        assert_eq!(x["reward_mean"], y["reward_mean"]);
    }
}

#[test]
fn bad_config_key_is_named_and_fails() {
    let o = rzero()
        .args([
            "run",
            "--preset",
            "tiny",
            "--model",
            "x",
            "--set",
            "solver.lrr=1",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("solver.lrr") && err.contains("solver.optim"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let o = rzero()
        .args([
            "run",
            "--preset",
            "tiny",
            "--model",
            "/nonexistent/model",
            "--out",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/model"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A `rzero serve` child process, killed on drop.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(model: &Path) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = rzero()
        .args([
            "serve",
            "--quiet",
            "--host",
            "127.0.0.1",
            "--served-model-name",
            "solver",
            "--port",
        ])
        .arg(port.to_string())
        .arg("--model")
        .arg(model)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns rzero serve");
    let server = Server(child);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rzero serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("http://127.0.0.1:{port}"))
}

#[test]
fn solver_on_a_remote_server_gives_the_same_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let (_server, url) = serve(&model);
    let local = tmp.path().join("local");
    let remote = tmp.path().join("remote");
    let mut args = run_args(&model, &remote);
    args.extend([
        "--iterations".into(),
        "1".into(),
        "--set".into(),
        format!("remote.solver_urls=[\"{url}\"]"),
        "--set".into(),
        "remote.model=\"solver\"".into(),
    ]);
    let o = rzero().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut args = run_args(&model, &local);
    args.extend(["--iterations".into(), "1".into()]);
    let o = rzero().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the server samples the same streams as the in-process engine: identical labels
    let ds = read_jsonl(&remote.join("iter_1/dataset.jsonl"));
    assert!(!ds.is_empty());
    same_bytes(
        &local.join("iter_1/dataset.jsonl"),
        &remote.join("iter_1/dataset.jsonl"),
    );
    for role in ["challenger", "solver"] {
        assert!(remote
            .join("iter_1")
            .join(role)
            .join("model.safetensors")
            .is_file());
    }
    let cfg =
        rzero::Config::from_toml(&std::fs::read_to_string(remote.join("config.toml")).unwrap())
            .unwrap();
    assert_eq!(cfg.remote.solver_urls, vec![url]);
}

#[test]
fn an_unreachable_remote_server_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tmp.path().join("run");
    let mut args = run_args(&model, &out);
    args.extend([
        "--set".into(),
        format!("remote.solver_urls=[\"http://127.0.0.1:{port}\"]"),
        "--set".into(),
        "remote.model=\"solver\"".into(),
        "--set".into(),
        "remote.retries=1".into(),
    ]);
    let o = rzero().args(&args).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // nothing half-written: no dataset, no checkpoint folder of the phase
    assert!(!out.join("iter_1/dataset.jsonl").exists());
    assert!(!out.join("iter_1/challenger").exists());
}
