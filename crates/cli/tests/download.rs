//! `rzero download` and `--model <hub id>` against a fake Hugging Face Hub on 127.0.0.1,
//! configured only through the environment a user sets (`HF_ENDPOINT`, `HF_HUB_CACHE`,
//! `HF_HOME` with its token file, `HF_TOKEN`, `HF_HUB_OFFLINE`).

#[path = "../../model/tests/support/fake_hub.rs"]
mod fake_hub;

use std::path::{Path, PathBuf};
use std::process::Command;

use fake_hub::{tiny_repo, FakeHub, COMMIT, TOKEN};
use serde_json::Value;

fn fixture() -> PathBuf {
    testdata::model_dir("qwen3-tiny")
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `rzero ARGS` with a clean Hugging Face environment plus `env`.
fn rzero(args: &[&str], home: &Path, hub: &FakeHub, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rzero"));
    cmd.args(args)
        .env("RZERO_LOG", "error")
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", home)
        .env("HF_HUB_CACHE", home.join("hub"))
        .env("HOME", home);
    for v in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_OFFLINE",
        "HUGGINGFACE_HUB_CACHE",
        // ureq 2 reads these and has no NO_PROXY: the fake hub is on 127.0.0.1.
        "ALL_PROXY",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "all_proxy",
        "https_proxy",
        "http_proxy",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run rzero");
    Outcome {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn assert_fails_naming(o: &Outcome, needles: &[&str]) {
    assert!(!o.ok, "should fail; stdout: {}", o.stdout);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    for n in needles {
        assert!(
            o.stderr.contains(n),
            "stderr should name {n:?}: {}",
            o.stderr
        );
    }
}

#[test]
fn download_prints_the_folder_and_model_hub_ids_download_when_missing() {
    let hub = FakeHub::start();
    let files = tiny_repo(&fixture());
    hub.add_repo("Org/Tiny", files.clone(), false);
    hub.add_repo("Org/Fresh", files.clone(), false);
    hub.add_repo("Org/Gated", files.clone(), true);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let snap = home.join("hub/models--Org--Tiny/snapshots").join(COMMIT);

    // `rzero download` prints the snapshot folder, and only that, on stdout.
    let o = rzero(&["download", "Org/Tiny"], home, &hub, &[]);
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), snap.display().to_string());
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        files["model.safetensors"]
    );

    // `--model <hub id>` uses the cached model with no request, and gives the fixture's
    // log-probs.
    let exp: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
            .unwrap();
    let lp = &exp["logprobs"];
    let input = home.join("in.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\n",
            serde_json::json!({"prompt_ids": lp["prompt_ids"], "completion_ids": lp["continuation_ids"]})
        ),
    )
    .unwrap();
    let input_s = input.to_str().unwrap();
    let before = hub.count();
    let o = rzero(
        &["score", "--model", "Org/Tiny", "--input", input_s],
        home,
        &hub,
        &[],
    );
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(hub.count(), before, "a cached model made a request");
    let row: Value = serde_json::from_str(o.stdout.lines().next().unwrap()).unwrap();
    let got = row["logprobs"].as_array().unwrap();
    let want = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4,
            "{g} vs {w}"
        );
    }

    // `--model` with a hub id that is not cached downloads it.
    let o = rzero(
        &["score", "--model", "Org/Fresh", "--input", input_s],
        home,
        &hub,
        &[],
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(hub.count() > before);
    assert!(home
        .join("hub/models--Org--Fresh/snapshots")
        .join(COMMIT)
        .join("model.safetensors")
        .is_file());

    // Offline: a model not in the cache fails without any request.
    let before = hub.count();
    let o = rzero(
        &["download", "Org/Gated"],
        home,
        &hub,
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_fails_naming(&o, &["Org/Gated", "HF_HUB_OFFLINE"]);
    assert_eq!(hub.count(), before);

    // Gated: no token names the model page and HF_TOKEN; a wrong HF_TOKEN is named as the
    // refused token; the token file under HF_HOME opens it.
    let page = format!("{}/Org/Gated", hub.url);
    let o = rzero(&["download", "Org/Gated"], home, &hub, &[]);
    assert_fails_naming(&o, &["401", &page, "HF_TOKEN"]);
    let o = rzero(
        &["download", "Org/Gated"],
        home,
        &hub,
        &[("HF_TOKEN", "hf_wrong")],
    );
    assert_fails_naming(&o, &["403", "token from HF_TOKEN"]);
    std::fs::write(home.join("token"), format!("{TOKEN}\n")).unwrap();
    let o = rzero(
        &["download", "Org/Gated", "--revision", "main"],
        home,
        &hub,
        &[],
    );
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stdout.trim().ends_with(COMMIT), "{}", o.stdout);

    // No such revision / model: 404 messages.
    let o = rzero(
        &["download", "Org/Tiny", "--revision", "v9"],
        home,
        &hub,
        &[],
    );
    assert_fails_naming(&o, &["404", "no revision \"v9\""]);
    let o = rzero(&["download", "Org/Nope"], home, &hub, &[]);
    assert_fails_naming(&o, &["404", "no model Org/Nope"]);
    // Conflicting revisions, and something that is not a hub id.
    let o = rzero(
        &["download", "Org/Tiny@v1", "--revision", "v2"],
        home,
        &hub,
        &[],
    );
    assert_fails_naming(&o, &["v1", "v2"]);
    let o = rzero(&["download", "not-a-hub-id"], home, &hub, &[]);
    assert_fails_naming(&o, &["not-a-hub-id", "org/name"]);
}
