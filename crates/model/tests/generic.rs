//! The device-generic inference path (`--device cpu-generic`, the code a GPU runs) against
//! the PyTorch fixtures and the packed CPU path: greedy ids equal the fixtures' expected
//! tokens (single and batched, prompts prefilled in two chunks), last-token logits close to
//! the reference, cache copies and truncation, bf16, and the errors of a wrong cache.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use model::{Model, SeqInput};

/// The fixture `name` (found by `testdata`; a missing file is a failure naming it).
fn fixture(name: &'static str) -> Fixture {
    let dir = testdata::model_dir(name);
    let cfg = model::Config::from_hf_json(&dir.join("config.json")).expect("config");
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .expect("weights");
    let expected = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json");
    Fixture {
        name,
        cfg,
        weights,
        expected,
    }
}

fn generic(fx: &Fixture, dtype: DType) -> Model {
    let mut m = fx.model(dtype);
    m.set_packed_kernels(false);
    assert!(!m.packed_kernels());
    assert!(m.new_cache().is_device(), "{}: a device cache", fx.name);
    m
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Greedy decoding through `forward_packed`: prompts prefilled in two chunks (causal
/// attention within a chunk after a cache), then `steps - 1` single-token steps.
fn greedy(m: &Model, prompts: &[Vec<u32>], steps: usize) -> Vec<Vec<u32>> {
    let mut caches: Vec<_> = prompts.iter().map(|_| m.new_cache()).collect();
    let split: Vec<usize> = prompts.iter().map(|p| (p.len() / 2).max(1)).collect();
    let run = |toks: Vec<&[u32]>, caches: &mut [model::KvCache]| -> Vec<u32> {
        let mut seqs: Vec<SeqInput> = caches
            .iter_mut()
            .zip(toks)
            .map(|(c, t)| SeqInput {
                tokens: t,
                cache: c,
            })
            .collect();
        let lg = m.forward_packed(&mut seqs).unwrap();
        assert_eq!(lg.dtype(), DType::F32);
        lg.to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|r| argmax(r))
            .collect()
    };
    run(
        prompts.iter().zip(&split).map(|(p, &s)| &p[..s]).collect(),
        &mut caches,
    );
    let mut last = run(
        prompts.iter().zip(&split).map(|(p, &s)| &p[s..]).collect(),
        &mut caches,
    );
    let mut out: Vec<Vec<u32>> = last.iter().map(|&t| vec![t]).collect();
    for _ in 1..steps {
        let toks: Vec<[u32; 1]> = last.iter().map(|&t| [t]).collect();
        last = run(toks.iter().map(|t| &t[..]).collect(), &mut caches);
        for (o, &t) in out.iter_mut().zip(&last) {
            o.push(t);
        }
    }
    for (c, p) in caches.iter().zip(prompts) {
        assert_eq!(c.len(), p.len() + steps - 1);
    }
    out
}

#[test]
fn generic_greedy_equals_fixtures_and_packed_path() {
    for name in MODELS {
        let fx = fixture(name);
        let m = generic(&fx, DType::F32);
        let packed = fx.model(DType::F32);
        assert!(packed.packed_kernels());
        let g = &fx.expected["generate"];
        let singles = g["single"].as_array().unwrap();
        let prompts: Vec<Vec<u32>> = singles.iter().map(|s| ids(&s["prompt_ids"])).collect();
        let want: Vec<Vec<u32>> = singles.iter().map(|s| ids(&s["new_ids"])).collect();
        let want_batched: Vec<Vec<u32>> = g["batched_left_padded"]["new_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        for (p, w) in prompts.iter().zip(&want) {
            let got = greedy(&m, std::slice::from_ref(p), w.len());
            assert_eq!(&got[0], w, "{name} cpu-generic single");
        }
        let steps = want_batched[0].len();
        let got = greedy(&m, &prompts, steps);
        assert_eq!(got, want_batched, "{name} cpu-generic batched");
        assert_eq!(
            got,
            greedy(&packed, &prompts, steps),
            "{name} cpu-generic vs packed"
        );
    }
}

#[test]
fn generic_logits_match_reference_and_packed() {
    for name in MODELS {
        let fx = fixture(name);
        let m = generic(&fx, DType::F32);
        let packed = fx.model(DType::F32);
        // Sequences of lengths 1, 7, 33 in one step: last-token logits.
        let cases = fx.expected["forward"].as_array().unwrap();
        let inputs: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["input_ids"])).collect();
        let step = |m: &Model, caches: &mut Vec<model::KvCache>| {
            let mut seqs: Vec<SeqInput> = caches
                .iter_mut()
                .zip(&inputs)
                .map(|(c, t)| SeqInput {
                    tokens: t,
                    cache: c,
                })
                .collect();
            m.forward_packed(&mut seqs).unwrap()
        };
        let mut caches: Vec<_> = inputs.iter().map(|_| m.new_cache()).collect();
        let logits = step(&m, &mut caches);
        assert_eq!(logits.dims(), [3, 512]);
        let mut pc: Vec<_> = inputs.iter().map(|_| packed.new_cache()).collect();
        let d = max_diff(&logits, &step(&packed, &mut pc));
        assert!(
            d < 1e-4,
            "{name}: cpu-generic vs packed logits differ by {d}"
        );
        let rows = logits.to_vec2::<f32>().unwrap();
        for (i, c) in cases.iter().enumerate() {
            let want = floats2(&c["logits"]).pop().unwrap();
            assert_close(
                &format!("{name} cpu-generic {i}"),
                &rows[i],
                &want,
                1e-4,
                1e-5,
            );
        }
        // The device cache: bytes in the model dtype; a copy continues identically (it does
        // not share storage with the original, which keeps being written); truncate rewinds.
        let c2 = &caches[2];
        assert_eq!(c2.len(), inputs[2].len());
        assert_eq!(c2.bytes(), c2.len() * m.kv_bytes_per_token());
        let mut a = c2.clone();
        let mut b = c2.clone();
        b.truncate(20);
        assert_eq!(b.len(), 20);
        let one = |c: &mut model::KvCache, t: &[u32]| {
            m.forward_packed(&mut [SeqInput {
                tokens: t,
                cache: c,
            }])
            .unwrap()
        };
        // Write past the copies' shared prefix in the original first.
        let _ = one(&mut caches[2], &[7, 8, 9]);
        let la = one(&mut a, &[5]);
        let lb = one(&mut b, &inputs[2][20..]);
        let want_last = floats2(&cases[2]["logits"]).pop().unwrap();
        assert_close(
            "refill",
            &lb.to_vec2::<f32>().unwrap()[0],
            &want_last,
            1e-4,
            1e-5,
        );
        let lb2 = one(&mut b, &[5]);
        let d = max_diff(&la, &lb2);
        assert!(d < 1e-4, "{name}: copy vs truncate+refill: {d}");
        // Growth past the first capacity (64 positions) keeps the cache intact.
        let mut long = m.new_cache();
        let mut pl = packed.new_cache();
        let mut toks: Vec<u32> = inputs[2].clone();
        toks.extend_from_slice(&inputs[2]);
        toks.extend_from_slice(&inputs[1]); // 73 tokens, fed as 40 + 33
        let _ = one(&mut long, &toks[..40]);
        let lg = one(&mut long, &toks[40..]);
        let lp = packed
            .forward_packed(&mut [SeqInput {
                tokens: &toks,
                cache: &mut pl,
            }])
            .unwrap();
        let d = max_diff(&lg, &lp);
        assert!(d < 1e-4, "{name}: grown cache vs packed: {d}");
    }
}

#[test]
fn generic_bf16_close_to_bf16_forward() {
    let fx = fixture("qwen3-tiny");
    let m16 = generic(&fx, DType::BF16);
    let m32 = fx.model(DType::F32);
    let input = ids(&fx.expected["forward"][2]["input_ids"]);
    let mut c = m16.new_cache();
    assert_eq!(m16.kv_bytes_per_token() * 2, m32.kv_bytes_per_token());
    let p = m16
        .forward_packed(&mut [SeqInput {
            tokens: &input,
            cache: &mut c,
        }])
        .unwrap();
    assert_eq!(p.dtype(), DType::F32);
    let reference = m16.forward(&row_ids(&input), None).unwrap();
    let last = reference
        .narrow(1, input.len() - 1, 1)
        .unwrap()
        .flatten_all()
        .unwrap();
    let d = max_diff(&p.flatten_all().unwrap(), &last);
    assert!(d < 0.15, "bf16 cpu-generic vs bf16 forward: {d}");
    let f32_last = floats2(&fx.expected["forward"][2]["logits"]).pop().unwrap();
    let f32_last = Tensor::new(f32_last.as_slice(), &Device::Cpu).unwrap();
    let d = max_diff(&p.flatten_all().unwrap(), &f32_last);
    assert!(
        d < 0.15 && d > 0.0,
        "bf16 cpu-generic vs f32 reference: {d}"
    );
    let _ = m32;
}

#[test]
fn a_cache_of_the_other_path_is_refused() {
    let fx = fixture("llama-tiny");
    let g = generic(&fx, DType::F32);
    let p = fx.model(DType::F32);
    let mut host = p.new_cache();
    let err = g
        .forward_packed(&mut [SeqInput {
            tokens: &[1, 2],
            cache: &mut host,
        }])
        .unwrap_err()
        .to_string();
    assert!(err.contains("another model"), "{err}");
    let mut dev = g.new_cache();
    let err = p
        .forward_packed(&mut [SeqInput {
            tokens: &[1, 2],
            cache: &mut dev,
        }])
        .unwrap_err()
        .to_string();
    assert!(err.contains("another model"), "{err}");
    // A bf16 model refuses an f32 device cache.
    let g16 = generic(&fx, DType::BF16);
    let err = g16
        .forward_packed(&mut [SeqInput {
            tokens: &[1, 2],
            cache: &mut dev,
        }])
        .unwrap_err()
        .to_string();
    assert!(err.contains("another model"), "{err}");
    assert_eq!(dev.len(), 0);
}

/// 256 sequences of lengths 2..=9 decoded together (one batched attention per layer over the
/// KV pool; the second prefill chunk mixes one-token and longer chunks) give the greedy ids
/// each sequence gets alone.
#[test]
fn batch_256_greedy_equals_one_by_one() {
    for name in ["qwen3-tiny", "llama-tiny"] {
        let fx = fixture(name);
        let m = generic(&fx, DType::F32);
        let v = vocab(&fx) as u32;
        let prompts: Vec<Vec<u32>> = (0..256u32)
            .map(|i| {
                let len = 2 + (i % 8) as usize;
                (0..len as u32).map(|j| (7 + i * 31 + j * 13) % v).collect()
            })
            .collect();
        let steps = 5;
        let together = greedy(&m, &prompts, steps);
        for (i, p) in prompts.iter().enumerate() {
            let alone = greedy(&m, std::slice::from_ref(p), steps);
            assert_eq!(together[i], alone[0], "{name}: sequence {i}");
        }
        // The ids are not all one token (the test would not see a mix-up otherwise).
        let firsts: std::collections::BTreeSet<u32> = together.iter().map(|o| o[0]).collect();
        assert!(firsts.len() > 10, "{name}: {firsts:?}");
    }
}

/// Decoding sequences whose pool slots are far apart (the gather path) gives the ids they
/// get alone; dropped caches give their slots back.
#[test]
fn sparse_slots_decode_as_alone() {
    let fx = fixture("qwen3-tiny");
    let m = generic(&fx, DType::F32);
    let v = vocab(&fx) as u32;
    let prompts: Vec<Vec<u32>> = (0..100u32)
        .map(|i| (0..3 + i % 5).map(|j| (11 + i * 17 + j * 5) % v).collect())
        .collect();
    let mut caches: Vec<model::KvCache> = prompts.iter().map(|_| m.new_cache()).collect();
    let mut seqs: Vec<SeqInput> = caches
        .iter_mut()
        .zip(&prompts)
        .map(|(c, p)| SeqInput {
            tokens: p,
            cache: c,
        })
        .collect();
    let first = m
        .forward_packed(&mut seqs)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    drop(seqs);
    let keep = [0usize, 50, 99];
    let mut kept: Vec<model::KvCache> = Vec::new();
    for (i, c) in caches.into_iter().enumerate() {
        if keep.contains(&i) {
            kept.push(c);
        }
    }
    let mut last: Vec<u32> = keep.iter().map(|&i| argmax(&first[i])).collect();
    let mut got: Vec<Vec<u32>> = last.iter().map(|&t| vec![t]).collect();
    for _ in 0..4 {
        let toks: Vec<[u32; 1]> = last.iter().map(|&t| [t]).collect();
        let mut seqs: Vec<SeqInput> = kept
            .iter_mut()
            .zip(&toks)
            .map(|(c, t)| SeqInput {
                tokens: t,
                cache: c,
            })
            .collect();
        let lg = m
            .forward_packed(&mut seqs)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        last = lg.iter().map(|r| argmax(r)).collect();
        for (o, &t) in got.iter_mut().zip(&last) {
            o.push(t);
        }
    }
    for (k, &i) in keep.iter().enumerate() {
        let alone = greedy(&m, std::slice::from_ref(&prompts[i]), 5);
        assert_eq!(got[k], alone[0], "sequence {i}");
    }
    // The 97 dropped caches' slots are reused: 97 new caches leave the pool's size as it is.
    let before = m.kv_pool_slots();
    let mut fresh: Vec<model::KvCache> = (0..97).map(|_| m.new_cache()).collect();
    let mut seqs: Vec<SeqInput> = fresh
        .iter_mut()
        .map(|c| SeqInput {
            tokens: &[1, 2],
            cache: c,
        })
        .collect();
    m.forward_packed(&mut seqs).unwrap();
    assert_eq!(m.kv_pool_slots(), before);
}
