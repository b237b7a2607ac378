//! Shared helpers for the model tests: fixture loading and tolerance checks.
//! Fixtures: `tests/fixtures/models/*-tiny` (PyTorch + transformers 5.24 reference; found by the
//! `testdata` crate, `RZERO_FIXTURES` overrides the folder).

#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use model::{Config, Model, Weights};
use serde_json::Value;

#[allow(unused_imports)]
pub use testdata::MODELS;

pub fn fixtures_dir() -> PathBuf {
    testdata::root()
}

pub struct Fixture {
    pub name: &'static str,
    pub cfg: Config,
    pub weights: Weights,
    pub expected: Value,
}

/// Loads a tiny model fixture; a missing file panics naming it.
pub fn load(name: &'static str) -> Fixture {
    let dir = testdata::model_dir(name);
    let cfg = Config::from_hf_json(&dir.join("config.json")).expect("config");
    let weights: Weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .expect("weights");
    let expected = testdata::read_json(&dir.join("expected.json"));
    Fixture {
        name,
        cfg,
        weights,
        expected,
    }
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

/// A tolerance `(atol, rtol)` from `models/tolerances.json`.
pub fn tol(key: &str) -> (f32, f32) {
    let (a, r) = testdata::tolerance("models/tolerances.json", key);
    (a as f32, r as f32)
}

/// [`assert_close`] with the tolerance `key` of `models/tolerances.json`.
pub fn assert_close_to(what: &str, got: &[f32], want: &[f32], key: &str) {
    let (atol, rtol) = tol(key);
    assert_close(what, got, want, atol, rtol);
}

/// The vocabulary size the fixture declares (`expected.json` `shape.vocab_size`).
pub fn vocab(fx: &Fixture) -> usize {
    fx.expected["shape"]["vocab_size"].as_u64().unwrap() as usize
}

/// Deterministic uniform(-1, 1) values.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// A tensor's values as a flat f32 vector.
pub fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Every variable of `vm` with its gradient in `grads`, sorted by name; panics naming `tag`
/// and the variable when one has none.
pub fn named_grads(
    vm: &candle_nn::VarMap,
    grads: &candle_core::backprop::GradStore,
    tag: &str,
) -> Vec<(String, Vec<f32>)> {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let g = grads
                .get(data[n].as_tensor())
                .unwrap_or_else(|| panic!("{tag}: no gradient for {n}"));
            (n.clone(), host(g))
        })
        .collect()
}

/// The fixture `name`'s model over `Var`s (so that every parameter gets a gradient), its
/// products at precision `p`.
pub fn var_model(name: &'static str, p: model::ops::MatmulPrecision) -> (Model, candle_nn::VarMap) {
    let fx = load(name);
    let vm = candle_nn::VarMap::new();
    {
        let mut data = vm.data().lock().unwrap();
        for (n, t) in &fx.weights {
            let t = t.to_dtype(DType::F32).unwrap();
            data.insert(n.clone(), candle_core::Var::from_tensor(&t).unwrap());
        }
    }
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let mut m = Model::new(&fx.cfg, vb).unwrap();
    m.set_matmul_precision(p);
    assert_eq!(m.matmul_precision(), p);
    (m, vm)
}
