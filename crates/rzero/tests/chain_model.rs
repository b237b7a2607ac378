//! The chain test model samples mostly well-formed answers for both roles.

#[test]
fn chain_model_writes_well_formed_responses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    rzero::testing::write_chain_model(&dir).unwrap();
    let loaded = model::load(&dir.to_string_lossy(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    assert_eq!(loaded.eos_token_ids(), vec![2]);
    let engine = engine::EngineKnobs {
        max_batch_size: 8,
        max_kv_bytes: 0,
        ..rzero::Config::tiny().engine
    };
    let role = rzero::rollout::Role::local(&m, &loaded, &engine).unwrap();
    let prompt = rzero::prompts::challenger_prompt(role.template, false, "").unwrap();
    let ids = role.encode(&prompt).unwrap();
    let sampling = engine::SamplingKnobs {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 16,
    };
    let out = role
        .sample(&[ids], 16, &sampling, 7, &mut |_, _| {})
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

/// Forced final answers on a model that closes its own box: cut at 3 tokens, every response
/// gets the cue, then the chain model writes `5}` or `6}` itself (not forced, trained on),
/// and the groups the Solver phase builds carry the mask.
#[test]
fn forced_answers_let_the_model_close_the_box() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    rzero::testing::write_chain_model(&dir).unwrap();
    let loaded = model::load(&dir.to_string_lossy(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    let cfg = rzero::Config::tiny();
    let role = rzero::rollout::Role::local(&m, &loaded, &cfg.engine).unwrap();
    let prompt = rzero::prompts::solver_prompt(role.template, "What is 2 + 3?", false).unwrap();
    let ids = role.encode(&prompt).unwrap();
    let sampling = engine::SamplingKnobs {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 3,
    };
    let force = cfg.force_answer(cfg.solver.force_answer);
    assert!(force.is_some(), "tiny forces answers");
    let out = role
        .sample_with(
            std::slice::from_ref(&ids),
            8,
            &sampling,
            force.as_ref(),
            7,
            &mut |_, _| {},
        )
        .unwrap();
    let cue = loaded
        .tokenizer
        .encode(&cfg.engine.force_answer_cue, false)
        .unwrap();
    let mut by_model = 0;
    for s in &out[0] {
        assert!(grade::extract_boxed(&s.text).is_some(), "{:?}", s.text);
        let at = s
            .forced
            .iter()
            .position(|&f| f)
            .expect("cut responses are forced");
        assert!(at <= 3);
        assert_eq!(&s.token_ids[at..at + cue.len()], &cue[..]);
        assert!(s.forced[at..at + cue.len()].iter().all(|&f| f));
        // the model's own answer and closing brace: sampled, so trained on
        let answer = cfg.extract_answer(&s.text);
        if s.forced[at + cue.len()..].iter().all(|&f| !f)
            && matches!(answer.as_deref(), Some("5" | "6"))
        {
            by_model += 1;
        }
    }
    assert!(
        by_model >= 4,
        "the chain model closes its box itself: {by_model} of 8"
    );
    // The Solver phase's groups carry the masks (forced cue tokens get no gradient).
    let g = rzero::policy::group_masked(
        ids,
        out[0].iter().map(|s| s.token_ids.clone()).collect(),
        out[0].iter().map(|s| s.forced.clone()).collect(),
        vec![1.0; out[0].len()],
    );
    for (r, s) in g.responses.iter().zip(&out[0]) {
        assert_eq!(r.forced, s.forced);
    }
}
