//! The shared-prefix forward (`Model::forward_hidden_shared`): G responses sharing one prompt,
//! the prompt computed once. Its response log-probs and every parameter gradient of a loss
//! over the responses must equal the unshared computation's (G padded sequences) to 1e-5.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use model::{Config, Model};
use serde_json::json;

/// Deterministic values in [-1, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// A tiny model with random weights: Qwen3-style (q/k/v bias, q/k norm, GQA, untied head)
/// or Llama-style (no bias, tied embedding, GQA).
fn tiny_model(qwen3: bool, dtype: DType, fused: bool) -> (Model, VarMap) {
    let v = if qwen3 {
        json!({
            "architectures": ["Qwen3ForCausalLM"], "vocab_size": 37, "hidden_size": 16,
            "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 8, "rope_theta": 1000.0, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": false, "attention_bias": true, "max_position_embeddings": 64
        })
    } else {
        json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 41, "hidden_size": 24,
            "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 6,
            "num_key_value_heads": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": true, "max_position_embeddings": 32
        })
    };
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
    ];
    if !cfg.tie_word_embeddings {
        shapes.push(("lm_head.weight".into(), vec![cfg.vocab_size, h], 0.0));
    }
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let mut names = vec![
            ("self_attn.q_proj.weight", vec![q, h], 0.0),
            ("self_attn.k_proj.weight", vec![kv, h], 0.0),
            ("self_attn.v_proj.weight", vec![kv, h], 0.0),
            ("self_attn.o_proj.weight", vec![h, q], 0.0),
            ("mlp.gate_proj.weight", vec![i, h], 0.0),
            ("mlp.up_proj.weight", vec![i, h], 0.0),
            ("mlp.down_proj.weight", vec![h, i], 0.0),
            ("input_layernorm.weight", vec![h], 1.0),
            ("post_attention_layernorm.weight", vec![h], 1.0),
        ];
        if qwen3 {
            names.extend([
                ("self_attn.q_proj.bias", vec![q], 0.0),
                ("self_attn.k_proj.bias", vec![kv], 0.0),
                ("self_attn.v_proj.bias", vec![kv], 0.0),
                ("self_attn.q_norm.weight", vec![d], 1.0),
                ("self_attn.k_norm.weight", vec![d], 1.0),
            ]);
        }
        for (n, s, base) in names {
            shapes.push((format!("{p}.{n}"), s, base));
        }
    }
    let vm = VarMap::new();
    let mut rng = Lcg(if qwen3 { 11 } else { 29 });
    {
        let mut data = vm.data().lock().unwrap();
        for (n, s, base) in &shapes {
            let len: usize = s.iter().product();
            let vals: Vec<f32> = (0..len).map(|_| base + 0.4 * rng.next()).collect();
            let t = Tensor::from_vec(vals, s.as_slice(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            data.insert(n.clone(), Var::from_tensor(&t).unwrap());
        }
    }
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let mut m = Model::new(&cfg, vb).unwrap();
    m.set_fused_ops(fused);
    (m, vm)
}

const PROMPT: [u32; 6] = [3, 5, 7, 11, 2, 9];
/// Responses of different lengths (right-padded to R = 5 in both layouts).
fn responses() -> Vec<Vec<u32>> {
    vec![vec![4, 8, 15, 16, 23], vec![1, 30], vec![6, 6, 12, 33]]
}
const R: usize = 5;

/// Loss weights [G,R] (0 on pads).
fn weights(resps: &[Vec<u32>]) -> Vec<f32> {
    let mut rng = Lcg(5);
    let mut w = vec![0f32; resps.len() * R];
    for (i, r) in resps.iter().enumerate() {
        for j in 0..r.len() {
            w[i * R + j] = 2.0 * rng.next();
        }
    }
    w
}

type Grads = Vec<(String, Vec<f64>)>;

fn host(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Response log-probs [G,R] (real tokens only, flattened) and every parameter gradient of
/// `Σ w·logp`, computed shared or unshared.
fn run(m: &Model, vm: &VarMap, shared: bool) -> (Vec<f64>, Grads) {
    let dev = Device::Cpu;
    let resps = responses();
    let g = resps.len();
    let p = PROMPT.len();
    let mut targets = vec![0u32; g * R];
    let mut mask = vec![0u32; g * R];
    for (i, r) in resps.iter().enumerate() {
        targets[i * R..i * R + r.len()].copy_from_slice(r);
        mask[i * R..i * R + r.len()].iter_mut().for_each(|m| *m = 1);
    }
    let tg = Tensor::from_slice(&targets, (g, R), &dev).unwrap();
    let hidden = if shared {
        let branches = Tensor::from_slice(&targets, (g, R), &dev).unwrap();
        let bmask = Tensor::from_slice(&mask, (g, R), &dev).unwrap();
        let prefix = Tensor::new(&PROMPT, &dev).unwrap();
        let inp = m.shared_inputs(&prefix, &branches, Some(&bmask)).unwrap();
        assert_eq!(inp.lens(), &[5, 2, 4]);
        let x = m.forward_hidden_shared(&inp).unwrap();
        assert_eq!(x.dims(), &[p + g * R, m.config().hidden_size]);
        let rows: Vec<u32> = inp.next_token_rows().iter().map(|&r| r as u32).collect();
        let rows = Tensor::from_vec(rows, g * R, &dev).unwrap();
        x.index_select(&rows, 0)
            .unwrap()
            .reshape((g, R, m.config().hidden_size))
            .unwrap()
    } else {
        let t = p + R;
        let mut ids = Vec::new();
        let mut am = Vec::new();
        for (i, r) in resps.iter().enumerate() {
            ids.extend_from_slice(&PROMPT);
            ids.extend_from_slice(&targets[i * R..(i + 1) * R]);
            am.extend(std::iter::repeat_n(1u32, p));
            am.extend_from_slice(&mask[i * R..(i + 1) * R]);
            assert_eq!(am.len(), (i + 1) * t, "{r:?}");
        }
        let ids = Tensor::from_vec(ids, (g, t), &dev).unwrap();
        let am = Tensor::from_vec(am, (g, t), &dev).unwrap();
        m.forward_hidden(&ids, Some(&am))
            .unwrap()
            .narrow(1, p - 1, R)
            .unwrap()
    };
    let (lp, _) = model::logprobs::token_logprobs(m, &hidden, &tg, 4).unwrap();
    let w = Tensor::from_vec(weights(&resps), (g, R), &dev)
        .unwrap()
        .to_dtype(lp.dtype())
        .unwrap();
    let grads = (&lp * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let lp = host(&lp);
    let real: Vec<f64> = (0..g * R)
        .filter(|&k| mask[k] == 1)
        .map(|k| lp[k])
        .collect();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let gs = names
        .into_iter()
        .map(|n| {
            let gr = grads
                .get(data[n].as_tensor())
                .unwrap_or_else(|| panic!("shared={shared}: no gradient for {n}"));
            (n.clone(), host(gr))
        })
        .collect();
    (real, gs)
}

/// Largest |a - b| and largest |b|.
fn max_diff(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0f64, 0f64), |(d, m), (x, y)| {
        (d.max((x - y).abs()), m.max(y.abs()))
    })
}

/// Runs both layouts and asserts log-probs within `tol` and every gradient within
/// `tol · max(1, max|grad|)` of the parameter; returns the worst differences.
fn check(qwen3: bool, dtype: DType, fused: bool, tol: f64) -> (f64, f64) {
    let (m, vm) = tiny_model(qwen3, dtype, fused);
    let (lp_s, g_s) = run(&m, &vm, true);
    let (lp_u, g_u) = run(&m, &vm, false);
    let (dl, _) = max_diff(&lp_s, &lp_u);
    assert!(
        dl <= tol,
        "qwen3={qwen3} {dtype:?} fused={fused}: log-probs differ by {dl:e}"
    );
    assert_eq!(g_s.len(), g_u.len());
    let mut worst = 0f64;
    for ((n, a), (n2, b)) in g_s.iter().zip(&g_u) {
        assert_eq!(n, n2);
        let (d, mx) = max_diff(a, b);
        assert!(
            mx > 0.0,
            "gradient of {n} is zero: the test would not see a difference"
        );
        let rel = d / mx.max(1.0);
        assert!(
            rel <= tol,
            "qwen3={qwen3} {dtype:?} fused={fused}: gradient of {n} differs by {d:e} (max |g| {mx:e})"
        );
        worst = worst.max(rel);
    }
    eprintln!(
        "qwen3={qwen3} {dtype:?} fused={fused}: {} parameters; log-prob max diff {dl:e}, gradient max diff / max(1,|g|max) {worst:e}",
        g_s.len()
    );
    (dl, worst)
}

#[test]
fn shared_prefix_logprobs_and_gradients_equal_unshared_f32_fused() {
    check(true, DType::F32, true, 1e-5);
    check(false, DType::F32, true, 1e-5);
}

#[test]
fn shared_prefix_logprobs_and_gradients_equal_unshared_f32_composition() {
    check(true, DType::F32, false, 1e-5);
    check(false, DType::F32, false, 1e-5);
}

#[test]
fn shared_prefix_logprobs_and_gradients_equal_unshared_f64() {
    // In f64 the two layouts differ by reassociation only: far below the f32 tolerance.
    check(true, DType::F64, false, 1e-12);
    check(false, DType::F64, false, 1e-12);
}

#[test]
fn shared_layers_one_by_one_equal_the_whole_forward() {
    let (m, _) = tiny_model(true, DType::F32, true);
    let dev = Device::Cpu;
    let prefix = Tensor::new(&PROMPT, &dev).unwrap();
    let branches = Tensor::new(&[[4u32, 8, 15], [1, 30, 0]], &dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &dev).unwrap();
    let inp = m.shared_inputs(&prefix, &branches, Some(&mask)).unwrap();
    let whole = host(&m.forward_hidden_shared(&inp).unwrap());
    let mut x = m.embed(inp.ids()).unwrap();
    for l in 0..m.num_layers() {
        x = m.layer_forward_shared(l, &x, &inp).unwrap();
    }
    let pieces = host(&m.final_norm(&x).unwrap());
    assert_eq!(whole, pieces);
    assert_eq!(inp.rows(), 6 + 2 * 3);
    assert_eq!(inp.next_token_rows(), vec![5, 6, 7, 5, 9, 10]);
}

#[test]
fn shared_inputs_reject_bad_shapes() {
    let (m, _) = tiny_model(false, DType::F32, true);
    let dev = Device::Cpu;
    let prefix = Tensor::new(&PROMPT, &dev).unwrap();
    let branches = Tensor::new(&[[4u32, 8, 15], [1, 30, 0]], &dev).unwrap();
    let bad_mask = Tensor::new(&[[1u32, 1], [1, 1]], &dev).unwrap();
    let e = m
        .shared_inputs(&prefix, &branches, Some(&bad_mask))
        .unwrap_err()
        .to_string();
    assert!(e.contains("branch mask must be [2,3]"), "{e}");
    let long = Tensor::zeros((2, 30), DType::U32, &dev).unwrap();
    let e = m
        .shared_inputs(&prefix, &long, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("36"), "{e}");
    let oov = Tensor::new(&[[4u32, 99]], &dev).unwrap();
    let e = m
        .shared_inputs(&prefix, &oov, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("99"), "{e}");
}
