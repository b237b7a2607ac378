//! Per-token GRPO loss terms and their derivatives with respect to the policy log-prob.
//!
//! The trainer evaluates the loss here, in plain f32 arithmetic following R-Zero's
//! `compute_policy_loss` / `compute_kl` operation by operation, together with the exact
//! derivative `∂(ℓ + β·kl)/∂logp` that PyTorch's autograd would produce (including its
//! half-and-half split at `max`/`min` ties and zero gradient through a binding clamp).
//! The model is then differentiated through the surrogate `Σ_t c_t · logp_t` with
//! `c_t = w_t · ∂(ℓ_t + β·kl_t)/∂logp_t` held constant: the same gradient, without
//! building the loss graph in candle.
//!
//! One deliberate difference: where the ratio overflows to infinity PyTorch produces a NaN
//! gradient (`0 · inf` in the unused branch); here the unused branch contributes exactly 0.

use crate::config::{GrpoConfig, LossAgg};

/// The loss constants, resolved once from a [`GrpoConfig`] (f32, as the reference uses them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossParams {
    /// `ln(1 − ε_low)` rounded to f32.
    pub log_lo: f32,
    /// `ln(1 + ε_high)` rounded to f32.
    pub log_hi: f32,
    /// Dual clip `c` (negative advantages only).
    pub dual: Option<f32>,
    /// KL clamp bound.
    pub kl_clamp: f32,
}

impl LossParams {
    /// Resolves the constants of `cfg`.
    pub fn new(cfg: &GrpoConfig) -> Self {
        Self {
            log_lo: (1.0 - cfg.optim.clip_low).ln() as f32,
            log_hi: (1.0 + cfg.optim.clip_high).ln() as f32,
            dual: cfg.clip_dual().map(|c| c as f32),
            kl_clamp: cfg.kl_clamp as f32,
        }
    }
}

/// The policy-gradient term of one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgToken {
    /// `ρ = exp(logp − old)`.
    pub ratio: f32,
    /// `exp(clamp(logp − old, ln(1−ε_low), ln(1+ε_high)))`.
    pub clipped_ratio: f32,
    /// The per-token loss `ℓ`.
    pub loss: f32,
    /// `∂ℓ/∂logp`.
    pub grad: f32,
    /// The reference's `pg_clipfrac_higher` flag: `−A·ρ < −A·ρ_c`.
    pub clip_higher: bool,
    /// The reference's `pg_clipfrac_lower` flag: `A < 0` and the dual clip binds.
    pub clip_lower: bool,
}

/// Derivative split of `max(a, b)` / `min(a, b)` as PyTorch does it: the winner takes it
/// all, a tie sends half to each side. Returns the weight of `a`.
fn pick(a_wins: bool, tie: bool) -> f32 {
    if tie {
        0.5
    } else if a_wins {
        1.0
    } else {
        0.0
    }
}

/// `w·a + (1−w)·b`, where a weight of 0 ignores its side entirely (even an infinite one).
fn mix(w: f32, a: f32, b: f32) -> f32 {
    if w == 1.0 {
        a
    } else if w == 0.0 {
        b
    } else {
        w * a + (1.0 - w) * b
    }
}

/// Clipped surrogate with clip-higher and dual clip for one token with advantage `adv`.
pub fn pg_token(logp: f32, old: f32, adv: f32, p: &LossParams) -> PgToken {
    let x = logp - old;
    let ratio = x.exp();
    let xc = x.clamp(p.log_lo, p.log_hi);
    let clipped_ratio = xc.exp();
    let l1 = -adv * ratio;
    let l2 = -adv * clipped_ratio;
    // d/dlogp of each branch (the clamp passes gradient on its closed interval).
    let d1 = -adv * ratio;
    let d2 = if x >= p.log_lo && x <= p.log_hi {
        -adv * clipped_ratio
    } else {
        0.0
    };
    let l_hi = l1.max(l2);
    let d_hi = mix(pick(l1 > l2, l1 == l2), d1, d2);
    let mut loss = l_hi;
    let mut grad = d_hi;
    let mut clip_lower = false;
    if let Some(c) = p.dual {
        let l3 = -adv * c;
        if adv < 0.0 {
            // min(L_hi, L3): L3 is a constant.
            loss = l_hi.min(l3);
            grad = mix(pick(l_hi < l3, l_hi == l3), d_hi, 0.0);
            clip_lower = l_hi > l3;
        }
    }
    PgToken {
        ratio,
        clipped_ratio,
        loss,
        grad,
        clip_higher: l1 < l2,
        clip_lower,
    }
}

/// The low-variance KL term of one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlToken {
    /// `clamp(exp(k) − k − 1, −C, C)` with `k = ref − logp`.
    pub kl: f32,
    /// `∂kl/∂logp` (0 where the clamp binds).
    pub grad: f32,
    /// The clamp bound.
    pub clamped: bool,
}

/// Schulman's k3 estimator of KL(π_θ ‖ π_ref) for one token.
pub fn kl_token(logp: f32, ref_logp: f32, clamp: f32) -> KlToken {
    let k = ref_logp - logp;
    let ek = k.exp();
    let raw = ek - k - 1.0;
    let inside = raw >= -clamp && raw <= clamp;
    KlToken {
        kl: raw.clamp(-clamp, clamp),
        grad: if inside { 1.0 - ek } else { 0.0 },
        clamped: !inside,
    }
}

/// The aggregation weight of each sequence of a mini-batch: the loss is
/// `Σ_i w_i Σ_t M_it (ℓ_it + β·kl_it)`. `lengths[i]` is the number of response tokens of
/// sequence `i` (in mini-batch order); `micro_batch` the micro-batch size in sequences.
/// Sequences with no tokens get weight 0 (and count in the sequence means, as in the
/// reference where their masked mean is 0).
pub fn sequence_weights(
    lengths: &[usize],
    agg: LossAgg,
    micro_batch: usize,
    norm_len: Option<usize>,
) -> Vec<f32> {
    let b = lengths.len();
    if b == 0 {
        return Vec::new();
    }
    let per = |n: usize, denom: f64| if n == 0 { 0.0 } else { (1.0 / denom) as f32 };
    match agg {
        LossAgg::TokenMean => {
            let total: usize = lengths.iter().sum();
            lengths.iter().map(|&n| per(n, total as f64)).collect()
        }
        LossAgg::SeqMeanTokenMean => lengths
            .iter()
            .map(|&n| per(n, b as f64 * n as f64))
            .collect(),
        LossAgg::SeqMeanTokenSumNorm => {
            let l = norm_len.unwrap_or_else(|| lengths.iter().copied().max().unwrap_or(1));
            let l = l.max(1);
            lengths
                .iter()
                .map(|&n| per(n, b as f64 * l as f64))
                .collect()
        }
        LossAgg::MicrobatchTokenMean => {
            let mb = micro_batch.max(1);
            let ga = b.div_ceil(mb);
            let mut w = Vec::with_capacity(b);
            for chunk in lengths.chunks(mb) {
                let total: usize = chunk.iter().sum();
                w.extend(chunk.iter().map(|&n| per(n, ga as f64 * total as f64)));
            }
            w
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> LossParams {
        LossParams::new(&GrpoConfig::default())
    }

    /// Finite-difference check of `grad` away from kinks.
    fn fd(logp: f32, old: f32, adv: f32) -> f32 {
        let h = 1e-3f64;
        let f = |lp: f64| pg_token(lp as f32, old, adv, &params()).loss as f64;
        ((f(logp as f64 + h) - f(logp as f64 - h)) / (2.0 * h)) as f32
    }

    #[test]
    fn clip_bounds_are_the_reference_f32_values() {
        let p = params();
        // The fixture prints them to 7 digits.
        assert!((p.log_lo + 0.2231435).abs() < 1e-7, "{}", p.log_lo);
        assert!((p.log_hi - 0.2623643).abs() < 1e-7, "{}", p.log_hi);
    }

    #[test]
    fn regions_losses_and_gradients() {
        let p = params();
        let cases: &[(f32, f32, bool, bool, bool)] = &[
            // (ratio, adv, grad flows, clip_higher, clip_lower)
            (1.1, 1.0, true, false, false),  // in range, A>0
            (1.1, -1.0, true, false, false), // in range, A<0
            (1.5, 1.0, false, true, false),  // A>0 above 1.3: clipped, no grad
            (0.5, 1.0, true, false, false),  // A>0 below 0.8: unclipped, grad flows
            (0.5, -1.0, false, true, false), // A<0 below 0.8: clipped low, no grad
            (2.0, -1.0, true, false, false), // A<0 in (1.3, 3]: unclipped, grad flows
            (4.0, -1.0, false, false, true), // A<0 above 3: dual-clipped, no grad
        ];
        for &(r, adv, flows, hi, lo) in cases {
            let old = -2.0f32;
            let logp = old + r.ln();
            let t = pg_token(logp, old, adv, &p);
            assert!((t.ratio - r).abs() < 1e-5);
            // Closed forms from the fixture README.
            let want = if adv > 0.0 {
                -adv * r.min(1.3)
            } else {
                adv.abs() * r.clamp(0.8, 3.0)
            };
            assert!(
                (t.loss - want).abs() < 1e-5,
                "ratio {r} adv {adv}: {} vs {want}",
                t.loss
            );
            assert_eq!(t.grad != 0.0, flows, "ratio {r} adv {adv}");
            if flows {
                assert!((t.grad + adv * r).abs() < 1e-5);
            }
            assert!(
                (t.grad - fd(logp, old, adv)).abs() < 2e-3,
                "fd at ratio {r} adv {adv}"
            );
            assert_eq!(
                (t.clip_higher, t.clip_lower),
                (hi, lo),
                "ratio {r} adv {adv}"
            );
        }
        // A = 0: no loss, no gradient.
        let t = pg_token(-1.0, -1.5, 0.0, &p);
        assert_eq!(t.loss.abs(), 0.0);
        assert_eq!(t.grad.abs(), 0.0);
        // Without dual clip the A<0, ρ=4 token has gradient.
        let nodual = LossParams { dual: None, ..p };
        let t = pg_token(4f32.ln(), 0.0, -1.0, &nodual);
        assert!((t.loss - 4.0).abs() < 1e-5 && t.grad != 0.0);
        // An overflowing ratio yields a finite (zero) gradient.
        let t = pg_token(200.0, 0.0, 1.0, &p);
        assert!(t.grad == 0.0 && t.loss.is_finite());
    }

    #[test]
    fn kl_is_zero_at_equality_and_clamped_far_away() {
        let k = kl_token(-3.0, -3.0, 10.0);
        assert_eq!((k.kl, k.grad, k.clamped), (0.0, 0.0, false));
        // k = ref − logp = 1: e − 2.
        let k = kl_token(-3.0, -2.0, 10.0);
        assert!((k.kl - (std::f32::consts::E - 2.0)).abs() < 1e-6);
        assert!((k.grad - (1.0 - std::f32::consts::E)).abs() < 1e-6);
        let k = kl_token(-10.0, -6.0, 10.0);
        assert!(k.clamped && k.kl == 10.0 && k.grad == 0.0);
    }

    #[test]
    fn weights_of_each_mode_sum_to_one() {
        let lens = [9, 4, 14, 6, 16, 11, 3, 7];
        for agg in [
            LossAgg::TokenMean,
            LossAgg::SeqMeanTokenMean,
            LossAgg::MicrobatchTokenMean,
        ] {
            for mb in [1, 2, 3, 8] {
                let w = sequence_weights(&lens, agg, mb, None);
                let s: f64 = w
                    .iter()
                    .zip(&lens)
                    .map(|(&w, &n)| w as f64 * n as f64)
                    .sum();
                assert!((s - 1.0).abs() < 1e-6, "{agg:?} mb {mb}: {s}");
            }
        }
        assert_eq!(
            sequence_weights(&lens, LossAgg::TokenMean, 1, None)[0],
            1.0 / 70.0
        );
        assert_eq!(
            sequence_weights(&lens, LossAgg::SeqMeanTokenMean, 1, None)[1],
            1.0 / 32.0
        );
        assert_eq!(
            sequence_weights(&lens, LossAgg::SeqMeanTokenSumNorm, 1, None)[1],
            1.0 / 128.0
        );
        assert_eq!(
            sequence_weights(&lens, LossAgg::SeqMeanTokenSumNorm, 1, Some(32))[1],
            1.0 / 256.0
        );
        // Micro-batch 2: pairs (9,4): 1/(4·13).
        assert_eq!(
            sequence_weights(&lens, LossAgg::MicrobatchTokenMean, 2, None)[0],
            1.0 / 52.0
        );
        assert_eq!(
            sequence_weights(&lens, LossAgg::MicrobatchTokenMean, 1, None),
            sequence_weights(&lens, LossAgg::SeqMeanTokenMean, 1, None)
        );
        assert_eq!(
            sequence_weights(&[0, 5], LossAgg::SeqMeanTokenMean, 1, None)[0],
            0.0
        );
    }
}
