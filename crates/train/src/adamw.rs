//! Fused AdamW over one flat f32 buffer holding every parameter, and global-norm clipping.
//!
//! All parameters (the f32 master weights), their gradients and both moments live in
//! contiguous `Vec<f32>`s laid out by a [`FlatLayout`]; one step is a single rayon-parallel
//! pass over fixed-size chunks (clip scale, decoupled decay, moments, bias-corrected update)
//! instead of a chain of small tensor ops per parameter.
//!
//! The arithmetic follows `torch.optim.AdamW` (single-tensor path) operation by operation:
//!
//! ```text
//! p ← p·(1 − lr·wd)
//! m ← m + (1−β1)·(g − m)                  (lerp)
//! v ← β2·v + (1−β2)·g²
//! p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
//! ```
//!
//! with the bias corrections computed in f64 and the per-element math in f32.

use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 1 << 15;

/// One parameter inside the flat buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Hugging Face parameter name.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// First element in the flat buffers.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

/// Where each parameter lives in the flat buffers (parameters in sorted name order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlatLayout {
    specs: Vec<ParamSpec>,
    total: usize,
}

impl FlatLayout {
    /// Lays out `(name, shape)` pairs in the order given.
    pub fn new(params: impl IntoIterator<Item = (String, Vec<usize>)>) -> Self {
        let mut specs = Vec::new();
        let mut total = 0;
        for (name, shape) in params {
            let len = shape.iter().product();
            specs.push(ParamSpec {
                name,
                shape,
                offset: total,
                len,
            });
            total += len;
        }
        Self { specs, total }
    }

    /// The parameters, in buffer order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Total number of elements.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The spec of the parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// AdamW hyper-parameters for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Learning rate of this step.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Epsilon added to the bias-corrected `sqrt(v)`.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// AdamW state: step count and the two moments, flat.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    /// Optimizer steps taken so far.
    pub step: u64,
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
}

impl AdamW {
    /// A fresh state for `n` parameters.
    pub fn new(n: usize) -> Self {
        Self {
            step: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One AdamW step on `params` with gradients `grads · grad_scale` (the clip factor).
    ///
    /// # Panics
    /// If the buffers' lengths differ (an internal invariant of the trainer).
    pub fn update(&mut self, params: &mut [f32], grads: &[f32], grad_scale: f32, hp: &AdamWParams) {
        assert!(
            params.len() == grads.len()
                && params.len() == self.m.len()
                && self.m.len() == self.v.len(),
            "AdamW buffers must have equal lengths"
        );
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - hp.beta1.powi(t);
        let bc2 = 1.0 - hp.beta2.powi(t);
        let step_size = (hp.lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = (1.0 - hp.lr * hp.weight_decay) as f32;
        let one_m_b1 = (1.0 - hp.beta1) as f32;
        let b2 = hp.beta2 as f32;
        let one_m_b2 = (1.0 - hp.beta2) as f32;
        let eps = hp.eps as f32;
        let scale = grad_scale;
        params
            .par_chunks_mut(CHUNK)
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .zip(grads.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                for i in 0..p.len() {
                    let gi = if scale == 1.0 { g[i] } else { g[i] * scale };
                    let pi = p[i] * decay;
                    let mi = m[i] + one_m_b1 * (gi - m[i]);
                    let vi = b2 * v[i] + one_m_b2 * gi * gi;
                    let denom = vi.sqrt() / bc2_sqrt + eps;
                    p[i] = pi - step_size * (mi / denom);
                    m[i] = mi;
                    v[i] = vi;
                }
            });
    }
}

/// Global L2 norm of a flat gradient (accumulated in f64, in parallel).
/// Deterministic: per-chunk partial sums are added in chunk order.
pub fn global_norm(grads: &[f32]) -> f64 {
    let partial: Vec<f64> = grads
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>())
        .collect();
    partial.iter().sum::<f64>().sqrt()
}

/// `torch.nn.utils.clip_grad_norm_`'s factor: `min(1, max_norm / (norm + 1e-6))`;
/// 1 when `max_norm` is 0 (clipping disabled).
pub fn clip_coef(norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 {
        1.0
    } else {
        (max_norm / (norm + 1e-6)).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook AdamW in f64 (the torch formula), for comparison.
    fn reference(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], t: i32, hp: &AdamWParams) {
        for i in 0..p.len() {
            p[i] *= 1.0 - hp.lr * hp.weight_decay;
            m[i] = hp.beta1 * m[i] + (1.0 - hp.beta1) * g[i];
            v[i] = hp.beta2 * v[i] + (1.0 - hp.beta2) * g[i] * g[i];
            let mh = m[i] / (1.0 - hp.beta1.powi(t));
            let vh = v[i] / (1.0 - hp.beta2.powi(t));
            p[i] -= hp.lr * mh / (vh.sqrt() + hp.eps);
        }
    }

    #[test]
    fn first_step_by_hand() {
        // Step 1 from zero state: p ← p(1 − lr·wd) − lr·g/(|g| + eps).
        let hp = AdamWParams {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut p = vec![1.0f32, -2.0, 0.5];
        let g = vec![0.5f32, -0.25, 0.0];
        let mut opt = AdamW::new(3);
        opt.update(&mut p, &g, 1.0, &hp);
        // 1·0.999 − 0.1 = 0.899; −2·0.999 + 0.1 = −1.898; 0.5·0.999 − 0 = 0.4995.
        let want = [0.899f32, -1.898, 0.4995];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{p:?}");
        }
        assert_eq!(opt.step, 1);
        assert!((opt.m[0] - 0.05).abs() < 1e-8 && (opt.v[0] - 0.00025).abs() < 1e-9);
    }

    #[test]
    fn several_steps_match_f64_reference_with_clip_scale() {
        let hp = AdamWParams {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let n = 100_003; // several chunks, ragged tail
        let mut p: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut pr: Vec<f64> = p.iter().map(|&x| x as f64).collect();
        let (mut mr, mut vr) = (vec![0.0; n], vec![0.0; n]);
        let mut opt = AdamW::new(n);
        for t in 1..=5 {
            let g: Vec<f32> = (0..n).map(|i| ((i * t) as f32 * 0.11).cos()).collect();
            let scale = 0.5f32;
            opt.update(&mut p, &g, scale, &hp);
            let gs: Vec<f64> = g.iter().map(|&x| (x * scale) as f64).collect();
            reference(&mut pr, &mut mr, &mut vr, &gs, t as i32, &hp);
        }
        let err = p
            .iter()
            .zip(&pr)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 2e-6, "max abs error {err}");
    }

    #[test]
    fn norm_and_clip() {
        let g = vec![3.0f32, 4.0];
        assert!((global_norm(&g) - 5.0).abs() < 1e-12);
        assert!((clip_coef(5.0, 1.0) - 1.0 / (5.0 + 1e-6)).abs() < 1e-12);
        assert_eq!(clip_coef(0.5, 1.0), 1.0);
        assert_eq!(clip_coef(5.0, 0.0), 1.0);
        let layout = FlatLayout::new([("b".to_string(), vec![2, 3]), ("a".to_string(), vec![4])]);
        assert_eq!(layout.total(), 10);
        assert_eq!(layout.get("a").unwrap().offset, 6);
    }
}
