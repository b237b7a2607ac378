//! Finite-difference gradient check in f64 on a tiny random model that has every kind of
//! parameter: embedding, q/k/v biases, q_norm/k_norm, o_proj, MLP, both layer norms, the
//! final norm and an untied lm_head. Guards the invariant that the differentiable path uses
//! no fused (backward-less) kernel: a missing gradient or a wrong one fails here.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use model::logprobs::token_logprobs;
use model::{Config, Model};
use serde_json::json;

/// Deterministic uniform(-1, 1) values.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

#[test]
fn finite_differences_match_backward() {
    let v = json!({
        "architectures": ["Qwen3ForCausalLM"], "vocab_size": 11, "hidden_size": 8,
        "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 6, "rope_theta": 1000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": false, "attention_bias": true, "max_position_embeddings": 32
    });
    let cfg = Config::from_hf_value(&v, Path::new("test")).unwrap();
    assert!(cfg.qk_norm && cfg.attention_bias && !cfg.tie_word_embeddings);
    let dev = Device::Cpu;
    // 1. Random parameters, by name, in a VarMap (as the trainer builds the model).
    let mut names = Vec::new();
    let (h, d, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
    let (q, kv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
    names.push((
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, h],
        0.0,
    ));
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
            names.push((format!("{p}.{n}"), s, base));
        }
    }
    names.push(("model.norm.weight".to_string(), vec![h], 1.0));
    names.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, h], 0.0));
    let mut rng = Lcg(7);
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().unwrap();
        for (n, s, base) in &names {
            let count: usize = s.iter().product();
            let vals: Vec<f64> = (0..count).map(|_| base + 0.6 * rng.next()).collect();
            let t = Tensor::from_vec(vals, s.as_slice(), &dev).unwrap();
            data.insert(n.clone(), Var::from_tensor(&t).unwrap());
        }
    }
    let m = Model::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F64, &dev)).unwrap();
    // 2. A left-padded batch; loss = -(weighted sum of target log-probs) over real positions.
    let ids = Tensor::new(&[[0u32, 0, 3, 7, 1, 9], [4, 2, 10, 5, 5, 8]], &dev).unwrap();
    let mask = Tensor::new(&[[0u32, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], &dev).unwrap();
    let targets = Tensor::new(&[[1u32, 1, 7, 1, 9, 2], [2, 10, 5, 5, 8, 3]], &dev).unwrap();
    let weights = Tensor::new(
        &[
            [0.0f64, 0.0, 1.0, 0.7, -0.4, 1.3],
            [0.5, 1.0, -1.0, 0.3, 0.9, 1.1],
        ],
        &dev,
    )
    .unwrap();
    let loss_fn = |m: &Model| -> Tensor {
        let hidden = m.forward_hidden(&ids, Some(&mask)).unwrap();
        let (lp, _) = token_logprobs(m, &hidden, &targets, 5).unwrap();
        // Plus a term on raw logits, so the plain forward is covered too.
        let logits = m.forward(&ids, Some(&mask)).unwrap();
        let extra = logits
            .narrow(1, 5, 1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        ((lp * &weights).unwrap().sum_all().unwrap().neg().unwrap() + (extra * 0.01).unwrap())
            .unwrap()
    };
    let loss = loss_fn(&m);
    let grads = loss.backward().unwrap();
    // 3. Central differences on a few entries of every parameter.
    let data = varmap.data().lock().unwrap();
    let eps = 1e-6;
    let mut checked = 0;
    for (n, s, _) in &names {
        let var = &data[n];
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reached {n}"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let count: usize = s.iter().product();
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for k in [0, count / 2, count - 1] {
            let at = |delta: f64| -> f64 {
                let mut vals = orig.clone();
                vals[k] += delta;
                var.set(&Tensor::from_vec(vals, s.as_slice(), &dev).unwrap())
                    .unwrap();
                loss_fn(&m).to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(orig.clone(), s.as_slice(), &dev).unwrap())
                .unwrap();
            let an = g[k];
            assert!(
                (fd - an).abs() <= 1e-6 + 1e-5 * an.abs().max(fd.abs()),
                "{n}[{k}]: finite difference {fd} vs backward {an}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, names.len() * 3);
    // Row 0 of the embedding (a pad token, only on masked positions) gets no gradient.
    let ge = grads
        .get(data["model.embed_tokens.weight"].as_tensor())
        .unwrap();
    let row0 = ge
        .get(0)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(row0, 0.0);
}
