//! `rzero::run::run` checks its inputs (the model, the config, the remote Solver settings)
//! before it writes anything to the run folder: a bad `model_path` never leaves a
//! `config.toml` that the corrected rerun would refuse as "a different configuration".

use std::path::{Path, PathBuf};

use rzero::run::{run, RunOptions};
use rzero::Config;

/// The files and folders under `dir` (relative paths, sorted); empty when `dir` is absent.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `tiny` preset cut to one short iteration (one GRPO step per phase, two questions).
fn small(model: &str) -> Config {
    let mut c = Config::tiny();
    c.model = model.to_string();
    c.iterations = 1;
    c.challenger.optim.steps = 1;
    c.solver.optim.steps = 1;
    c.dataset.num_questions = 2;
    c.eval.benchmarks.clear();
    c.audit.benchmarks.clear();
    c
}

fn start(cfg: &Config, out: &Path, model_path: &str) -> rzero::Result<()> {
    run(RunOptions {
        config: cfg.clone(),
        out: out.to_path_buf(),
        model_path: model_path.to_string(),
        on_event: &mut |_| {},
        eval: None,
    })
}

#[test]
fn bad_inputs_write_nothing_and_the_corrected_rerun_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("chain-model");
    rzero::testing::write_chain_model(&model).unwrap();
    let model = model.to_string_lossy().into_owned();

    // A missing model: an error naming it, and no run folder.
    let out = tmp.path().join("run");
    let bad = tmp
        .path()
        .join("no-such-model")
        .to_string_lossy()
        .into_owned();
    let e = start(&small(&bad), &out, &bad).unwrap_err().to_string();
    assert!(e.contains(&bad), "{e}");
    assert!(
        !out.exists(),
        "the run folder was created: {:?}",
        tree(&out)
    );

    // A model folder with a broken config.json: the same, into an existing empty folder.
    let broken = tmp.path().join("broken-model");
    std::fs::create_dir_all(&broken).unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(Path::new(&model).join(f), broken.join(f)).unwrap();
    }
    std::fs::write(broken.join("config.json"), "{\"vocab_size\": ").unwrap();
    let broken = broken.to_string_lossy().into_owned();
    std::fs::create_dir_all(&out).unwrap();
    assert!(start(&small(&broken), &out, &broken).is_err());
    assert!(tree(&out).is_empty(), "written: {:?}", tree(&out));

    // A remote Solver whose API key variable is not set: refused before anything is written.
    let mut remote = small(&model);
    remote.remote.solver_urls = vec!["http://127.0.0.1:1".into()];
    remote.remote.api_key_env = "RZERO_RUN_INPUTS_TEST_UNSET_KEY".into();
    let e = start(&remote, &out, &model).unwrap_err().to_string();
    assert!(e.contains("remote.api_key_env"), "{e}");
    assert!(tree(&out).is_empty(), "written: {:?}", tree(&out));

    // An out-of-range value that the config layers did not see (a library caller builds its
    // Config directly): named, nothing written.
    let mut zero = small(&model);
    zero.solver.group_size = 0;
    let e = start(&zero, &out, &model).unwrap_err().to_string();
    assert!(e.contains("solver.group_size"), "{e}");
    assert!(tree(&out).is_empty(), "written: {:?}", tree(&out));

    // The corrected rerun on the same folder runs to the end.
    let cfg = small(&model);
    start(&cfg, &out, &model).unwrap();
    assert!(out.join("iter_1/solver/model.safetensors").is_file());
    let recorded = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert_eq!(Config::from_toml(&recorded).unwrap(), cfg);

    // A different configuration on a started run is refused and changes no file.
    let before: Vec<(PathBuf, Vec<u8>)> = tree(&out)
        .into_iter()
        .filter(|p| out.join(p).is_file())
        .map(|p| {
            let b = std::fs::read(out.join(&p)).unwrap();
            (p, b)
        })
        .collect();
    let mut other = cfg.clone();
    other.seed += 1;
    let e = start(&other, &out, &model).unwrap_err();
    assert!(matches!(e, rzero::Error::Mismatch(_)), "{e}");
    let after: Vec<(PathBuf, Vec<u8>)> = tree(&out)
        .into_iter()
        .filter(|p| out.join(p).is_file())
        .map(|p| {
            let b = std::fs::read(out.join(&p)).unwrap();
            (p, b)
        })
        .collect();
    assert!(before == after, "a refused rerun changed the run folder");
}
