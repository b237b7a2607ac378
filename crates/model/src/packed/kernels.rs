//! CPU matrix product for the packed path: `out[m,n] = x[m,k] · w[n,k]ᵀ` with both
//! operands row-major, as HF stores weights. Dot-product form (no packing of `w`): each
//! task streams a block of `w` rows once and multiplies it with all rows of `x`, which is
//! what small-batch decoding needs. AVX2+FMA when the CPU has it, portable code otherwise.

use rayon::prelude::*;

/// Rows of `w` per parallel task.
const NB: usize = 32;

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `out[m*n]` (row-major) = x[m,k] · w[n,k]ᵀ.
pub(crate) fn matmul_nt(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    assert!(
        x.len() >= m * k && w.len() >= n * k,
        "matmul_nt: operand sizes"
    );
    let mut out = vec![0f32; m * n];
    let ptr = SendPtr(out.as_mut_ptr());
    let ptr = &ptr;
    let blocks = n.div_ceil(NB);
    (0..blocks).into_par_iter().for_each(|b| {
        let j0 = b * NB;
        let j1 = (j0 + NB).min(n);
        // SAFETY: each task writes only columns j0..j1 of `out`, disjoint across tasks,
        // and `out` outlives the parallel loop.
        unsafe { block(x, m, k, w, n, j0, j1, ptr.0) };
    });
    out
}

#[allow(clippy::too_many_arguments)]
unsafe fn block(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    j0: usize,
    j1: usize,
    out: *mut f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return block_avx2(x, m, k, w, n, j0, j1, out);
        }
    }
    block_generic(x, m, k, w, n, j0, j1, out)
}

#[allow(clippy::too_many_arguments)]
unsafe fn block_generic(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    j0: usize,
    j1: usize,
    out: *mut f32,
) {
    for j in j0..j1 {
        let wr = &w[j * k..(j + 1) * k];
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            let mut acc = [0f32; 8];
            let mut c = 0;
            while c + 8 <= k {
                for l in 0..8 {
                    acc[l] += xr[c + l] * wr[c + l];
                }
                c += 8;
            }
            let mut s =
                (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]);
            while c < k {
                s += xr[c] * wr[c];
                c += 1;
            }
            *out.add(i * n + j) = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx2(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    j0: usize,
    j1: usize,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_hadd_ps(s, s);
        let s = _mm_hadd_ps(s, s);
        _mm_cvtss_f32(s)
    }
    /// One MR×NR tile of dot products over the whole of k.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn tile<const MR: usize, const NR: usize>(
        xp: *const f32,
        wp: *const f32,
        k: usize,
        n: usize,
        i: usize,
        j: usize,
        out: *mut f32,
    ) {
        let k8 = k / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); NR]; MR];
        let mut c = 0;
        while c < k8 {
            let mut xv = [_mm256_setzero_ps(); MR];
            for ii in 0..MR {
                xv[ii] = _mm256_loadu_ps(xp.add((i + ii) * k + c));
            }
            for jj in 0..NR {
                let wv = _mm256_loadu_ps(wp.add((j + jj) * k + c));
                for ii in 0..MR {
                    acc[ii][jj] = _mm256_fmadd_ps(xv[ii], wv, acc[ii][jj]);
                }
            }
            c += 8;
        }
        for ii in 0..MR {
            for jj in 0..NR {
                let mut s = hsum(acc[ii][jj]);
                for cc in k8..k {
                    s += *xp.add((i + ii) * k + cc) * *wp.add((j + jj) * k + cc);
                }
                *out.add((i + ii) * n + j + jj) = s;
            }
        }
    }
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    // Tiles of 3 rows of x × 4 rows of w: 12 accumulators + 3 x registers + 1 w register.
    let mut j = j0;
    while j < j1 {
        let nr = (j1 - j).min(4);
        let mut i = 0;
        while i < m {
            let mr = (m - i).min(3);
            match (mr, nr) {
                (3, 4) => tile::<3, 4>(xp, wp, k, n, i, j, out),
                (2, 4) => tile::<2, 4>(xp, wp, k, n, i, j, out),
                (1, 4) => tile::<1, 4>(xp, wp, k, n, i, j, out),
                (3, 3) => tile::<3, 3>(xp, wp, k, n, i, j, out),
                (2, 3) => tile::<2, 3>(xp, wp, k, n, i, j, out),
                (1, 3) => tile::<1, 3>(xp, wp, k, n, i, j, out),
                (3, 2) => tile::<3, 2>(xp, wp, k, n, i, j, out),
                (2, 2) => tile::<2, 2>(xp, wp, k, n, i, j, out),
                (1, 2) => tile::<1, 2>(xp, wp, k, n, i, j, out),
                (3, _) => tile::<3, 1>(xp, wp, k, n, i, j, out),
                (2, _) => tile::<2, 1>(xp, wp, k, n, i, j, out),
                _ => tile::<1, 1>(xp, wp, k, n, i, j, out),
            }
            i += mr;
        }
        j += nr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_on_ragged_sizes() {
        for &(m, k, n) in &[(1, 8, 1), (3, 13, 5), (7, 64, 37), (32, 40, 70), (2, 3, 4)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
                .collect();
            let got = matmul_nt(&x, m, k, &w, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|c| x[i * k + c] as f64 * w[j * k + c] as f64)
                        .sum();
                    let g = got[i * n + j] as f64;
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "({m},{k},{n}) [{i},{j}]: {g} vs {want}"
                    );
                }
            }
        }
    }
}
