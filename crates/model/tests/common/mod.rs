//! Shared helpers for the model tests: fixture loading and tolerance checks.
//! Fixtures: /work/shared/fixtures/models/*-tiny (PyTorch + transformers 5.24 reference).

#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use model::{Config, Model, Weights};
use serde_json::Value;

pub const MODELS: [&str; 3] = ["llama-tiny", "qwen2-tiny", "qwen3-tiny"];

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

pub struct Fixture {
    pub name: &'static str,
    pub cfg: Config,
    pub weights: Weights,
    pub expected: Value,
}

/// Loads a tiny model fixture, or `None` (with a printed reason) when it is absent.
pub fn load(name: &'static str) -> Option<Fixture> {
    let dir = fixtures_dir().join("models").join(name);
    if !dir.join("model.safetensors").exists() {
        eprintln!("skipping: fixture {} not found", dir.display());
        return None;
    }
    let cfg = Config::from_hf_json(&dir.join("config.json")).expect("config");
    let weights: Weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .expect("weights");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    Some(Fixture {
        name,
        cfg,
        weights,
        expected,
    })
}

impl Fixture {
    pub fn model(&self, dtype: DType) -> Model {
        Model::from_weights(&self.cfg, &self.weights, dtype, &Device::Cpu).expect("model")
    }
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn floats2(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}: index {i}: got {g}, want {w} (err {err})"
        );
        if err > worst.1 {
            worst = (i, err);
        }
    }
}

pub fn row_ids(t: &[u32]) -> Tensor {
    Tensor::from_vec(t.to_vec(), (1, t.len()), &Device::Cpu).unwrap()
}

pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
