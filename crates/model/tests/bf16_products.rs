//! bf16 operands in the training path's products (`MatmulPrecision::Bf16`): the linear op's
//! forward and both backward products (and the fused attention's) are the f32 sums of exactly the bf16-rounded operands
//! (checked against f64), and a tiny model's log-probs and parameter gradients stay within a
//! stated bound of the f32 ones. Runs on the path this machine has (AMX tiles where the CPU
//! lists them; the unit tests in `kernels/amx_tests.rs` cover every path).
//!
//! Model bounds. bf16 keeps 8 significant bits: each operand moves by at most 2^-9 relative,
//! so a product's output moves by about √2·2^-9 ≈ 0.3% (rms, errors of both signs); between
//! a weight and the loss lie ~25 products (forward and backward through 2-3 layers and the
//! head), which add in quadrature to ≈ 1.5%, and softmax and the norms amplify a little.
//! Asserted: token log-probs within 1% (of 1 + |log p|; measured 0.4-0.6% with the
//! attention products in bf16 too), the whole gradient within 5% of its norm (measured
//! 2.4-3.1%), each parameter's within 10% of its own (measured ≤ 4.5%). The fused attention
//! alone: its output is the f64 attention of rounded q, k, v and probabilities (to 1e-4,
//! measured 2e-8; the f32 op is 2.5e-3 away), its gradients within 3% of the f32 op's norm
//! (measured 0.4%).

use candle_core::{Device, Tensor, Var};
use model::ops::{self, MatmulPrecision};

mod common;
use common::{host, named_grads, var_model, Lcg};

fn bf(x: f32) -> f64 {
    f64::from(half::bf16::from_f32(x).to_f32())
}

/// `C[i, j] = Σ_p bf16(a(i, p))·bf16(b(p, j))` in f64, and `Σ_p |·|` per element.
fn product(
    a: &dyn Fn(usize, usize) -> f32,
    b: &dyn Fn(usize, usize) -> f32,
    m: usize,
    n: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut c, mut s) = (vec![0f64; m * n], vec![0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let v = bf(a(i, p)) * bf(b(p, j));
                c[i * n + j] += v;
                s[i * n + j] += v.abs();
            }
        }
    }
    (c, s)
}

/// Within the bound of an f32 sum of `k` exact products: `(k + 2)·2⁻²⁴·Σ|a||b|`.
fn assert_sum_of_rounded(what: &str, got: &[f32], want: &(Vec<f64>, Vec<f64>), k: usize) {
    let u = (k as f64 + 2.0) * 2f64.powi(-24);
    assert_eq!(got.len(), want.0.len(), "{what}: length");
    for (i, (&g, (&w, &s))) in got.iter().zip(want.0.iter().zip(&want.1)).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= u * s + 1e-30,
            "{what}: element {i}: {g} vs {w} (bound {:e})",
            u * s
        );
    }
}

#[test]
fn bf16_linear_is_the_f32_sum_of_rounded_operands_forward_and_backward() {
    let mut rng = Lcg(21);
    for &(n, k, m) in &[
        (5, 13, 7),
        (70, 40, 50),
        (9, 300, 65),
        (64, 96, 128),
        (3, 1030, 97),
    ] {
        let xs = rng.vec(n * k, 1.0);
        let ws = rng.vec(m * k, 0.5);
        let rs = rng.vec(n * m, 1.0);
        let x = Var::from_vec(xs.clone(), (n, k), &Device::Cpu).unwrap();
        let w = Var::from_vec(ws.clone(), (m, k), &Device::Cpu).unwrap();
        let r = Tensor::from_vec(rs.clone(), (n, m), &Device::Cpu).unwrap();
        let y = ops::linear_with(x.as_tensor(), w.as_tensor(), MatmulPrecision::Bf16).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let tag = format!("[{n},{k}]x[{m},{k}]T");
        // y = x·wᵀ; dx = r·w; dw = rᵀ·x (r: the upstream gradient).
        let want_y = product(&|i, p| xs[i * k + p], &|p, j| ws[j * k + p], n, m, k);
        assert_sum_of_rounded(&format!("y {tag}"), &host(&y), &want_y, k);
        let want_dx = product(&|i, j| rs[i * m + j], &|j, p| ws[j * k + p], n, k, m);
        let dx = host(grads.get(x.as_tensor()).unwrap());
        assert_sum_of_rounded(&format!("dx {tag}"), &dx, &want_dx, m);
        let want_dw = product(&|j, i| rs[i * m + j], &|i, p| xs[i * k + p], m, k, n);
        let dw = host(grads.get(w.as_tensor()).unwrap());
        assert_sum_of_rounded(&format!("dw {tag}"), &dw, &want_dw, n);
        // And not the f32 product: the operands were rounded.
        let y32 = ops::linear(x.as_tensor(), w.as_tensor()).unwrap();
        assert!(
            host(&y32) != host(&y),
            "{tag}: bf16 products equal the f32 ones"
        );
    }
    // Leading dims are kept.
    let x = Tensor::from_vec(rng.vec(2 * 3 * 8, 1.0), (2, 3, 8), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(rng.vec(5 * 8, 1.0), (5, 8), &Device::Cpu).unwrap();
    let y = ops::linear_with(&x, &w, MatmulPrecision::Bf16).unwrap();
    assert_eq!(y.dims(), &[2, 3, 5]);
    assert_eq!("bf16".parse::<MatmulPrecision>(), Ok(MatmulPrecision::Bf16));
    assert!("fp16".parse::<MatmulPrecision>().is_err());
}

/// Token log-probs of a padded batch and every parameter's gradient of a weighted sum.
fn run(name: &'static str, p: MatmulPrecision) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let (m, vm) = var_model(name, p);
    let v = m.config().vocab_size as u32;
    let ids: Vec<u32> = (0..2 * 12).map(|i| (i * 7 + 3) % v).collect();
    let ids = Tensor::from_vec(ids, (2, 12), &Device::Cpu).unwrap();
    let mut mask = vec![1u32; 24];
    mask[12..15].fill(0); // left padding in the second sequence
    let mask = Tensor::from_vec(mask, (2, 12), &Device::Cpu).unwrap();
    let targets: Vec<u32> = (0..24).map(|i| (i * 5 + 1) % v).collect();
    let targets = Tensor::from_vec(targets, (2, 12), &Device::Cpu).unwrap();
    let hidden = m.forward_hidden(&ids, Some(&mask)).unwrap();
    let (lp, _) = model::logprobs::token_logprobs(&m, &hidden, &targets, 7).unwrap();
    let mut wv = vec![1f32; 24];
    wv[12..15].fill(0.0);
    for (i, x) in wv.iter_mut().enumerate() {
        *x *= 1.0 + (i % 5) as f32 * 0.25;
    }
    let wt = Tensor::from_vec(wv, (2, 12), &Device::Cpu).unwrap();
    let grads = (&lp * &wt).unwrap().sum_all().unwrap().backward().unwrap();
    let gs = named_grads(&vm, &grads, &format!("{p:?}"));
    let mut lp = host(&lp);
    lp.drain(12..15); // pad positions
    (lp, gs)
}

#[test]
fn tiny_model_log_probs_and_gradients_with_bf16_products_are_close_to_f32() {
    for name in ["qwen3-tiny", "llama-tiny"] {
        let (lp32, g32) = run(name, MatmulPrecision::F32);
        let (lp16, g16) = run(name, MatmulPrecision::Bf16);
        let worst = lp16
            .iter()
            .zip(&lp32)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0f32, f32::max);
        assert!(worst <= 1e-2, "{name}: log-prob difference {worst}");
        assert!(lp16 != lp32, "{name}: bf16 products changed no log-prob");
        let mut changed = false;
        let (mut dd, mut bb_all) = (0f64, 0f64);
        let mut worst_tensor = (0f64, String::new());
        for ((n, a), (_, b)) in g16.iter().zip(&g32) {
            let (mut d2, mut b2) = (0f64, 0f64);
            for (&x, &y) in a.iter().zip(b) {
                let (x, y) = (f64::from(x), f64::from(y));
                d2 += (x - y) * (x - y);
                b2 += y * y;
            }
            let rel = (d2 / b2.max(1e-300)).sqrt();
            if rel > worst_tensor.0 {
                worst_tensor = (rel, n.clone());
            }
            assert!(
                rel <= 0.1,
                "{name} {n}: gradient difference {rel:e} of its norm"
            );
            (dd, bb_all) = (dd + d2, bb_all + b2);
            changed |= a != b;
        }
        let all = (dd / bb_all).sqrt();
        eprintln!(
            "{name}: log-probs {worst:.2e}, gradient {all:.2e} of its norm, worst tensor {} {:.2e}",
            worst_tensor.1, worst_tensor.0
        );
        assert!(
            all <= 0.05,
            "{name}: gradient difference {all:e} of its norm"
        );
        assert!(changed, "{name}: bf16 products changed no gradient");
    }
}

/// Additive causal mask [B, T, T], with `pad` left-pad keys in batch 1.
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

/// The attention op's forward in f64 on bf16-rounded q, k, v and probabilities (softmax in
/// f64, each probability rounded to bf16 from its f32 value; the mask added in f32): [B, T, nh·D].
#[allow(clippy::too_many_arguments)]
fn attention_of_rounded(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    (b, nh, nkv, t, d): (usize, usize, usize, usize, usize),
    scale: f64,
) -> Vec<f64> {
    let rep = nh / nkv;
    let mut out = vec![0f64; b * t * nh * d];
    for bi in 0..b {
        for h in 0..nh {
            let g = bi * nkv + h / rep;
            let qh = &q[(bi * nh + h) * t * d..][..t * d];
            let (kg, vg) = (&k[g * t * d..][..t * d], &v[g * t * d..][..t * d]);
            for i in 0..t {
                let z: Vec<f64> = (0..t)
                    .map(|j| {
                        let s: f64 = (0..d).map(|p| bf(qh[i * d + p]) * bf(kg[j * d + p])).sum();
                        // In f32, as the op adds the mask: a row of pad keys only is uniform.
                        f64::from((s * scale) as f32 + mask[(bi * t + i) * t + j])
                    })
                    .collect();
                let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = z.iter().map(|x| (x - mx).exp()).collect();
                let sum: f64 = e.iter().sum();
                for p in 0..d {
                    let o: f64 = (0..t)
                        .map(|j| bf((e[j] / sum) as f32) * bf(vg[j * d + p]))
                        .sum();
                    out[((bi * t + i) * nh + h) * d + p] = o;
                }
            }
        }
    }
    out
}

#[test]
fn bf16_attention_products_take_rounded_operands_and_its_gradients_stay_close_to_f32() {
    assert!(
        ops::attention_available(),
        "the fused attention needs AVX-512F, which this machine must have to test it"
    );
    let mut rng = Lcg(31);
    // GQA; ragged T and D (tiles of 16 and 32), and left pads.
    for &(b, nh, nkv, t, d, pad) in &[(2, 4, 2, 37, 20, 3), (1, 3, 1, 70, 64, 0)] {
        let scale = 1.0 / (d as f64).sqrt();
        let mask_v = causal_mask(b, t, pad);
        let mask = Tensor::from_vec(mask_v.clone(), (b, 1, 1, t, t), &Device::Cpu).unwrap();
        let qs = rng.vec(b * nh * t * d, 1.5);
        let ks = rng.vec(b * nkv * t * d, 1.5);
        let vs = rng.vec(b * nkv * t * d, 1.0);
        let gs = rng.vec(b * t * nh * d, 1.0);
        let dev = &Device::Cpu;
        let q = Var::from_vec(qs.clone(), (b, nh, t, d), dev).unwrap();
        let k = Var::from_vec(ks.clone(), (b, nkv, t, d), dev).unwrap();
        let v = Var::from_vec(vs.clone(), (b, nkv, t, d), dev).unwrap();
        let r = Tensor::from_vec(gs, (b, t, nh * d), dev).unwrap();
        let run = |p: MatmulPrecision| {
            let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
            let o = ops::attention_with(qt, kt, vt, &mask, scale, p).unwrap();
            let grads = (&o * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g: Vec<Vec<f32>> = [qt, kt, vt]
                .iter()
                .map(|x| host(grads.get(x).unwrap()))
                .collect();
            (host(&o), g)
        };
        let (o16, g16) = run(MatmulPrecision::Bf16);
        let (o32, g32) = run(MatmulPrecision::F32);
        let want = attention_of_rounded(&qs, &ks, &vs, &mask_v, (b, nh, nkv, t, d), scale);
        let err = |o: &[f32]| {
            o.iter()
                .zip(&want)
                .map(|(&x, &y)| (f64::from(x) - y).abs() / (1.0 + y.abs()))
                .fold(0f64, f64::max)
        };
        let (e16, e32) = (err(&o16), err(&o32));
        let tag = format!("B={b} nh={nh} nkv={nkv} T={t} D={d}");
        eprintln!("attention {tag}: bf16 op {e16:.2e}, f32 op {e32:.2e} from the rounded f64");
        // The bf16 op computes the rounded-operand products (up to f32 sums and a rare
        // probability rounded the other way), which the f32 op does not.
        assert!(
            e16 <= 1e-4,
            "{tag}: bf16 attention {e16:e} from the rounded products"
        );
        assert!(e32 >= 10.0 * e16, "{tag}: the f32 op is as close ({e32:e})");
        for (name, (a, c)) in ["dq", "dk", "dv"].iter().zip(g16.iter().zip(&g32)) {
            let (mut d2, mut c2) = (0f64, 0f64);
            for (&x, &y) in a.iter().zip(c) {
                let (x, y) = (f64::from(x), f64::from(y));
                d2 += (x - y) * (x - y);
                c2 += y * y;
            }
            let rel = (d2 / c2).sqrt();
            eprintln!("attention {tag}: {name} {rel:.2e} of its norm from f32");
            assert!(rel <= 0.03, "{tag}: {name} {rel:e} of its norm from f32");
            assert!(a != c, "{tag}: bf16 products changed no {name}");
        }
    }
}

#[test]
fn head_packed_once_for_all_chunks_gives_the_same_log_probs_and_gradients() {
    // Several chunks (the head packed once, ops/head.rs, where AMX runs the bf16 products)
    // against one chunk (the bf16 linear op): the same sums per row, so the same log-probs
    // and hidden gradients bit for bit; the head's gradient sums the chunks in another order.
    let (m, vm) = var_model("qwen3-tiny", MatmulPrecision::Bf16);
    let h = m.config().hidden_size;
    let v = m.config().vocab_size as u32;
    let mut rng = Lcg(41);
    let hidden = Var::from_vec(rng.vec(2 * 20 * h, 1.0), (2, 20, h), &Device::Cpu).unwrap();
    let targets: Vec<u32> = (0..40).map(|i| (i * 11 + 2) % v).collect();
    let targets = Tensor::from_vec(targets, (2, 20), &Device::Cpu).unwrap();
    let head = vm
        .all_vars()
        .into_iter()
        .find(|x| x.as_tensor().id() == m.lm_head().id())
        .expect("the head's Var");
    let run = |chunk: usize| {
        let (lp, _) =
            model::logprobs::token_logprobs(&m, hidden.as_tensor(), &targets, chunk).unwrap();
        let wt = Tensor::from_vec(rng_weights(40), (2, 20), &Device::Cpu).unwrap();
        let grads = (&lp * &wt).unwrap().sum_all().unwrap().backward().unwrap();
        (
            host(&lp),
            host(grads.get(hidden.as_tensor()).unwrap()),
            host(grads.get(head.as_tensor()).unwrap()),
        )
    };
    let (lp1, dh1, dw1) = run(64);
    let (lp7, dh7, dw7) = run(7);
    assert_eq!(lp7, lp1, "log-probs of 6 chunks against 1");
    assert_eq!(dh7, dh1, "hidden gradient of 6 chunks against 1");
    let (mut d2, mut b2) = (0f64, 0f64);
    for (&x, &y) in dw7.iter().zip(&dw1) {
        d2 += f64::from(x - y).powi(2);
        b2 += f64::from(y).powi(2);
    }
    let rel = (d2 / b2).sqrt();
    assert!(
        rel <= 1e-5,
        "head gradient {rel:e} of its norm from one chunk's"
    );
    // And the rows really are bf16 products (not f32 ones).
    let (m32, _) = var_model("qwen3-tiny", MatmulPrecision::F32);
    let (lp32, _) = model::logprobs::token_logprobs(&m32, hidden.as_tensor(), &targets, 7).unwrap();
    assert!(
        host(&lp32) != lp7,
        "chunked bf16 log-probs equal the f32 ones"
    );
}

/// Loss weights 1, 1.25, .. 2 repeating.
fn rng_weights(n: usize) -> Vec<f32> {
    (0..n).map(|i| 1.0 + (i % 5) as f32 * 0.25).collect()
}
