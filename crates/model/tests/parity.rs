//! Parity with the PyTorch/transformers fixtures for llama-tiny, qwen2-tiny and qwen3-tiny:
//! logits (single and left-padded batch), loss and every gradient, greedy decoding (uncached
//! `forward`, and `forward_packed` with caches, single and batched), continuation log-probs
//! (`score` and `token_logprobs`), and bf16 vs f32.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use model::logprobs::{score, token_logprobs};
use model::{Model, SeqInput};

fn for_each_model(f: impl Fn(&Fixture)) {
    for name in MODELS {
        f(&load(name));
    }
}

#[test]
fn num_parameters_match() {
    for_each_model(|fx| {
        assert_eq!(
            fx.cfg.num_parameters() as u64,
            fx.expected["num_parameters"].as_u64().unwrap(),
            "{}",
            fx.name
        );
        let n: usize = fx.weights.values().map(|t| t.elem_count()).sum();
        assert_eq!(n, fx.cfg.num_parameters(), "{}: weights file", fx.name);
    });
}

#[test]
fn single_sequence_logits() {
    for_each_model(|fx| {
        let m = fx.model(DType::F32);
        for case in fx.expected["forward"].as_array().unwrap() {
            let input = ids(&case["input_ids"]);
            let want: Vec<f32> = floats2(&case["logits"]).concat();
            let got = m.forward(&row_ids(&input), None).unwrap();
            assert_eq!(got.dims(), [1, input.len(), vocab(fx)]);
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_close_to(
                &format!("{} logits len {}", fx.name, input.len()),
                &got,
                &want,
                "logits",
            );
        }
    });
}

#[test]
fn left_padded_batch_logits() {
    for_each_model(|fx| {
        let m = fx.model(DType::F32);
        let fb = &fx.expected["forward_batch"];
        let rows: Vec<Vec<u32>> = fb["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let masks: Vec<Vec<u32>> = fb["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let (b, t) = (rows.len(), rows[0].len());
        let x = Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).unwrap();
        let mk = Tensor::from_vec(masks.concat(), (b, t), &Device::Cpu).unwrap();
        let logits = m.forward(&x, Some(&mk)).unwrap();
        let all = logits.to_vec3::<f32>().unwrap();
        for (bi, row) in fb["rows"].as_array().unwrap().iter().enumerate() {
            let len = row["length"].as_u64().unwrap() as usize;
            let got: Vec<f32> = all[bi][t - len..].concat();
            assert!(
                all[bi].iter().flatten().all(|v| v.is_finite()),
                "pad rows finite"
            );
            let want = floats2(&row["logits"]).concat();
            assert_close_to(
                &format!("{} batch row {bi}", fx.name),
                &got,
                &want,
                "logits",
            );
        }
    });
}

#[test]
fn loss_and_every_gradient() {
    for_each_model(|fx| {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap();
            for (k, t) in &fx.weights {
                data.insert(k.clone(), Var::from_tensor(t).unwrap());
            }
        }
        let m = Model::new(&fx.cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let l = &fx.expected["loss"];
        let input = ids(&l["input_ids"]);
        let n = input.len();
        let hidden = m.forward_hidden(&row_ids(&input[..n - 1]), None).unwrap();
        let targets = row_ids(&input[1..]);
        let (lp, ent) = token_logprobs(&m, &hidden, &targets, 7).unwrap();
        assert!(ent.to_vec2::<f32>().unwrap()[0]
            .iter()
            .all(|&e| e > 0.0 && e <= (vocab(fx) as f32).ln() + 1e-4));
        let loss = lp.mean_all().unwrap().neg().unwrap();
        let got = loss.to_scalar::<f32>().unwrap();
        let want = l["loss"].as_f64().unwrap() as f32;
        let (atol, _) = tol("loss");
        assert!(
            (got - want).abs() <= atol,
            "{} loss {got} vs {want}",
            fx.name
        );
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        let norms = l["grad_l2_norm"].as_object().unwrap();
        assert_eq!(
            norms.len(),
            data.len(),
            "{}: one norm per parameter",
            fx.name
        );
        for (name, want) in norms {
            let var = data
                .get(name)
                .unwrap_or_else(|| panic!("{}: no var {name}", fx.name));
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{}: no gradient for {name}", fx.name));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .sqrt()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let want = want.as_f64().unwrap() as f32;
            let (atol, rtol) = tol("grad_l2_norm");
            assert!(
                (norm - want).abs() <= rtol * want.abs() + atol,
                "{}: grad norm {name}: {norm} vs {want}",
                fx.name
            );
        }
        for (name, s) in l["grad_samples"].as_object().unwrap() {
            let g = grads.get(data[name].as_tensor()).unwrap();
            let flat = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_close_to(
                &format!("{} first8 {name}", fx.name),
                &flat[..8],
                &floats(&s["first8"]),
                "grad_samples",
            );
            if let Some(row) = s.get("row_token_id") {
                let r = row.as_u64().unwrap() as usize;
                let h = fx.cfg.hidden_size;
                assert_close_to(
                    &format!("{} embedding row {r}", fx.name),
                    &flat[r * h..r * h + 8],
                    &floats(&s["row_first8"]),
                    "grad_samples",
                );
            }
        }
    });
}

/// Greedy decoding by re-running `forward` on the whole (padded) batch each step.
fn greedy_uncached(m: &Model, prompts: &[Vec<u32>], steps: usize) -> Vec<Vec<u32>> {
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    let mut out = vec![Vec::new(); prompts.len()];
    for _ in 0..steps {
        let t = seqs.iter().map(|s| s.len()).max().unwrap();
        let mut x = Vec::new();
        let mut mk = Vec::new();
        for s in &seqs {
            x.extend(std::iter::repeat_n(0u32, t - s.len()));
            x.extend_from_slice(s);
            mk.extend(std::iter::repeat_n(0u32, t - s.len()));
            mk.extend(std::iter::repeat_n(1u32, s.len()));
        }
        let b = seqs.len();
        let x = Tensor::from_vec(x, (b, t), &Device::Cpu).unwrap();
        let mk = Tensor::from_vec(mk, (b, t), &Device::Cpu).unwrap();
        let logits = m.forward(&x, Some(&mk)).unwrap().to_vec3::<f32>().unwrap();
        for bi in 0..b {
            let tok = argmax(&logits[bi][t - 1]);
            seqs[bi].push(tok);
            out[bi].push(tok);
        }
    }
    out
}

/// Greedy decoding with `forward_packed` and one cache per sequence; the prompts are
/// prefilled in two chunks to exercise causal attention within a chunk after a cache.
fn greedy_packed(m: &Model, prompts: &[Vec<u32>], steps: usize) -> Vec<Vec<u32>> {
    let mut caches: Vec<_> = prompts.iter().map(|_| m.new_cache()).collect();
    let split: Vec<usize> = prompts.iter().map(|p| p.len() / 2).collect();
    {
        let mut seqs: Vec<SeqInput> = caches
            .iter_mut()
            .zip(prompts)
            .zip(&split)
            .map(|((c, p), &s)| SeqInput {
                tokens: &p[..s.max(1)],
                cache: c,
            })
            .collect();
        m.forward_packed(&mut seqs).unwrap();
    }
    let mut last: Vec<u32> = Vec::new();
    {
        let mut seqs: Vec<SeqInput> = caches
            .iter_mut()
            .zip(prompts)
            .zip(&split)
            .map(|((c, p), &s)| SeqInput {
                tokens: &p[s.max(1)..],
                cache: c,
            })
            .collect();
        let logits = m
            .forward_packed(&mut seqs)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        last.extend(logits.iter().map(|r| argmax(r)));
    }
    let mut out: Vec<Vec<u32>> = last.iter().map(|&t| vec![t]).collect();
    for _ in 1..steps {
        let toks: Vec<[u32; 1]> = last.iter().map(|&t| [t]).collect();
        let mut seqs: Vec<SeqInput> = caches
            .iter_mut()
            .zip(&toks)
            .map(|(c, t)| SeqInput {
                tokens: &t[..],
                cache: c,
            })
            .collect();
        let logits = m
            .forward_packed(&mut seqs)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        last = logits.iter().map(|r| argmax(r)).collect();
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
fn greedy_generation_matches() {
    for_each_model(|fx| {
        let m = fx.model(DType::F32);
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
            assert_eq!(
                &greedy_packed(&m, std::slice::from_ref(p), 20)[0],
                w,
                "{} packed single",
                fx.name
            );
        }
        assert_eq!(
            greedy_packed(&m, &prompts, 20),
            want_batched,
            "{} packed batched",
            fx.name
        );
        assert_eq!(
            greedy_uncached(&m, &prompts[..1], 20)[0],
            want[0],
            "{} uncached single",
            fx.name
        );
        assert_eq!(
            greedy_uncached(&m, &prompts, 20),
            want_batched,
            "{} uncached batched",
            fx.name
        );
    });
}

#[test]
fn packed_logits_match_reference() {
    for_each_model(|fx| {
        let m = fx.model(DType::F32);
        // Three sequences of lengths 1, 7, 33 in one packed call: last-token logits.
        let cases = fx.expected["forward"].as_array().unwrap();
        let inputs: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["input_ids"])).collect();
        let mut caches: Vec<_> = inputs.iter().map(|_| m.new_cache()).collect();
        let mut seqs: Vec<SeqInput> = caches
            .iter_mut()
            .zip(&inputs)
            .map(|(c, t)| SeqInput {
                tokens: t,
                cache: c,
            })
            .collect();
        let logits = m.forward_packed(&mut seqs).unwrap();
        assert_eq!(logits.dims(), [3, vocab(fx)]);
        let logits = logits.to_vec2::<f32>().unwrap();
        for (i, c) in cases.iter().enumerate() {
            let want = floats2(&c["logits"]).pop().unwrap();
            assert_close_to(
                &format!("{} packed {i}", fx.name),
                &logits[i],
                &want,
                "logits",
            );
        }
        // More than 64 packed rows takes the blocked-gemm branch of the linear layers.
        let big = [&inputs[2], &inputs[2], &inputs[1], &inputs[0]];
        let mut bc: Vec<_> = big.iter().map(|_| m.new_cache()).collect();
        let mut seqs: Vec<SeqInput> = bc
            .iter_mut()
            .zip(big)
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
        for (i, ci) in [2usize, 2, 1, 0].into_iter().enumerate() {
            let want = floats2(&cases[ci]["logits"]).pop().unwrap();
            assert_close_to(
                &format!("{} packed >64 rows {i}", fx.name),
                &lg[i],
                &want,
                "logits",
            );
        }
        // A cloned cache continues identically; truncate rewinds.
        let mut a = caches[2].clone();
        let mut b = caches[2].clone();
        assert_eq!(a.bytes(), caches[2].bytes());
        b.truncate(20);
        assert_eq!(b.len(), 20);
        let la = m
            .forward_packed(&mut [SeqInput {
                tokens: &[5],
                cache: &mut a,
            }])
            .unwrap();
        let lb = m
            .forward_packed(&mut [SeqInput {
                tokens: &inputs[2][20..],
                cache: &mut b,
            }])
            .unwrap();
        let lb2 = m
            .forward_packed(&mut [SeqInput {
                tokens: &[5],
                cache: &mut b,
            }])
            .unwrap();
        let diff = (la - lb2)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            diff < tol("logits").0,
            "{}: clone vs truncate+refill: {diff}",
            fx.name
        );
        let want_last = floats2(&cases[2]["logits"]).pop().unwrap();
        assert_close_to(
            "refill",
            &lb.to_vec2::<f32>().unwrap()[0],
            &want_last,
            "logits",
        );
    });
}

#[test]
fn continuation_logprobs() {
    for_each_model(|fx| {
        let m = fx.model(DType::F32);
        let lp = &fx.expected["logprobs"];
        let p = ids(&lp["prompt_ids"]);
        let c = ids(&lp["continuation_ids"]);
        let want = floats(&lp["token_logprobs"]);
        // Mixed with other items of other lengths, so the fixture item gets left-padded.
        let items = vec![
            (p[..3].to_vec(), c[..2].to_vec()),
            (p.clone(), c.clone()),
            (p[..5].to_vec(), vec![]),
            ([p.clone(), c.clone(), p.clone()].concat(), c[..4].to_vec()),
        ];
        let got = score(&m, &items, 3).unwrap();
        assert_close_to(
            &format!("{} score", fx.name),
            &got[1],
            &want,
            "token_logprobs",
        );
        assert!(got[2].is_empty());
        assert_eq!(got[0].len(), 2);
        let alone = score(&m, &items[..1], 1).unwrap();
        assert_close_to(
            "score independent of batch",
            &got[0],
            &alone[0],
            "token_logprobs",
        );
        // token_logprobs over one forward of prompt + continuation.
        let all = [p.clone(), c.clone()].concat();
        let n = all.len();
        let hidden = m.forward_hidden(&row_ids(&all[..n - 1]), None).unwrap();
        let (lps, _) = token_logprobs(&m, &hidden, &row_ids(&all[1..]), 5).unwrap();
        let lps = lps.to_vec2::<f32>().unwrap().remove(0);
        assert_close_to(
            &format!("{} token_logprobs", fx.name),
            &lps[p.len() - 1..],
            &want,
            "token_logprobs",
        );
        let sum: f32 = got[1].iter().sum();
        assert!((sum - lp["sum"].as_f64().unwrap() as f32).abs() <= tol("logprob_sum").0);
    });
}

#[test]
fn bf16_close_to_f32() {
    let fx = load("qwen3-tiny");
    let m32 = fx.model(DType::F32);
    let m16 = fx.model(DType::BF16);
    assert_eq!(m16.dtype(), DType::BF16);
    let input = ids(&fx.expected["forward"][2]["input_ids"]);
    let a = m32.forward(&row_ids(&input), None).unwrap();
    let b = m16.forward(&row_ids(&input), None).unwrap();
    assert_eq!(b.dtype(), DType::F32);
    // bf16 keeps ~3 significant digits: the bound scales with the largest f32 logit.
    let (atol, rtol) = tol("bf16_logits");
    let scale = a
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let bf16 = atol + rtol * scale;
    let diff = (a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff < bf16 && diff > 0.0,
        "bf16 vs f32 max diff {diff} (bound {bf16})"
    );
    // The packed path in bf16 agrees with the bf16 forward.
    let mut c = m16.new_cache();
    let p = m16
        .forward_packed(&mut [SeqInput {
            tokens: &input,
            cache: &mut c,
        }])
        .unwrap();
    let last = b
        .narrow(1, input.len() - 1, 1)
        .unwrap()
        .flatten_all()
        .unwrap();
    let d2 = (p.flatten_all().unwrap() - last)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(d2.to_scalar::<f32>().unwrap() < bf16);
}
