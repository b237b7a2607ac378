//! Hardening of the binary: nothing is written to --out before the inputs are validated,
//! secrets stay out of the run folder, user-given numbers cannot panic, run folders can be
//! moved, and `rzero serve` refuses a public address without an API key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rzero() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rzero"));
    c.env("RZERO_LOG", "warn").env_remove("RZERO_API_KEY");
    c
}

fn chain_model(dir: &Path) -> PathBuf {
    let m = dir.join("chain-model");
    rzero::testing::write_chain_model(&m).expect("writes the chain model");
    m
}

fn run(model: &Path, out: &Path, extra: &[&str]) -> Output {
    rzero()
        .args(["run", "--preset", "tiny", "--quiet", "--model"])
        .arg(model)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("runs rzero")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_bad_model_writes_nothing_to_out() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run(Path::new("/nonexistent/model"), &out, &["--no-eval"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("/nonexistent/model"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !out.join("config.toml").exists(),
        "config.toml written before the model was checked"
    );
    assert!(!out.exists(), "--out created for a run that cannot start");
}

#[test]
fn a_huge_timeout_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let out = tmp.path().join("run");
    let o = run(
        &model,
        &out,
        &[
            "--no-eval",
            "--set",
            "remote.timeout_s=1e300",
            "--set",
            "remote.solver_urls=[\"http://127.0.0.1:1\"]",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("remote.timeout_s"), "{err}");
    assert!(!out.exists());
}

#[test]
fn api_keys_come_from_the_environment_and_never_reach_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let out = tmp.path().join("run");
    // The old plain-text key is refused with a pointer to api_key_env.
    let o = run(
        &model,
        &out,
        &[
            "--no-eval",
            "--set",
            "remote.api_key=\"sk-plaintext-secret\"",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("api_key_env"), "{err}");
    assert!(!out.exists());
    // A named variable that is not set: an error before anything is written.
    let remote = [
        "--no-eval",
        "--set",
        "remote.solver_urls=[\"http://127.0.0.1:1\"]",
        "--set",
        "remote.api_key_env=\"RZERO_TEST_KEY\"",
        "--set",
        "remote.model=\"solver\"",
        "--set",
        "iterations=1",
        "--set",
        "remote.retries=0",
    ];
    let o = rzero()
        .env_remove("RZERO_TEST_KEY")
        .args(["run", "--preset", "tiny", "--quiet", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .args(remote)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("RZERO_TEST_KEY"), "{err}");
    assert!(!out.exists());
    // Set: the run starts (and fails on the unreachable server), the key is nowhere in it.
    let o = rzero()
        .env("RZERO_TEST_KEY", "sk-from-the-environment-123")
        .args(["run", "--preset", "tiny", "--quiet", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .args(remote)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let cfg = std::fs::read_to_string(out.join("config.toml"))
        .unwrap_or_else(|e| panic!("the run did not start ({e}): {}", stderr(&o)));
    assert!(cfg.contains("api_key_env = \"RZERO_TEST_KEY\""), "{cfg}");
    for entry in walk(&out) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("sk-from-the-environment"),
            "the key leaked into {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn eval_results_do_not_record_absolute_run_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let model = chain_model(tmp.path());
    let out = tmp.path().join("run");
    let o = run(&model, &out, &["--set", "iterations=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let root = out.display().to_string();
    let evals: Vec<PathBuf> = walk(&out.join("iter_1/eval"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(!evals.is_empty(), "no iter_1/eval/*.json");
    for p in &evals {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            !text.contains(&root),
            "{} records the run's absolute path",
            p.display()
        );
    }
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("iter_1/eval/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["model"], "iter_1/solver");
}

#[test]
fn serve_refuses_a_public_address_without_a_key() {
    let o = rzero()
        .args(["serve", "--model", "/nonexistent/m", "--host", "0.0.0.0"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("API key") && err.contains("--insecure"),
        "{err}"
    );
    // With a key from the environment it goes on (to fail on the missing model).
    let o = rzero()
        .env("RZERO_API_KEY", "k")
        .args(["serve", "--model", "/nonexistent/m", "--host", "0.0.0.0"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/nonexistent/m") && !err.contains("API key"),
        "{err}"
    );
}
