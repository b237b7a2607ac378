//! Inputs shared by the trainer's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use model::{Config, Weights};
use train::{Group, ModelFiles, Response, Trainer};

/// A tiny model fixture (`tests/fixtures/models/<name>`, found by the `testdata` crate) and the
/// model loaded from it. A missing fixture panics naming the path.
pub fn fixture_model(name: &str) -> (PathBuf, model::LoadedModel) {
    let d = testdata::model_dir(name);
    let m = model::load(d.to_str().unwrap(), &model::LoadOptions::default()).expect("load");
    (d, m)
}

/// One response with its reward.
pub fn resp(ids: &[u32], reward: f32) -> Response {
    Response {
        ids: ids.to_vec(),
        reward,
        ..Default::default()
    }
}

/// Two groups with prompts and responses of different lengths (so micro-batches pad on
/// both sides); `shift` changes one prompt token, `second` is the first token id of the
/// second group's responses (keep it inside the test model's vocabulary).
pub fn groups_from(shift: u32, second: u32) -> Vec<Group> {
    vec![
        Group {
            prompt: vec![1, 40 + shift, 41, 42, 43, 44, 45],
            responses: vec![
                resp(&[50, 51, 52, 2], 1.0),
                resp(&[60, 61], 0.0),
                resp(&[70, 71, 72, 73, 74, 75], 0.5),
            ],
        },
        Group {
            prompt: vec![1, 90, 91 + shift],
            responses: vec![
                resp(
                    &[second, second + 1, second + 2, second + 3, second + 4],
                    0.0,
                ),
                resp(&[second + 10], 1.0),
                resp(&[second + 20, second + 21, second + 22], 1.0),
            ],
        },
    ]
}

/// A tiny random Qwen2 (q/k/v biases, untied lm_head), deterministic for `seed`.
pub fn random_qwen2(seed: u64) -> (Config, Weights) {
    let v = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "vocab_size": 97, "hidden_size": 24,
        "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": false, "max_position_embeddings": 64
    });
    let cfg = Config::from_hf_value(&v, Path::new("random-qwen2")).unwrap();
    assert!(cfg.attention_bias && !cfg.tie_word_embeddings);
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
    };
    let mut w = Weights::new();
    for (name, shape) in model::load::expected_shapes(&cfg) {
        let n: usize = shape.iter().product();
        let norm = name.ends_with("norm.weight");
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                if norm {
                    1.0 + 0.2 * next()
                } else {
                    0.3 * next()
                }
            })
            .collect();
        w.insert(
            name,
            Tensor::from_vec(vals, shape.as_slice(), &Device::Cpu).unwrap(),
        );
    }
    (cfg, w)
}

/// Every parameter gradient of `t`, concatenated in layout order.
pub fn all_grads(t: &Trainer) -> Vec<f32> {
    t.layout()
        .specs()
        .iter()
        .flat_map(|s| t.grad(&s.name).unwrap().to_vec())
        .collect()
}

/// max |a − b| / max |b|.
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b
        .iter()
        .map(|x| x.abs() as f64)
        .fold(0.0, f64::max)
        .max(1e-30);
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

/// The checkpoint's files of the fixture model `m`.
pub fn model_files(m: &model::LoadedModel) -> ModelFiles<'_> {
    ModelFiles {
        tokenizer: &m.tokenizer,
        chat_template: m.chat_template.as_ref(),
        generation: &m.generation,
        base_model: None,
    }
}

/// (cosine, max |a − b| / max |b|).
pub fn compare(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut ab, mut aa, mut bb, mut dmax, mut bmax) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
        dmax = dmax.max((x - y).abs());
        bmax = bmax.max(y.abs());
    }
    (
        ab / (aa.sqrt() * bb.sqrt()).max(1e-300),
        dmax / bmax.max(1e-300),
    )
}

/// `c` training LoRA `l` (its `lora_*` knobs and `merge_lora_on_save`); `None`: full
/// fine-tuning.
pub fn with_lora(mut c: train::GrpoConfig, l: Option<train::LoraConfig>) -> train::GrpoConfig {
    c.optim.lora_rank = 0;
    if let Some(l) = l {
        c.optim.lora_rank = l.rank;
        c.optim.lora_alpha = l.alpha.unwrap_or(0.0);
        c.optim.lora_targets = l.target_modules;
        c.merge_lora_on_save = l.merge_on_save;
    }
    c
}

/// LoRA of rank `rank` on every target module, α = 2·rank, adapter-only checkpoints.
pub fn lora_rank(rank: usize) -> train::LoraConfig {
    train::LoraConfig {
        rank,
        alpha: None,
        target_modules: model::lora::ALL_TARGETS.map(String::from).to_vec(),
        merge_on_save: false,
    }
}
