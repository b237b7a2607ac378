//! The evaluation keys of issue #15: `eval.answer` (first/last `\boxed{}`) and the LLM judge
//! (`eval.judge_url`, `eval.judge_model`, `eval.judge_api_key_env`).

use grade::AnswerRule;
use rzero::Config;

#[test]
fn presets_pick_the_answer_rule() {
    // The reference's evaluation reads the first box (evaluation/datasets_loader.py).
    assert_eq!(Config::paper().eval.answer, AnswerRule::FirstBoxed);
    // demo and tiny keep rzero's earlier rule.
    assert_eq!(Config::demo().eval.answer, AnswerRule::LastBoxed);
    assert_eq!(Config::tiny().eval.answer, AnswerRule::LastBoxed);
    let p = Config::paper();
    assert_eq!(p.eval.judge_url, "");
    assert_eq!(p.eval.judge_model, "gpt-4o");
    assert_eq!(p.eval.judge_api_key_env, "OPENAI_API_KEY");
    let text = p.to_commented_toml();
    assert!(text.contains("answer = \"first-boxed\""), "{text}");
    assert!(text.contains("datasets_loader.py"), "{text}");
}

#[test]
fn overrides_parse_and_bad_values_name_the_key() {
    let c = Config::resolve(
        "demo",
        None,
        &[
            "eval.answer=first-boxed".into(),
            "eval.judge_url=http://127.0.0.1:9000".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.eval.answer, AnswerRule::FirstBoxed);
    assert_eq!(c.eval.judge_url, "http://127.0.0.1:9000");

    let e = Config::resolve("demo", None, &["eval.answer=middle-boxed".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("eval.answer"), "{e}");

    let e = Config::resolve("demo", None, &["eval.judge_url=127.0.0.1:9000".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("eval.judge_url"), "{e}");

    let e = Config::resolve(
        "demo",
        None,
        &[
            "eval.judge_url=https://api.openai.com".into(),
            "eval.judge_model=".into(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("eval.judge_model"), "{e}");
}

#[test]
fn a_config_file_without_the_new_keys_still_loads() {
    // A run directory's config.toml written before these keys existed.
    let text = Config::paper().to_commented_toml();
    let old: String = text
        .lines()
        .filter(|l| {
            !(l.starts_with("answer =")
                || l.starts_with("judge_url =")
                || l.starts_with("judge_model =")
                || l.starts_with("judge_api_key_env ="))
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(old, text);
    let c = Config::from_toml(&old).unwrap();
    assert_eq!(c.eval.answer, AnswerRule::LastBoxed);
    assert_eq!(c.eval.judge_url, "");
    assert_eq!(c.eval.judge_model, "gpt-4o");
    assert_eq!(c.eval.judge_api_key_env, "OPENAI_API_KEY");
}

/// The label audit samples as the dataset stage labels (`dataset.solver_sampling` and
/// `dataset.solver_force_answer`), not at a fixed temperature of its own: run the loop's
/// evaluation hook on the chain model with a greedy dataset sampling, and the m answers of
/// every audited question are one answer, recorded with the dataset's settings.
#[test]
fn the_label_audit_samples_with_the_dataset_solver_sampling() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("chain-model");
    rzero::testing::write_chain_model(&model).unwrap();
    let mut cfg = Config::tiny();
    cfg.eval.benchmarks.clear();
    cfg.audit.benchmarks = vec!["gsm8k".into()];
    cfg.audit.limit = 3;
    cfg.audit.samples = 4;
    cfg.audit.max_new_tokens = 12;
    cfg.dataset.solver_sampling = engine::SamplingKnobs {
        temperature: 0.0,
        top_p: 0.9,
        top_k: 7,
        max_new_tokens: 12,
    };
    cfg.dataset.solver_force_answer = true;
    let run = rzero::rundir::RunDir::create(tmp.path().join("run")).unwrap();
    let mut hook = rzero::evaluate::eval_hook(&cfg).expect("the audit is on");
    hook(&model.to_string_lossy(), &run, 0).unwrap();

    let dir = run.base_eval_dir();
    let opts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("audit_options.json")).unwrap())
            .unwrap();
    assert_eq!(opts["temperature"], 0.0, "{opts}");
    assert!(
        (opts["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6,
        "{opts}"
    );
    assert_eq!(opts["top_k"], 7, "{opts}");
    assert_eq!(opts["max_new_tokens"], 12, "{opts}");
    assert!(opts["force_answer"].is_string(), "{opts}");
    // greedy: the m answers of a question are equal (at the audit's old temperature 1.0 the
    // chain model's answers differ)
    let text = std::fs::read_to_string(dir.join("audit_responses.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let resp = r["responses"].as_array().unwrap();
        assert_eq!(resp.len(), 4);
        assert!(resp.iter().all(|x| x == &resp[0]), "{resp:?}");
        // forced answers close a box on every response
        assert!(
            grade::extract_boxed(resp[0].as_str().unwrap()).is_some(),
            "{resp:?}"
        );
    }
}
