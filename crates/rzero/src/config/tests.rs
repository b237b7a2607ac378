//! Tests of the configuration: presets, layers, overrides, key checks, old files.
use super::*;

#[test]
fn presets_round_trip_through_commented_toml() {
    for p in PRESETS {
        let c = Config::preset(p).unwrap();
        let text = c.to_commented_toml();
        let back = Config::from_toml(&text).unwrap();
        assert_eq!(c, back, "preset {p}");
        assert!(text.contains("# Challenger phase"));
    }
}

#[test]
fn paper_defaults_are_the_reference() {
    let c = Config::paper();
    assert_eq!(c.challenger.group_size, 4);
    assert_eq!(c.challenger.rollout_batch_size, 512);
    assert_eq!(c.challenger.optim.global_batch_size, 16);
    assert_eq!(c.challenger.optim.micro_batch_size, 2);
    assert_eq!(c.challenger.optim.steps, 5);
    assert_eq!(c.solver.rollout_batch_size, 512);
    assert_eq!(c.solver.optim.global_batch_size, 128);
    assert_eq!(c.solver.optim.micro_batch_size, 1);
    assert_eq!(c.solver.optim.steps, 15);
    assert_eq!(c.solver.optim.ppo_epochs, 1);
    assert_eq!(c.solver.optim.clip_dual, 3.0);
    assert_eq!(
        (c.solver.optim.clip_low, c.solver.optim.clip_high),
        (0.2, 0.3)
    );
    assert_eq!(c.dataset.solver_samples, 9);
    assert_eq!(
        (c.challenger.vote, c.dataset.vote),
        (Vote::Reference, Vote::Reference)
    );
    assert_eq!(c.solver.sampling.max_new_tokens, 4096);
    // the demo spends each rollout in at least two updates, so the clip acts
    for p in [Config::demo(), Config::tiny()] {
        for (rb, o) in [
            (p.challenger.rollout_batch_size, &p.challenger.optim),
            (p.solver.rollout_batch_size, &p.solver.optim),
        ] {
            assert!(rb.div_ceil(o.global_batch_size) * o.ppo_epochs >= 2);
        }
    }
    assert_eq!(c.challenger.solver_samples, 10);
    assert_eq!(c.challenger.solver_sampling.top_k, 40);
    assert_eq!(c.dataset.num_questions, 8000);
    assert_eq!((c.dataset.min_p_hat, c.dataset.max_p_hat), (0.3, 0.8));
    assert_eq!(c.solver.group_size, 5);
    assert_eq!(
        (c.solver.accuracy_weight, c.solver.format_weight),
        (0.9, 0.1)
    );
    assert_eq!(c.solver.optim.lr, 1e-6);
    assert_eq!(c.solver.optim.kl_coef, 1e-2);
    assert!(!c.challenger.format_example);
    assert!(Config::demo().challenger.format_example);
    assert!(!c.solver.format_example);
    assert!(Config::demo().solver.format_example);
    assert!(Config::tiny().solver.format_example);
}

#[test]
fn overrides_and_layers_apply() {
    let c = Config::resolve(
        "tiny",
        Some("iterations = 3\n[solver.optim]\nlr = 2e-6\n"),
        &["solver.optim.steps=7".into(), "model=some/model".into()],
    )
    .unwrap();
    assert_eq!(c.iterations, 3);
    assert_eq!(c.solver.optim.lr, 2e-6);
    assert_eq!(c.solver.optim.steps, 7);
    assert_eq!(c.model, "some/model");
    // untouched keys keep the preset's values
    assert_eq!(c.solver.group_size, Config::tiny().solver.group_size);
}

#[test]
fn unknown_key_is_named_with_valid_keys() {
    let e = Config::resolve("tiny", None, &["solver.lrr=1".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("solver.lrr"), "{e}");
    assert!(e.contains("solver.optim"), "{e}");
    let e = Config::resolve("tiny", Some("[nope]\nx = 1\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`nope`"), "{e}");
    assert!(Config::resolve("nope", None, &[])
        .unwrap_err()
        .to_string()
        .contains("paper"));
}

#[test]
fn bad_values_are_rejected() {
    let e = Config::resolve(
        "tiny",
        None,
        &[
            "dataset.min_p_hat=0.9".into(),
            "dataset.max_p_hat=0.5".into(),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("min_p_hat"));
    let e = Config::resolve("tiny", None, &["solver.optim.lr=-1".into()]).unwrap_err();
    assert!(e.to_string().contains("solver.optim.lr"));
    let e = Config::resolve("tiny", None, &["iterations=\"x\"".into()]).unwrap_err();
    assert!(e.to_string().contains("iterations"), "{e}");
    let e = Config::resolve(
        "tiny",
        None,
        &[
            "solver.optim.lora_rank=4".into(),
            "solver.optim.lora_targets=[\"q_proj\", \"lm_head\"]".into(),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("solver.optim.lora_targets"), "{e}");
}

#[test]
fn forced_answers_are_on_in_demo_and_tiny_off_in_paper_and_documented() {
    let p = Config::paper();
    for c in [Config::demo(), Config::tiny()] {
        assert!(c.solver.force_answer && c.eval.force_answer);
        assert!(c.challenger.solver_force_answer && c.dataset.solver_force_answer);
    }
    assert!(!(p.solver.force_answer || p.eval.force_answer));
    assert!(!(p.challenger.solver_force_answer || p.dataset.solver_force_answer));
    assert_eq!(p.force_answer(false), None);
    let f = p.force_answer(true).unwrap();
    assert_eq!(f, engine::ForceAnswer::default());
    let text = Config::demo().to_commented_toml();
    for key in [
        "force_answer_cue = ",
        "force_answer_tokens = 16",
        "solver_force_answer = true",
        "force_answer = true",
    ] {
        assert!(text.contains(key), "{key}");
    }
    assert!(text.contains("# Force a final answer on the Solver's training responses"));
    assert!(text.contains("# Forced final answers (where a stage turns them on): the cue"));
    assert!(text.contains(r#"force_answer_cue = "\n\nFinal answer: \\boxed{""#));
    // A config.toml written before the keys existed: forcing off, default cue.
    let old: String = p
        .to_commented_toml()
        .lines()
        .filter(|l| !l.contains("force_answer"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(Config::from_toml(&old).unwrap(), p);
    let e = Config::resolve(
        "tiny",
        None,
        &["engine.force_answer_cue=\"Answer:\"".into()],
    )
    .unwrap_err();
    assert!(e.to_string().contains("engine.force_answer_cue"), "{e}");
    let e = Config::resolve("tiny", None, &["engine.force_answer_tokens=0".into()]).unwrap_err();
    assert!(e.to_string().contains("max_tokens"), "{e}");
}

#[test]
fn lora_keys_default_off_and_old_files_still_parse() {
    let c = Config::paper();
    assert_eq!(c.solver.optim.lora_rank, 0);
    assert!(!c.challenger.optim.recompute);
    let text = c.to_commented_toml();
    assert!(text.contains("lora_rank = 0") && text.contains("# LoRA rank"));
    // A config.toml written before the LoRA keys existed.
    let old: String = text
        .lines()
        .filter(|l| !(l.starts_with("lora_") || l.starts_with("recompute")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(Config::from_toml(&old).unwrap(), c);
    let c = Config::resolve("tiny", None, &["solver.optim.lora_rank=8".into()]).unwrap();
    assert_eq!(c.solver.optim.lora_rank, 8);
}

/// Every key `rzero config` prints has its field's documentation above it, every key of the
/// config is printed, and `--set` of a key with the `tiny` preset's value gives that value.
#[test]
fn every_key_is_documented_and_round_trips_through_set() {
    let docs = keys::docs::<Config>();
    let (mut section, mut comment, mut printed) = (String::new(), Vec::new(), Vec::new());
    for line in Config::paper().to_commented_toml().lines() {
        if let Some(c) = line.strip_prefix("# ") {
            comment.push(c);
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = format!("{}.", s.trim_end_matches(']'));
        } else if let Some((k, _)) = line.split_once(" = ") {
            let path = format!("{section}{k}");
            assert!(
                !comment.is_empty(),
                "{path} is printed without documentation"
            );
            assert_eq!(Some(&comment.join(" ")), docs.get(&path), "{path}");
            printed.push(path);
        }
        comment.clear();
    }
    fn leaves(v: &toml::Value) -> usize {
        v.as_table().map_or(1, |t| t.values().map(leaves).sum())
    }
    let tiny = toml::Value::try_from(Config::tiny()).unwrap();
    assert_eq!(printed.len(), leaves(&tiny));
    assert!(printed.len() > 90, "{printed:?}");
    let at = |v: &toml::Value, path: &str| path.split('.').fold(v, |v, p| &v[p]).clone();
    for path in &printed {
        let set = format!("{path}={}", at(&tiny, path));
        let c = Config::resolve("paper", None, std::slice::from_ref(&set)).unwrap();
        let back = toml::Value::try_from(&c).unwrap();
        assert_eq!(at(&back, path), at(&tiny, path), "--set {set}");
    }
}

/// `RUN/config.toml` of a `paper` run started at 6e8f9c7, before `[engine]`, the `sampling`
/// sections and the `optim` sections became the libraries' knobs (`engine::EngineKnobs`,
/// `engine::SamplingKnobs`, `train::OptimKnobs`): it loads to the same config, and every line
/// of it (keys, values, their documentation) is still printed, in order; keys added since
/// may come between.
#[test]
fn a_config_toml_of_6e8f9c7_loads_and_prints_the_same() {
    let old = std::fs::read_to_string(testdata::path("config/paper-6e8f9c7.toml")).unwrap();
    assert_eq!(Config::from_toml(&old).unwrap(), Config::paper());
    let new = Config::paper().to_commented_toml();
    let mut lines = new.lines();
    for l in old.lines() {
        assert!(
            lines.any(|n| n == l),
            "no longer printed, or out of order: {l:?}"
        );
    }
}
