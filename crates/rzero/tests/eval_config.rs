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
