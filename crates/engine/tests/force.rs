//! Forced final answers (`engine::force`) on the tiny fixture models: every completion ends
//! with a closed `\boxed{…}`, the `forced` mask marks exactly the cue (and any closing braces
//! the engine appended), and the log-probs the engine reports for the forced sequence equal a
//! plain scoring of the same tokens (`model::logprobs::score`) within the fixtures'
//! `token_logprobs` tolerance.

use engine::force::{has_closed_box, open_braces, DEFAULT_CUE};
use engine::{Completion, Engine, EngineConfig, ForceAnswer, Request, SamplingParams};

fn prompts(expected: &serde_json::Value) -> Vec<(Vec<u32>, Vec<u32>)> {
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .expect("id array")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    };
    expected["generate"]["single"]
        .as_array()
        .expect("generate.single")
        .iter()
        .map(|c| (ids(&c["prompt_ids"]), ids(&c["new_ids"])))
        .collect()
}

/// Checks one forced completion; returns whether the engine had to close the box itself.
fn check_forced(
    name: &str,
    c: &Completion,
    tok: &model::Tokenizer,
    f: &ForceAnswer,
    stop_ids: &[u32],
) -> bool {
    let cue = tok.encode(&f.cue, false).unwrap();
    let close = tok.encode("}", false).unwrap();
    let n = c.token_ids.len();
    assert!(
        has_closed_box(&c.text),
        "{name}: no closed box in {:?}",
        c.text
    );
    assert_eq!(c.forced.len(), n, "{name}: one mask value per token");
    let at = c.forced.iter().position(|&x| x).expect("something forced");
    // The cue follows the model's own tokens, forced, token for token.
    assert_eq!(
        &c.token_ids[at..at + cue.len()],
        &cue[..],
        "{name}: the cue"
    );
    assert!(c.forced[at..at + cue.len()].iter().all(|&x| x));
    // The model's response before the cue: sampled, no stop id left in it.
    assert!(c.forced[..at].iter().all(|&x| !x));
    assert!(
        !c.token_ids[..at].iter().any(|t| stop_ids.contains(t)),
        "{name}: the EOS / stop id that ended the response is replaced by the cue"
    );
    // After the cue: the model's answer (sampled, at most max_tokens), then only closing
    // braces the engine appended.
    let rest = &c.forced[at + cue.len()..];
    let answer = rest.iter().take_while(|&&x| !x).count();
    assert!(answer <= f.max_tokens, "{name}: {answer} answer tokens");
    let tail = &c.token_ids[at + cue.len() + answer..];
    assert!(rest[answer..].iter().all(|&x| x), "{name}: forced tail");
    assert_eq!(tail.len() % close.len(), 0);
    assert!(tail.chunks(close.len()).all(|ch| ch == &close[..]));
    // The forced part is the cue, the answer and the braces that balance it.
    let forced_text = tok.decode(&c.token_ids[at..], true).unwrap();
    assert!(forced_text.starts_with(&f.cue));
    assert_eq!(open_braces(&forced_text), 0, "{name}: {forced_text:?}");
    !tail.is_empty()
}

#[test]
fn forced_answers_close_a_box_mask_the_cue_and_score_like_the_model() {
    let (atol, rtol) = testdata::tolerance("models/tolerances.json", "token_logprobs");
    let (mut closed_by_engine, mut closed_by_model, mut replaced_eos) = (0, 0, 0);
    for name in testdata::MODELS {
        let dir = testdata::model_dir(name);
        let expected: serde_json::Value = testdata::read_json(&dir.join("expected.json"));
        let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        let m = loaded.model().unwrap();
        let tok = &loaded.tokenizer;
        let cases = prompts(&expected);
        let eng = Engine::new(&m, tok, EngineConfig::default()).unwrap();
        for (max_tokens, temperature) in [(3, 1.0), (16, 1.0), (16, 0.0)] {
            let f = ForceAnswer {
                cue: DEFAULT_CUE.into(),
                max_tokens,
            };
            let mut reqs = Vec::new();
            for (i, (p, new_ids)) in cases.iter().enumerate() {
                // Sampled and cut at the limit; and greedy with the reference's 4th token as
                // a stop id, so the completion ends on it and the cue replaces it.
                reqs.push(Request {
                    id: 2 * i as u64,
                    prompt_ids: p.clone(),
                    params: SamplingParams {
                        n: 3,
                        temperature,
                        max_new_tokens: 10,
                        seed: 7 + i as u64,
                        logprobs: true,
                        ignore_eos: true,
                        force_answer: Some(f.clone()),
                        ..SamplingParams::default()
                    },
                });
                reqs.push(Request {
                    id: 2 * i as u64 + 1,
                    prompt_ids: p.clone(),
                    params: SamplingParams {
                        stop_token_ids: vec![new_ids[3]],
                        ignore_eos: true,
                        logprobs: true,
                        force_answer: Some(f.clone()),
                        ..SamplingParams::greedy(new_ids.len())
                    },
                });
            }
            let out = eng.generate(&reqs, |_| {}).unwrap();
            let mut items = Vec::new();
            let mut lps = Vec::new();
            for (r, req) in out.iter().zip(&reqs) {
                for c in &r.completions {
                    let stops = &req.params.stop_token_ids;
                    if check_forced(name, c, tok, &f, stops) {
                        closed_by_engine += 1;
                    } else {
                        closed_by_model += 1;
                    }
                    if !stops.is_empty() {
                        let cut = cases[(req.id / 2) as usize]
                            .1
                            .iter()
                            .position(|t| stops.contains(t));
                        let at = c.forced.iter().position(|&x| x).unwrap();
                        // greedy: the model's part is the reference up to the stop id
                        assert_eq!(Some(at), cut, "{name}: the cue sits where the stop id was");
                        replaced_eos += 1;
                    }
                    items.push((req.prompt_ids.clone(), c.token_ids.clone()));
                    lps.push(c.logprobs.clone().expect("logprobs asked for"));
                }
            }
            // The engine's log-probs of the whole forced sequence equal a plain scoring.
            let scored = model::logprobs::score(&m, &items, 4).unwrap();
            for (k, (got, want)) in lps.iter().zip(&scored).enumerate() {
                assert_eq!(got.len(), want.len());
                for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
                    let tol = atol + rtol * (w as f64).abs();
                    assert!(
                        ((g - w) as f64).abs() <= tol,
                        "{name} completion {k} token {j}: engine {g} vs score {w} (tol {tol})"
                    );
                }
            }
        }
    }
    // Both endings were exercised: boxes closed by the model and by the engine.
    assert!(closed_by_engine > 0, "no completion needed closing braces");
    assert!(replaced_eos > 0);
    eprintln!("closed by the engine: {closed_by_engine}, by the model: {closed_by_model}");
}

#[test]
fn stop_string_endings_are_not_forced_and_bad_cues_are_refused() {
    let dir = testdata::model_dir("llama-tiny");
    let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    let expected: serde_json::Value = testdata::read_json(&dir.join("expected.json"));
    let (p, new_ids) = prompts(&expected).remove(0);
    let eng = Engine::new(&m, &loaded.tokenizer, EngineConfig::default()).unwrap();
    // A stop string from the greedy reference text ends the response early.
    let text = loaded.tokenizer.decode(&new_ids, true).unwrap();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let stop = text[chars[2].0..chars[4].0].to_string();
    let req = |force: Option<ForceAnswer>| Request {
        id: 0,
        prompt_ids: p.clone(),
        params: SamplingParams {
            stop: vec![stop.clone()],
            ignore_eos: true,
            force_answer: force,
            ..SamplingParams::greedy(new_ids.len())
        },
    };
    let plain = eng.generate(&[req(None)], |_| {}).unwrap();
    let forced = eng
        .generate(&[req(Some(ForceAnswer::default()))], |_| {})
        .unwrap();
    assert_eq!(
        plain, forced,
        "a stop string is the caller's end: no forcing"
    );
    assert!(plain[0].completions[0].stop_string.is_some());
    // A cue that opens no brace is refused, naming the field.
    let bad = Request {
        params: SamplingParams {
            force_answer: Some(ForceAnswer {
                cue: "Answer:".into(),
                max_tokens: 4,
            }),
            ..SamplingParams::greedy(4)
        },
        ..req(None)
    };
    let e = eng.generate(&[bad], |_| {}).unwrap_err().to_string();
    assert!(e.contains("force_answer.cue"), "{e}");
}
