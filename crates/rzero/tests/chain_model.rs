//! The chain test model samples mostly well-formed answers for both roles.

#[test]
fn chain_model_writes_well_formed_responses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    rzero::testing::write_chain_model(&dir).unwrap();
    let loaded = model::load(&dir.to_string_lossy(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    let role = rzero::rollout::Role {
        model: &m,
        tokenizer: &loaded.tokenizer,
        template: loaded.chat_template.as_ref(),
        eos_token_ids: vec![2],
        remote: None,
    };
    let prompt = rzero::prompts::challenger_prompt(role.template, false, "").unwrap();
    let ids = role.encode(&prompt).unwrap();
    let sampling = rzero::config::Sampling {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 16,
    };
    let engine = rzero::config::EngineSection {
        max_batch_size: 8,
        max_kv_bytes: 0,
    };
    let out = role
        .sample(&[ids], 16, &sampling, 7, &engine, &mut |_, _| {})
        .unwrap();
    let texts: Vec<&str> = out[0].iter().map(|s| s.text.as_str()).collect();
    let parsed: Vec<_> = texts
        .iter()
        .filter_map(|t| reward::challenger::parse_challenger_output(t))
        .collect();
    assert!(parsed.len() >= 8, "{texts:#?}");
    let answers: std::collections::BTreeSet<&str> =
        parsed.iter().map(|(_, a)| a.as_str()).collect();
    assert!(
        answers.contains("5") && answers.contains("6"),
        "{answers:?}"
    );
    let solver_ok = texts
        .iter()
        .filter(|t| reward::solver::solver_format_ok(t))
        .count();
    assert!(solver_ok >= 8, "{texts:#?}");
}
