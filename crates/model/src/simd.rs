//! Vectorised f32 math shared by the packed inference path and the engine's sampling: `exp`
//! (a Cephes polynomial on 8 AVX2 lanes), SiLU·gate, horizontal sums. Portable code where
//! the CPU lacks AVX2/FMA.

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn hsum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// e^x on 8 lanes (Cephes polynomial, relative error ~2e-7; inputs clamped to ±88.37).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn exp256(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-88.376_26)),
        _mm256_set1_ps(88.376_26),
    );
    let fx = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.398_199_9e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.333_452e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166_579_6e-2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.666_666_5e-1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5));
    y = _mm256_fmadd_ps(
        y,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let n = _mm256_cvtps_epi32(fx);
    let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(n, _mm256_set1_epi32(127)),
        23,
    ));
    _mm256_mul_ps(y, pow2)
}

/// `xs[i] = e^xs[i]` (AVX2 polynomial, relative error ~2e-7; `f32::exp` elsewhere and for
/// the tail).
pub fn exp_inplace(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA detected.
            unsafe { exp_inplace_avx2(xs) };
            return;
        }
    }
    xs.iter_mut().for_each(|x| *x = x.exp());
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_inplace_avx2(xs: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = xs.len();
    let p = xs.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(p.add(i), exp256(_mm256_loadu_ps(p.add(i))));
        i += 8;
    }
    xs[i..].iter_mut().for_each(|x| *x = x.exp());
}

/// `g[i] = silu(g[i]) * u[i]` (the gated MLP's activation).
pub(crate) fn silu_mul(g: &mut [f32], u: &[f32]) {
    assert!(u.len() >= g.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: lengths asserted; AVX2 and FMA detected.
            unsafe { silu_mul_avx2(g, u) };
            return;
        }
    }
    for (a, &b) in g.iter_mut().zip(u) {
        *a = *a / (1.0 + (-*a).exp()) * b;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(g: &mut [f32], u: &[f32]) {
    use std::arch::x86_64::*;
    let n = g.len();
    let (gp, up) = (g.as_mut_ptr(), u.as_ptr());
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i + 8 <= n {
        let x = _mm256_loadu_ps(gp.add(i));
        let e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
        let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gp.add(i), _mm256_mul_ps(s, _mm256_loadu_ps(up.add(i))));
        i += 8;
    }
    while i < n {
        let a = *gp.add(i);
        *gp.add(i) = a / (1.0 + (-a).exp()) * *up.add(i);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    type ExpPath = (&'static str, fn(&mut [f32]));

    /// The exp paths this CPU can run: (name, function).
    fn exp_paths() -> Vec<ExpPath> {
        let mut v: Vec<ExpPath> = vec![("scalar", |xs| xs.iter_mut().for_each(|x| *x = x.exp()))];
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: AVX2 and FMA detected.
            v.push(("avx2", |xs| unsafe { exp_inplace_avx2(xs) }));
        }
        v.push(("exp_inplace", exp_inplace));
        v
    }

    /// Max relative error against f64 `exp` over the whole normal-result domain
    /// [-87.3, 88.3], on a dense grid (2^21 + 1 points, length not a multiple of 8 so the
    /// tail is covered) plus the integers and half-integers (where the polynomial's range
    /// reduction switches).
    #[test]
    fn exp_relative_error_is_bounded_over_the_domain() {
        let (lo, hi) = (-87.3f64, 88.3f64);
        let n = (1usize << 21) + 1;
        let mut xs: Vec<f32> = (0..n)
            .map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32)
            .collect();
        xs.extend((-87..=88).flat_map(|i| [i as f32, i as f32 + 0.5]));
        xs.extend([0.0, -0.0, 1e-30, -1e-30, f32::MIN_POSITIVE]);
        for (name, f) in exp_paths() {
            let mut ys = xs.clone();
            f(&mut ys);
            let mut worst = (0f64, 0f32);
            for (&x, &y) in xs.iter().zip(&ys) {
                let want = (x as f64).exp();
                let rel = ((y as f64) - want).abs() / want;
                if rel > worst.0 {
                    worst = (rel, x);
                }
            }
            eprintln!(
                "exp {name}: max relative error {:.3e} at x = {}",
                worst.0, worst.1
            );
            // ~2e-7 documented (measured 1.18e-7 on AVX2); f32 rounding alone is 6e-8.
            assert!(
                worst.0 <= 2e-7,
                "exp {name}: relative error {:.3e} at x = {}",
                worst.0,
                worst.1
            );
        }
    }

    /// Below the normal range (softmax scores far under the max) the result is a tiny
    /// non-negative number, never NaN, negative or large; above, it saturates finitely.
    #[test]
    fn exp_edges_stay_finite_and_tiny() {
        for (name, f) in exp_paths() {
            let mut ys: Vec<f32> = (0..64).map(|i| -87.3 - i as f32 * 0.05).collect();
            ys.extend([-100.0, -1e4, -f32::MAX, f32::NEG_INFINITY]);
            f(&mut ys);
            // e^-87.3 = 1.219e-38: nothing below the normal range may exceed it.
            let cap = ((-87.3f64).exp() * (1.0 + 1e-6)) as f32;
            for (i, y) in ys.iter().enumerate() {
                assert!(
                    y.is_finite() && (0.0..=cap).contains(y),
                    "{name}: [{i}] {y}"
                );
            }
            let mut big = vec![88.3f32; 9];
            f(&mut big);
            assert!(
                big.iter().all(|y| y.is_finite() && *y > 1e38),
                "{name}: {big:?}"
            );
        }
    }

    #[test]
    fn silu_matches_scalar_formula() {
        let g0: Vec<f32> = (0..203).map(|i| (i as f32 - 100.0) * 0.37).collect();
        let u: Vec<f32> = (0..203).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let mut g = g0.clone();
        silu_mul(&mut g, &u);
        for i in 0..g.len() {
            let x = g0[i] as f64;
            let want = x / (1.0 + (-x).exp()) * u[i] as f64;
            assert!(
                (g[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "silu({x}) * {}: {} vs {want}",
                u[i],
                g[i]
            );
        }
    }
}
