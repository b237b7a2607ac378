//! The engine on the real model: greedy output equals the PyTorch reference
//! (`tests/fixtures/models/*-tiny/expected.json`, cached greedy, EOS disabled), for
//! each prompt alone, for both prompts batched, with chunked prefill, with n samples, and
//! under a KV budget that forces waiting.

use engine::{Engine, EngineConfig, FinishReason, Request, SamplingParams};

struct Case {
    prompt_ids: Vec<u32>,
    new_ids: Vec<u32>,
}

fn cases(expected: &serde_json::Value) -> Vec<Case> {
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
        .map(|c| Case {
            prompt_ids: ids(&c["prompt_ids"]),
            new_ids: ids(&c["new_ids"]),
        })
        .collect()
}

#[test]
fn engine_greedy_equals_reference_on_tiny_fixtures() {
    engine_greedy_equals_reference(true);
}

/// The same through the device-generic path (`--device cpu-generic`, the GPU's code path).
#[test]
fn engine_greedy_equals_reference_on_the_generic_path() {
    engine_greedy_equals_reference(false);
}

fn engine_greedy_equals_reference(packed_kernels: bool) {
    for name in testdata::MODELS {
        let dir = testdata::model_dir(name);
        let expected: serde_json::Value = testdata::read_json(&dir.join("expected.json"));
        let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        let mut m = loaded.model().unwrap();
        m.set_packed_kernels(packed_kernels);
        assert_eq!(m.new_cache().is_device(), !packed_kernels);
        let cs = cases(&expected);
        let batched: Vec<Vec<u32>> = expected["generate"]["batched_left_padded"]["new_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        let mk = |n: usize| -> Vec<Request> {
            cs.iter()
                .enumerate()
                .map(|(i, c)| Request {
                    id: i as u64,
                    prompt_ids: c.prompt_ids.clone(),
                    params: SamplingParams {
                        n,
                        ignore_eos: true,
                        ..SamplingParams::greedy(c.new_ids.len())
                    },
                })
                .collect()
        };
        let bpt = m.kv_bytes_per_token();
        let longest = cs
            .iter()
            .map(|c| c.prompt_ids.len() + c.new_ids.len())
            .max()
            .unwrap();
        let configs = [
            // (batch, kv tokens, prefill chunk)
            (1, 100_000, 512),
            (8, 100_000, 512),
            (8, 100_000, 3),
            (8, longest + 4, 5),
        ];
        for (bs, kv, chunk) in configs {
            let cfg = EngineConfig {
                max_batch_size: bs,
                max_kv_bytes: kv * bpt,
                prefill_chunk: chunk,
                eos_token_ids: loaded.generation.eos_token_ids.clone(),
            };
            let eng = Engine::new(&m, &loaded.tokenizer, cfg).unwrap();
            // One request at a time (the `single` reference) ...
            for (i, c) in cs.iter().enumerate() {
                let out = eng.generate(&mk(1)[i..=i], |_| {}).unwrap();
                assert_eq!(
                    out[0].completions[0].token_ids, c.new_ids,
                    "{name} single {i} (bs {bs}, kv {kv}, chunk {chunk})"
                );
                assert_eq!(out[0].completions[0].finish_reason, FinishReason::Length);
            }
            // ... and both together, three samples each (the batched reference).
            let out = eng.generate(&mk(3), |_| {}).unwrap();
            for (r, want) in out.iter().zip(&batched) {
                for c in &r.completions {
                    assert_eq!(&c.token_ids, want, "{name} batched (bs {bs}, kv {kv})");
                    let text = loaded.tokenizer.decode(want, true).unwrap();
                    assert_eq!(c.text, text);
                }
            }
        }
    }
}

#[test]
fn seeded_sampling_on_real_model_ignores_batch_and_order() {
    let dir = testdata::model_dir("qwen2-tiny");
    let expected: serde_json::Value = testdata::read_json(&dir.join("expected.json"));
    let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    let reqs: Vec<Request> = cases(&expected)
        .into_iter()
        .enumerate()
        .map(|(i, c)| Request {
            id: i as u64,
            prompt_ids: c.prompt_ids,
            params: SamplingParams {
                n: 4,
                temperature: 1.0,
                top_p: 0.9,
                max_new_tokens: 24,
                seed: 1000 + i as u64,
                ignore_eos: true,
                ..SamplingParams::default()
            },
        })
        .collect();
    let run = |bs: usize, chunk: usize, reqs: &[Request]| -> Vec<Vec<Vec<u32>>> {
        let cfg = EngineConfig {
            max_batch_size: bs,
            prefill_chunk: chunk,
            ..EngineConfig::default()
        };
        let eng = Engine::new(&m, &loaded.tokenizer, cfg).unwrap();
        let mut out: Vec<_> = eng
            .generate(reqs, |_| {})
            .unwrap()
            .into_iter()
            .map(|r| (r.request_id, r))
            .collect();
        out.sort_by_key(|x| x.0);
        out.into_iter()
            .map(|(_, r)| r.completions.into_iter().map(|c| c.token_ids).collect())
            .collect()
    };
    let base = run(8, 512, &reqs);
    assert_eq!(base, run(8, 512, &reqs), "two runs");
    assert_eq!(base, run(1, 512, &reqs), "batch 1");
    assert_eq!(base, run(3, 4, &reqs), "batch 3, chunk 4");
    let mut rev = reqs.clone();
    rev.reverse();
    assert_eq!(base, run(8, 512, &rev), "reversed arrival");
    // Samples differ from each other (the streams are distinct).
    assert!(base.iter().any(|g| g.windows(2).any(|w| w[0] != w[1])));
}

#[test]
fn stop_strings_and_eos_with_the_real_tokenizer() {
    let dir = testdata::model_dir("llama-tiny");
    let expected: serde_json::Value = testdata::read_json(&dir.join("expected.json"));
    let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    let eng = Engine::new(
        &m,
        &loaded.tokenizer,
        EngineConfig {
            eos_token_ids: loaded.generation.eos_token_ids.clone(),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let mut checked = 0;
    for c in cases(&expected) {
        let full_text = loaded.tokenizer.decode(&c.new_ids, true).unwrap();
        let chars: Vec<(usize, char)> = full_text.char_indices().collect();
        if chars.len() < 8 {
            continue;
        }
        // A 3-character stop string from the middle of the reference text.
        let (a, b) = (chars[chars.len() / 2].0, chars[chars.len() / 2 + 3].0);
        let stop = full_text[a..b].to_string();
        let at = full_text.find(&stop).unwrap();
        let req = Request {
            id: 0,
            prompt_ids: c.prompt_ids.clone(),
            params: SamplingParams {
                stop: vec![stop.clone()],
                ignore_eos: true,
                ..SamplingParams::greedy(c.new_ids.len())
            },
        };
        let out = eng.generate(&[req], |_| {}).unwrap();
        let comp = &out[0].completions[0];
        assert_eq!(comp.text, full_text[..at], "stop {stop:?}");
        assert_eq!(comp.finish_reason, FinishReason::Stop);
        assert_eq!(comp.token_ids[..], c.new_ids[..comp.token_ids.len()]);
        assert!(comp.token_ids.len() < c.new_ids.len());
        // EOS honoured: with the reference's 4th token declared a stop id.
        let req = Request {
            id: 1,
            prompt_ids: c.prompt_ids.clone(),
            params: SamplingParams {
                stop_token_ids: vec![c.new_ids[3]],
                ..SamplingParams::greedy(c.new_ids.len())
            },
        };
        let out = eng.generate(&[req], |_| {}).unwrap();
        let first = c.new_ids.iter().position(|&t| t == c.new_ids[3]).unwrap();
        assert_eq!(out[0].completions[0].token_ids, c.new_ids[..=first]);
        assert_eq!(out[0].completions[0].finish_reason, FinishReason::Stop);
        checked += 1;
    }
    assert!(
        checked > 0,
        "no reference text long enough for a stop string"
    );
}
