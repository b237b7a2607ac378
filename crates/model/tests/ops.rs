//! The fused differentiable CPU ops (`model::ops`): each backward against central finite
//! differences, each op (value and gradients) against the candle-op composition it replaces,
//! and a whole model's logits and parameter gradients with the fused ops on and off.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use model::{ops, Config, Model};
use serde_json::json;

mod common;
use common::{host, named_grads, Lcg};

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// max |a - b| / (1 + |b|) with the index of the worst element.
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let (mut worst, mut at) = (0f32, 0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = (x - y).abs() / (1.0 + y.abs());
        if e > worst || e.is_nan() {
            worst = e;
            at = i;
        }
    }
    assert!(
        worst <= tol,
        "{what}: element {at}: {} vs {} (rel err {worst} > {tol})",
        a[at],
        b[at]
    );
}

/// L = Σ f(inputs) ⊙ r, its gradients through backward, and the central differences of L
/// in f64 for a sample of each input's elements (every element of small inputs).
fn check_fd(
    what: &str,
    inputs: &[Vec<f32>],
    shapes: &[&[usize]],
    f: &dyn Fn(&[Tensor]) -> Tensor,
    tol: f32,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .zip(shapes)
        .map(|(v, s)| Var::from_tensor(&t(v.clone(), s)).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts);
    let mut rng = Lcg(99);
    let r = t(rng.vec(out.elem_count(), 1.0), out.dims());
    let loss = |xs: &[Tensor]| -> f64 {
        let o = f(xs);
        host(&o)
            .iter()
            .zip(host(&r))
            .map(|(a, b)| *a as f64 * b as f64)
            .sum()
    };
    let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (k, var) in vars.iter().enumerate() {
        let g = host(
            grads
                .get(var)
                .unwrap_or_else(|| panic!("{what}: no gradient for input {k}")),
        );
        let n = inputs[k].len();
        let step = (n / 40).max(1);
        let eps = 1e-2f32;
        for i in (0..n).step_by(step) {
            let mut plus = inputs.to_vec();
            let mut minus = inputs.to_vec();
            plus[k][i] += eps;
            minus[k][i] -= eps;
            let tp: Vec<Tensor> = plus
                .iter()
                .zip(shapes)
                .map(|(v, s)| t(v.clone(), s))
                .collect();
            let tm: Vec<Tensor> = minus
                .iter()
                .zip(shapes)
                .map(|(v, s)| t(v.clone(), s))
                .collect();
            let num = ((loss(&tp) - loss(&tm)) / (2.0 * eps as f64)) as f32;
            let e = (num - g[i]).abs() / (1.0 + num.abs());
            assert!(
                e <= tol,
                "{what}: input {k} element {i}: backward {} vs finite difference {num}",
                g[i]
            );
        }
    }
}

/// The same value and gradients (of Σ out ⊙ r) from the fused op and the composition.
fn check_parity(
    what: &str,
    inputs: &[Vec<f32>],
    shapes: &[&[usize]],
    fused: &dyn Fn(&[Tensor]) -> Tensor,
    composed: &dyn Fn(&[Tensor]) -> Tensor,
    tol: f32,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Tensor| -> (Vec<f32>, Vec<Vec<f32>>) {
        let vars: Vec<Var> = inputs
            .iter()
            .zip(shapes)
            .map(|(v, s)| Var::from_tensor(&t(v.clone(), s)).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&ts);
        let r = t(Lcg(7).vec(out.elem_count(), 1.0), out.dims());
        let grads = (&out * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = vars
            .iter()
            .map(|v| host(grads.get(v).expect("a gradient")))
            .collect();
        (host(&out), gs)
    };
    let (yf, gf) = run(fused);
    let (yc, gc) = run(composed);
    assert_close(&format!("{what}: value"), &yf, &yc, tol);
    for (k, (a, b)) in gf.iter().zip(&gc).enumerate() {
        assert_close(&format!("{what}: gradient of input {k}"), a, b, tol);
    }
}

fn comp_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let var = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let inv = (var + eps).unwrap().sqrt().unwrap().recip().unwrap();
    x.broadcast_mul(&inv).unwrap().broadcast_mul(w).unwrap()
}

fn comp_softmax(x: &Tensor) -> Tensor {
    let m = x.max_keepdim(D::Minus1).unwrap().detach();
    let e = x.broadcast_sub(&m).unwrap().exp().unwrap();
    let s = e.sum_keepdim(D::Minus1).unwrap();
    e.broadcast_div(&s).unwrap()
}

#[test]
fn linear_matches_matmul_and_finite_differences() {
    let mut rng = Lcg(1);
    // Ragged sizes: tails of the 4×6 / 3×4 tiles and of the 8-wide k loop.
    // Ragged sizes for the AVX-512 tiles too (8 rows × 48 columns, k blocks of 256).
    for &(n, k, m) in &[
        (5, 13, 7),
        (2, 3, 11),
        (70, 40, 50),
        (9, 300, 65),
        (17, 20, 97),
    ] {
        let x = rng.vec(n * k, 1.0);
        let w = rng.vec(m * k, 0.5);
        let f = |ts: &[Tensor]| ops::linear(&ts[0], &ts[1]).unwrap();
        let c = |ts: &[Tensor]| ts[0].matmul(&ts[1].t().unwrap()).unwrap();
        check_parity(
            "linear",
            &[x.clone(), w.clone()],
            &[&[n, k], &[m, k]],
            &f,
            &c,
            1e-5,
        );
        check_fd("linear", &[x, w], &[&[n, k], &[m, k]], &f, 2e-3);
    }
    // A weight the size of a vocabulary chunk: many column panels, long dx sums.
    let (n, k, m) = (3, 1024, 4099);
    let x = rng.vec(n * k, 1.0);
    let w = rng.vec(m * k, 0.5);
    let f = |ts: &[Tensor]| ops::linear(&ts[0], &ts[1]).unwrap();
    let c = |ts: &[Tensor]| ts[0].matmul(&ts[1].t().unwrap()).unwrap();
    check_parity(
        "linear (large w)",
        &[x, w],
        &[&[n, k], &[m, k]],
        &f,
        &c,
        1e-4, // dx sums 4099 products: longer sums round further apart
    );
    // Leading dims are kept: [2, 3, K] · [M, K]ᵀ = [2, 3, M].
    let x = t(rng.vec(2 * 3 * 8, 1.0), &[2, 3, 8]);
    let w = t(rng.vec(5 * 8, 1.0), &[5, 8]);
    assert_eq!(ops::linear(&x, &w).unwrap().dims(), &[2, 3, 5]);
}

#[test]
fn masked_softmax_matches_composition_and_finite_differences() {
    let mut rng = Lcg(2);
    let (b, x, q) = (2, 3, 5);
    let tk = q;
    let scale = 0.37;
    // Causal masks with one pad key in batch 1: key 0 (a left pad: its row 0 has no valid
    // key at all, where the composition's rounding makes the row exactly uniform, so finite
    // differences see 0 there) and key 2.
    let s = rng.vec(b * x * q * tk, 3.0);
    for pad in [0, 2] {
        let mut mask = vec![0f32; b * q * tk];
        for bi in 0..b {
            for qi in 0..q {
                for ki in 0..tk {
                    if ki > qi || (bi == 1 && ki == pad) {
                        mask[(bi * q + qi) * tk + ki] = -1.0e9;
                    }
                }
            }
        }
        let maskt = t(mask.clone(), &[b, 1, 1, q, tk]);
        let f = |ts: &[Tensor]| ops::masked_softmax(&ts[0], &maskt, scale, b, q, tk).unwrap();
        let c = |ts: &[Tensor]| {
            let sc = (&ts[0] * scale)
                .unwrap()
                .reshape((b, x, q, tk))
                .unwrap()
                .broadcast_add(&maskt.reshape((b, 1, q, tk)).unwrap())
                .unwrap();
            comp_softmax(&sc)
        };
        check_parity(
            "masked_softmax",
            std::slice::from_ref(&s),
            &[&[b, x, q, tk]],
            &f,
            &c,
            1e-6,
        );
        if pad == 2 {
            check_fd(
                "masked_softmax",
                std::slice::from_ref(&s),
                &[&[b, x, q, tk]],
                &f,
                2e-3,
            );
        } else {
            // The fully masked row is uniform, as the composition's.
            let p = host(&f(&[t(s.clone(), &[b, x, q, tk])]));
            let row = &p[x * q * tk..x * q * tk + tk];
            assert!(
                row.iter().all(|&v| (v - 1.0 / tk as f32).abs() < 1e-6),
                "{row:?}"
            );
        }
    }
}

/// Causal masks [B, T, T] with `pad` left pads in batch 1 (masked as keys).
fn causal_mask(b: usize, t: usize, pad: usize) -> Vec<f32> {
    let mut mask = vec![0f32; b * t * t];
    for bi in 0..b {
        for qi in 0..t {
            for ki in 0..t {
                if ki > qi || (bi == 1 && ki < pad) {
                    mask[(bi * t + qi) * t + ki] = -1.0e9;
                }
            }
        }
    }
    mask
}

#[test]
fn attention_matches_composition_and_finite_differences() {
    assert!(
        ops::attention_available(),
        "the fused attention needs AVX-512F, which this machine must have to test it"
    );
    let mut rng = Lcg(5);
    // GQA (2 query heads per KV head); ragged sizes for the 8 × 48 tiles (T = 70, D = 20).
    for &(b, nh, nkv, tt, d, pad) in &[(2, 4, 2, 5, 8, 2), (1, 3, 1, 70, 20, 0), (2, 2, 2, 9, 6, 3)]
    {
        let rep = nh / nkv;
        let scale = 1.0 / (d as f64).sqrt();
        let mask = t(causal_mask(b, tt, pad), &[b, 1, 1, tt, tt]);
        let q = rng.vec(b * nh * tt * d, 1.5);
        let k = rng.vec(b * nkv * tt * d, 1.5);
        let v = rng.vec(b * nkv * tt * d, 1.0);
        let shapes: [&[usize]; 3] = [&[b, nh, tt, d], &[b, nkv, tt, d], &[b, nkv, tt, d]];
        let f = |ts: &[Tensor]| ops::attention(&ts[0], &ts[1], &ts[2], &mask, scale).unwrap();
        let c = |ts: &[Tensor]| {
            let s = (ts[0]
                .reshape((b, nkv, rep * tt, d))
                .unwrap()
                .matmul(&ts[1].t().unwrap())
                .unwrap()
                * scale)
                .unwrap()
                .reshape((b, nkv, rep, tt, tt))
                .unwrap()
                .broadcast_add(&mask.reshape((b, 1, 1, tt, tt)).unwrap())
                .unwrap();
            let p = comp_softmax(&s).reshape((b, nkv, rep * tt, tt)).unwrap();
            p.matmul(&ts[2])
                .unwrap()
                .reshape((b, nh, tt, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((b, tt, nh * d))
                .unwrap()
        };
        let inputs = [q, k, v];
        check_parity("attention", &inputs, &shapes, &f, &c, 2e-5);
        if pad == 0 {
            // Not with left pads: a pad's own row has every key masked, so its scores
            // round to the same value and finite differences see no dependence on q or k
            // (the backward, like the composition's, gives the unrounded derivative).
            check_fd("attention", &inputs, &shapes, &f, 3e-3);
        }
    }
}

#[test]
fn rope_matches_composition_and_finite_differences() {
    let mut rng = Lcg(6);
    for &(b, tt, h, d) in &[(2, 5, 3, 8), (1, 7, 2, 6)] {
        let x = rng.vec(b * tt * h * d, 1.0);
        // Tables as the model builds them: halves duplicated, [B, 1, T, D].
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for _ in 0..b * tt {
            let a: Vec<f32> = rng.vec(d / 2, 3.0);
            for _ in 0..2 {
                cos.extend(a.iter().map(|v| v.cos()));
                sin.extend(a.iter().map(|v| v.sin()));
            }
        }
        let (cos, sin) = (t(cos, &[b, 1, tt, d]), t(sin, &[b, 1, tt, d]));
        let f = |ts: &[Tensor]| ops::rope(&ts[0], &cos, &sin).unwrap();
        let c = |ts: &[Tensor]| {
            let x = ts[0].transpose(1, 2).unwrap();
            let x1 = x.narrow(D::Minus1, 0, d / 2).unwrap();
            let x2 = x.narrow(D::Minus1, d / 2, d / 2).unwrap();
            let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], D::Minus1).unwrap();
            (x.broadcast_mul(&cos).unwrap() + rot.broadcast_mul(&sin).unwrap()).unwrap()
        };
        let shapes: [&[usize]; 1] = [&[b, tt, h, d]];
        check_parity("rope", std::slice::from_ref(&x), &shapes, &f, &c, 1e-6);
        check_fd("rope", &[x], &shapes, &f, 2e-3);
    }
}

#[test]
fn rms_norm_matches_composition_and_finite_differences() {
    let mut rng = Lcg(3);
    let (n, h) = (130, 12);
    let x = rng.vec(n * h, 2.0);
    let w: Vec<f32> = rng.vec(h, 0.5).iter().map(|v| 1.0 + v).collect();
    let f = |ts: &[Tensor]| ops::rms_norm(&ts[0], &ts[1], 1e-6).unwrap();
    let c = |ts: &[Tensor]| comp_rms_norm(&ts[0], &ts[1], 1e-6);
    check_parity(
        "rms_norm",
        &[x.clone(), w.clone()],
        &[&[n, h], &[h]],
        &f,
        &c,
        1e-5,
    );
    check_fd("rms_norm", &[x, w], &[&[n, h], &[h]], &f, 2e-3);
}

#[test]
fn silu_mul_matches_composition_and_finite_differences() {
    let mut rng = Lcg(4);
    let n = 3 * 37;
    let g = rng.vec(n, 4.0);
    let u = rng.vec(n, 2.0);
    let f = |ts: &[Tensor]| ops::silu_mul(&ts[0], &ts[1]).unwrap();
    let c = |ts: &[Tensor]| (ts[0].silu().unwrap() * &ts[1]).unwrap();
    check_parity(
        "silu_mul",
        &[g.clone(), u.clone()],
        &[&[3, 37], &[3, 37]],
        &f,
        &c,
        1e-6,
    );
    check_fd("silu_mul", &[g, u], &[&[3, 37], &[3, 37]], &f, 2e-3);
}

#[test]
fn logprobs_entropy_matches_composition_and_finite_differences() {
    let mut rng = Lcg(5);
    let (r, v) = (6, 45);
    let x = rng.vec(r * v, 5.0);
    let targets: Vec<u32> = (0..r as u32).map(|i| (i * 7 + 3) % v as u32).collect();
    let tg = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
    let f = |ts: &[Tensor]| {
        ops::logprobs_entropy(&ts[0], &targets)
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap()
    };
    let c = |ts: &[Tensor]| {
        let m = ts[0].max_keepdim(D::Minus1).unwrap().detach();
        let sh = ts[0].broadcast_sub(&m).unwrap();
        let lse = sh
            .exp()
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .log()
            .unwrap();
        let picked = sh.gather(&tg.unsqueeze(1).unwrap(), 1).unwrap();
        (picked - lse).unwrap()
    };
    check_parity(
        "logprobs",
        std::slice::from_ref(&x),
        &[&[r, v]],
        &f,
        &c,
        1e-5,
    );
    check_fd("logprobs", std::slice::from_ref(&x), &[&[r, v]], &f, 2e-3);
    // The entropy column: -Σ p log p of each row.
    let both = ops::logprobs_entropy(&t(x.clone(), &[r, v]), &targets).unwrap();
    let ent = host(&both.narrow(1, 1, 1).unwrap());
    for (i, e) in ent.iter().enumerate() {
        let row = &x[i * v..(i + 1) * v];
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let z: f64 = row.iter().map(|&a| (a as f64 - m).exp()).sum();
        let want: f64 = -row
            .iter()
            .map(|&a| {
                let lp = a as f64 - m - z.ln();
                lp.exp() * lp
            })
            .sum::<f64>();
        assert!(
            (*e as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
            "row {i}: {e} vs {want}"
        );
    }
}

/// A tiny Qwen3-style model (q/k/v bias, q_norm/k_norm, untied head) with random weights.
fn tiny_model(fused: bool) -> (Model, VarMap) {
    let v = json!({
        "architectures": ["Qwen3ForCausalLM"], "vocab_size": 37, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 8, "rope_theta": 1000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": false, "attention_bias": true, "max_position_embeddings": 64
    });
    let cfg = Config::from_hf_value(&v, Path::new("test")).unwrap();
    let (h, d, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    let mut shapes: Vec<(String, Vec<usize>, f32)> = vec![
        (
            "model.embed_tokens.weight".into(),
            vec![cfg.vocab_size, h],
            0.0,
        ),
        ("model.norm.weight".into(), vec![h], 1.0),
        ("lm_head.weight".into(), vec![cfg.vocab_size, h], 0.0),
    ];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (n, s, base) in [
            ("self_attn.q_proj.weight", vec![q, h], 0.0),
            ("self_attn.q_proj.bias", vec![q], 0.0),
            ("self_attn.k_proj.weight", vec![kv, h], 0.0),
            ("self_attn.k_proj.bias", vec![kv], 0.0),
            ("self_attn.v_proj.weight", vec![kv, h], 0.0),
            ("self_attn.v_proj.bias", vec![kv], 0.0),
            ("self_attn.o_proj.weight", vec![h, q], 0.0),
            ("self_attn.q_norm.weight", vec![d], 1.0),
            ("self_attn.k_norm.weight", vec![d], 1.0),
            ("mlp.gate_proj.weight", vec![i, h], 0.0),
            ("mlp.up_proj.weight", vec![i, h], 0.0),
            ("mlp.down_proj.weight", vec![h, i], 0.0),
            ("input_layernorm.weight", vec![h], 1.0),
            ("post_attention_layernorm.weight", vec![h], 1.0),
        ] {
            shapes.push((format!("{p}.{n}"), s, base));
        }
    }
    let vm = VarMap::new();
    let mut rng = Lcg(11);
    {
        let mut data = vm.data().lock().unwrap();
        for (n, s, base) in &shapes {
            let len: usize = s.iter().product();
            let vals: Vec<f32> = rng.vec(len, 0.4).iter().map(|x| base + x).collect();
            data.insert(n.clone(), Var::from_tensor(&t(vals, s)).unwrap());
        }
    }
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let mut m = Model::new(&cfg, vb).unwrap();
    m.set_fused_ops(fused);
    (m, vm)
}

#[test]
fn model_logits_and_gradients_equal_with_fused_ops_on_and_off() {
    // Batch of 2 with left padding in the second sequence.
    let ids = Tensor::new(
        &[[3u32, 5, 7, 11, 2, 9], [0, 0, 4, 8, 15, 16]],
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], &Device::Cpu).unwrap();
    let targets = Tensor::new(
        &[[5u32, 7, 11, 2, 9, 1], [4, 4, 8, 15, 16, 23]],
        &Device::Cpu,
    )
    .unwrap();
    type Grads = Vec<(String, Vec<f32>)>;
    let run = |fused: bool| -> (Vec<f32>, Vec<f32>, Grads) {
        let (m, vm) = tiny_model(fused);
        let logits = m.forward(&ids, Some(&mask)).unwrap();
        let hidden = m.forward_hidden(&ids, Some(&mask)).unwrap();
        let (lp, _) = model::logprobs::token_logprobs(&m, &hidden, &targets, 5).unwrap();
        // Only real positions carry loss (as in training).
        let w = Tensor::new(
            &[
                [1f32, -2.0, 0.5, 1.0, 3.0, -1.0],
                [0.0, 0.0, 1.5, -0.5, 2.0, 1.0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let grads = (&lp * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = named_grads(&vm, &grads, &format!("fused={fused}"));
        // Logits of real positions only (pad rows attend to nothing real).
        let lg = host(&logits);
        let v = 37;
        let real: Vec<f32> = (0..12)
            .filter(|&p| !(p == 6 || p == 7))
            .flat_map(|p| lg[p * v..(p + 1) * v].to_vec())
            .collect();
        (real, host(&lp), gs)
    };
    let (lf, pf, gf) = run(true);
    let (lc, pc, gc) = run(false);
    assert_close("logits", &lf, &lc, 1e-5);
    assert_close("token logprobs", &pf, &pc, 1e-5);
    for ((n, a), (_, b)) in gf.iter().zip(&gc) {
        assert_close(&format!("gradient of {n}"), a, b, 1e-4);
    }
}
