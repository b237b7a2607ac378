//! `ops::GradSink` (`Model::set_grad_sink`): while a buffer is lent, the backward of the
//! decoder layers' fused products adds each registered weight's gradient into its region of
//! the buffer (the embedding lookup and the LM head chunks, summed weights, once summed) and
//! candle's store holds none for it; the added values are candle's gradients
//! bit for bit, every other gradient is unchanged, and without a lent buffer everything goes
//! to candle as before. f32 and bf16 products, tied (llama) and untied (qwen2, with biases)
//! fixtures.

use candle_core::{Device, Tensor};
use model::ops::{GradSink, MatmulPrecision};
use model::Model;

mod common;
use common::{host, var_model, Lcg};

/// The weighted sum of a padded batch's token log-probs, to differentiate.
fn objective(m: &Model) -> Tensor {
    let v = m.config().vocab_size as u32;
    let ids: Vec<u32> = (0..2 * 10).map(|i| (i * 7 + 3) % v).collect();
    let ids = Tensor::from_vec(ids, (2, 10), &Device::Cpu).unwrap();
    let mut mask = vec![1u32; 20];
    mask[10..13].fill(0);
    let mask = Tensor::from_vec(mask, (2, 10), &Device::Cpu).unwrap();
    let targets: Vec<u32> = (0..20).map(|i| (i * 5 + 1) % v).collect();
    let targets = Tensor::from_vec(targets, (2, 10), &Device::Cpu).unwrap();
    let hidden = m.forward_hidden(&ids, Some(&mask)).unwrap();
    let (lp, _) = model::logprobs::token_logprobs(m, &hidden, &targets, 7).unwrap();
    let wv: Vec<f32> = (0..20).map(|i| 1.0 + (i % 5) as f32 * 0.25).collect();
    let wt = Tensor::from_vec(wv, (2, 10), &Device::Cpu).unwrap();
    (&lp * &wt).unwrap().sum_all().unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sunk_gradients_are_candles_added_into_the_buffer() {
    for name in ["llama-tiny", "qwen2-tiny"] {
        for p in [MatmulPrecision::F32, MatmulPrecision::Bf16] {
            let tag = format!("{name} {p:?}");
            let (mut m, vm) = var_model(name, p);
            let data = vm.data().lock().unwrap().clone();
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            // Candle's gradients (no sink).
            let want = objective(&m).backward().unwrap();
            // The decoder layers' matrices in a flat buffer, in name order.
            // The embedding and an untied head as summed weights (the lookup and three
            // chunks of head rows add into them).
            let mut held = Vec::new();
            let mut summed = Vec::new();
            let mut total = 0;
            for n in &names {
                let t = data[*n].as_tensor();
                let head =
                    n.as_str() == "model.embed_tokens.weight" || n.as_str() == "lm_head.weight";
                if head {
                    summed.push((*n, t, total));
                } else if n.starts_with("model.layers.") && t.rank() == 2 {
                    held.push((*n, t, total));
                } else {
                    continue;
                }
                total += t.elem_count();
            }
            assert!(held.len() >= 14, "{tag}: {} layer matrices", held.len());
            let tied = m.config().tie_word_embeddings;
            assert_eq!(
                summed.len(),
                if tied { 1 } else { 2 },
                "{tag}: summed weights"
            );
            let sink = GradSink::with_summed(
                held.iter().map(|&(_, t, off)| (t, off)),
                summed.iter().map(|&(_, t, off)| (t, off)),
            );
            held.extend(summed);
            m.set_grad_sink(Some(sink.clone()));
            // Not lent: every gradient goes to candle, the same as without a sink (the
            // lookup's too: its ids are distinct, so adding it after the head's is exact).
            let got = objective(&m).backward().unwrap();
            for n in &names {
                let t = data[*n].as_tensor();
                let (a, b) = (host(got.get(t).unwrap()), host(want.get(t).unwrap()));
                assert_eq!(bits(&a), bits(&b), "{tag}: {n} without a lent buffer");
            }
            // Lent a buffer that already holds values: each region gets `+= dW`.
            let before = Lcg(7).vec(total, 1.0);
            sink.lend(before.clone());
            let got = objective(&m).backward().unwrap();
            let after = sink.take();
            assert!(sink.take().is_empty(), "{tag}: the buffer was taken back");
            for n in &names {
                let t = data[*n].as_tensor();
                let w = host(want.get(t).unwrap());
                match held.iter().find(|h| h.0 == *n) {
                    Some(&(_, _, off)) => {
                        assert!(got.get(t).is_none(), "{tag}: {n} also in candle's store");
                        let exp: Vec<f32> = before[off..off + w.len()]
                            .iter()
                            .zip(&w)
                            .map(|(a, b)| a + b)
                            .collect();
                        let region = &after[off..off + w.len()];
                        assert_eq!(bits(region), bits(&exp), "{tag}: {n} in the sink");
                        assert!(
                            w.iter().any(|&x| x != 0.0),
                            "{tag}: {n} has a zero gradient"
                        );
                    }
                    None => {
                        let g = host(got.get(t).unwrap());
                        assert_eq!(bits(&g), bits(&w), "{tag}: {n} on candle's path");
                    }
                }
            }
        }
    }
}
