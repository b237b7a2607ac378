//! CPU matrix product for the packed path: `out[m,n] = x[m,k] · w[n,k]ᵀ` with both
//! operands row-major, as HF stores weights. Dot-product form (no packing of `w`): each
//! task streams a block of `w` rows once and multiplies it with all rows of `x`, which is
//! what small-batch decoding needs. AVX2+FMA when the CPU has it, portable code otherwise.
//! The weight rows come from an f32 matrix or, tile by tile, from a [`CompactMatrix`]
//! expanded into a small buffer (GGUF blocks dequantized, or bf16 rows widened: each
//! kernel widens bf16 with its own CPU features, AVX-512F, AVX2 or portable code).

use std::sync::atomic::{AtomicU8, Ordering};

use rayon::prelude::*;

use crate::compact::{CompactMatrix, Widen};

/// bf16-operand products (AMX, else rounded operands on `gemm`) for the training path's
/// opt-in bf16 matmul precision.
pub(crate) mod amx;
/// The AVX-512 product of the training path's fused ops.
pub(crate) mod gemm;
#[cfg(target_arch = "x86_64")]
use crate::simd::{exp256, hsum256};

/// Rows of `w` per parallel task (a multiple of the kernels' tile heights, 4 and 6).
const NB: usize = 48;

/// Rows of `x` per parallel task.
const MB: usize = 64;

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Where a product's weight rows come from.
#[derive(Clone, Copy)]
pub(crate) enum WSrc<'a> {
    /// `[n, k]` row-major f32.
    F32(&'a [f32]),
    /// `[n, k]` blocks, expanded tile by tile (bit-identical to its f32 tensor).
    Compact(&'a CompactMatrix),
}

/// `out[m*n]` (row-major) = x[m,k] · w[n,k]ᵀ.
pub(crate) fn matmul_nt(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    matmul_nt_multi_with(Kernel::current(), x, m, k, &[(WSrc::F32(w), n)])
        .pop()
        .expect("one product")
}

/// Several products of the same `x[m,k]` in one parallel region: for each `(w, n)`,
/// `x · w[n,k]ᵀ` as `[m*n]` row-major (e.g. q/k/v, or gate/up, without concatenating the
/// weights).
pub(crate) fn matmul_nt_multi(
    x: &[f32],
    m: usize,
    k: usize,
    ws: &[(WSrc<'_>, usize)],
) -> Vec<Vec<f32>> {
    matmul_nt_multi_with(Kernel::current(), x, m, k, ws)
}

/// [`matmul_nt_multi`] with the product kernel `kern` (which the CPU must support).
fn matmul_nt_multi_with(
    kern: Kernel,
    x: &[f32],
    m: usize,
    k: usize,
    ws: &[(WSrc<'_>, usize)],
) -> Vec<Vec<f32>> {
    assert!(
        kern.supported(),
        "matmul_nt: {kern:?} kernel on a CPU without it"
    );
    assert!(x.len() >= m * k, "matmul_nt: operand sizes");
    let mut outs: Vec<Vec<f32>> = ws
        .iter()
        .map(|&(w, n)| {
            match w {
                WSrc::F32(w) => assert!(w.len() >= n * k, "matmul_nt: operand sizes"),
                WSrc::Compact(c) => {
                    assert!(c.rows() == n && c.cols() == k, "matmul_nt: operand sizes")
                }
            }
            vec![0f32; m * n]
        })
        .collect();
    // Tasks: (product, first w row, first x row) blocks over all products; x in chunks of
    // `MB` rows so that a chunk stays in L2 while the weight tiles pass over it.
    let tasks: Vec<(usize, usize, usize)> = ws
        .iter()
        .enumerate()
        .flat_map(|(p, &(_, n))| {
            (0..n.div_ceil(NB))
                .flat_map(move |b| (0..m.div_ceil(MB)).map(move |c| (p, b * NB, c * MB)))
        })
        .collect();
    let ptrs: Vec<SendPtr> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    let ptrs = &ptrs;
    let run = |&(p, j0, i0): &(usize, usize, usize)| {
        let (w, n) = ws[p];
        let j1 = (j0 + NB).min(n);
        let i1 = (i0 + MB).min(m);
        // SAFETY: each task writes only rows i0..i1 × columns j0..j1 of product p's output,
        // disjoint across tasks, and the outputs outlive the parallel loop.
        unsafe {
            block(
                kern,
                &x[i0 * k..i1 * k],
                i1 - i0,
                k,
                w,
                n,
                j0,
                j1,
                ptrs[p].0.add(i0 * n),
            )
        };
    };
    if tasks.len() == 1 {
        run(&tasks[0]);
    } else {
        tasks.par_iter().for_each(run);
    }
    outs
}

/// Columns `j0..j1` of `out`, tile by tile of the kernel's weight rows.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    kern: Kernel,
    x: &[f32],
    m: usize,
    k: usize,
    w: WSrc<'_>,
    n: usize,
    j0: usize,
    j1: usize,
    out: *mut f32,
) {
    let tr = kern.tile_rows();
    let mut buf = match w {
        WSrc::Compact(_) => vec![0f32; tr * k],
        WSrc::F32(_) => Vec::new(),
    };
    let mut j = j0;
    while j < j1 {
        let nr = (j1 - j).min(tr);
        let wt: &[f32] = match w {
            WSrc::F32(w) => &w[j * k..(j + nr) * k],
            WSrc::Compact(c) => {
                c.expand_rows_with(kern.widen(), j, nr, &mut buf[..nr * k]);
                &buf[..nr * k]
            }
        };
        match kern {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vl => rows_avx512vl(x, m, k, wt, nr, n, j, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => rows_avx2(x, m, k, wt, nr, n, j, out),
            _ => rows_generic(x, m, k, wt, nr, n, j, out),
        }
        j += nr;
    }
}

/// A CPU product kernel of the packed path (`x · wᵀ`). The packed path uses the best one
/// the CPU supports unless [`Kernel::select`] picked another (benchmarks measure each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Tiles of 4 x-rows × 6 weight rows in the 32 AVX-512VL registers (x86-64 with
    /// AVX-512F, AVX-512VL, AVX2 and FMA).
    Avx512Vl,
    /// Tiles of 3 × 4 with AVX2 and FMA (x86-64).
    Avx2,
    /// Portable code (every CPU).
    Generic,
}

/// The selected kernel: 0 = the best the CPU has, else 1 + the index in [`Kernel::ALL`].
static SELECTED: AtomicU8 = AtomicU8::new(0);

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512Vl, Kernel::Avx2, Kernel::Generic];

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            match self {
                Kernel::Avx512Vl => {
                    avx2 && std::is_x86_feature_detected!("avx512f")
                        && std::is_x86_feature_detected!("avx512vl")
                }
                Kernel::Avx2 => avx2,
                Kernel::Generic => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Generic
        }
    }

    /// The fastest kernel this CPU supports.
    pub fn best() -> Kernel {
        Kernel::ALL
            .into_iter()
            .find(|k| k.supported())
            .unwrap_or(Kernel::Generic)
    }

    /// The kernel products use now: the selected one, else [`Kernel::best`].
    pub fn current() -> Kernel {
        match SELECTED.load(Ordering::Relaxed) {
            0 => Kernel::best(),
            i => Kernel::ALL[usize::from(i) - 1],
        }
    }

    /// Selects the kernel for the whole process (`None`: back to the best). False, and
    /// nothing changed, when the CPU cannot run it.
    pub fn select(kernel: Option<Kernel>) -> bool {
        let code = match kernel {
            None => 0,
            Some(k) if k.supported() => {
                1 + Kernel::ALL.iter().position(|&a| a == k).expect("in ALL") as u8
            }
            Some(_) => return false,
        };
        SELECTED.store(code, Ordering::Relaxed);
        true
    }

    /// The bf16 widening path that goes with this kernel (the same CPU features).
    fn widen(self) -> Widen {
        match self {
            Kernel::Avx512Vl => Widen::Avx512,
            Kernel::Avx2 => Widen::Avx2,
            Kernel::Generic => Widen::Scalar,
        }
    }

    /// Weight rows per tile (and per expansion of a compact matrix).
    fn tile_rows(self) -> usize {
        match self {
            Kernel::Avx512Vl => 6,
            _ => 4,
        }
    }
}

/// Columns `j..j + nr` of `out` from the weight rows `wt` ([nr, k]).
#[allow(clippy::too_many_arguments)]
unsafe fn rows_generic(
    x: &[f32],
    m: usize,
    k: usize,
    wt: &[f32],
    nr: usize,
    n: usize,
    j: usize,
    out: *mut f32,
) {
    for jj in 0..nr {
        let wr = &wt[jj * k..(jj + 1) * k];
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
            *out.add(i * n + j + jj) = s;
        }
    }
}

/// One MR×NR tile of dot products over the whole of k: rows `i..i + MR` of x against the
/// weight rows at `wp` (`NR` of them, `k` apart), into columns `j..j + NR` of `out`.
/// Inlined into the kernels below, which enable the CPU features it needs.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn dot_tile<const MR: usize, const NR: usize>(
    xp: *const f32,
    wp: *const f32,
    k: usize,
    n: usize,
    i: usize,
    j: usize,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let k8 = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); NR]; MR];
    let mut c = 0;
    while c < k8 {
        let mut xv = [_mm256_setzero_ps(); MR];
        for ii in 0..MR {
            xv[ii] = _mm256_loadu_ps(xp.add((i + ii) * k + c));
        }
        for jj in 0..NR {
            let wv = _mm256_loadu_ps(wp.add(jj * k + c));
            for ii in 0..MR {
                acc[ii][jj] = _mm256_fmadd_ps(xv[ii], wv, acc[ii][jj]);
            }
        }
        c += 8;
    }
    for ii in 0..MR {
        for jj in 0..NR {
            let mut s = hsum256(acc[ii][jj]);
            for cc in k8..k {
                s += *xp.add((i + ii) * k + cc) * *wp.add(jj * k + cc);
            }
            *out.add((i + ii) * n + j + jj) = s;
        }
    }
}

/// Rows `0..m` of x against the weight tile `wt` ([nr, k], nr ≤ 6) in [`dot_tile`]s of at
/// most `max_mr` x-rows × `nr` weight rows. Shared by the kernels below and inlined into
/// each, so every tile is compiled with that kernel's CPU features.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_tiled(
    x: &[f32],
    m: usize,
    k: usize,
    wt: &[f32],
    nr: usize,
    n: usize,
    j: usize,
    out: *mut f32,
    max_mr: usize,
) {
    let xp = x.as_ptr();
    let wp = wt.as_ptr();
    let mut i = 0;
    while i < m {
        let mr = (m - i).min(max_mr);
        macro_rules! tile {
            ($r:literal, $c:literal) => {
                dot_tile::<$r, $c>(xp, wp, k, n, i, j, out)
            };
        }
        match (mr, nr) {
            (4, 6) => tile!(4, 6),
            (4, 5) => tile!(4, 5),
            (4, 4) => tile!(4, 4),
            (4, 3) => tile!(4, 3),
            (4, 2) => tile!(4, 2),
            (4, _) => tile!(4, 1),
            (3, 6) => tile!(3, 6),
            (3, 5) => tile!(3, 5),
            (3, 4) => tile!(3, 4),
            (3, 3) => tile!(3, 3),
            (3, 2) => tile!(3, 2),
            (3, _) => tile!(3, 1),
            (2, 6) => tile!(2, 6),
            (2, 5) => tile!(2, 5),
            (2, 4) => tile!(2, 4),
            (2, 3) => tile!(2, 3),
            (2, 2) => tile!(2, 2),
            (2, _) => tile!(2, 1),
            (_, 6) => tile!(1, 6),
            (_, 5) => tile!(1, 5),
            (_, 4) => tile!(1, 4),
            (_, 3) => tile!(1, 3),
            (_, 2) => tile!(1, 2),
            _ => tile!(1, 1),
        }
        i += mr;
    }
}

/// [`rows_generic`] with AVX2+FMA: tiles of 3 rows of x × 4 weight rows (12 accumulators
/// + 3 x registers + 1 w register of the 16).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx2(
    x: &[f32],
    m: usize,
    k: usize,
    wt: &[f32],
    nr: usize,
    n: usize,
    j: usize,
    out: *mut f32,
) {
    rows_tiled(x, m, k, wt, nr, n, j, out, 3)
}

/// [`rows_avx2`] for CPUs with AVX-512VL: the same 256-bit FMAs, but the 32 vector
/// registers hold tiles of 4 rows of x × 6 weight rows (24 accumulators), so each step of k
/// does 10 loads for 24 FMAs instead of 7 for 12.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512vl(
    x: &[f32],
    m: usize,
    k: usize,
    wt: &[f32],
    nr: usize,
    n: usize,
    j: usize,
    out: *mut f32,
) {
    rows_tiled(x, m, k, wt, nr, n, j, out, 4)
}

/// Causal attention of the `rep` query heads that share one KV head, for one sequence.
///
/// `q`: the sequence's new rows, each `q_stride` floats, the group's heads starting at
/// `q_off` (`rep` heads of `d`). `k`, `v`: this KV head's cache, `[positions][d]`, already
/// holding the new positions; `past` positions precede the `m` rows. Writes `out` as
/// `[m][rep * d]` (head `h` at column `h * d`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_group(
    q: &[f32],
    out: &mut [f32],
    m: usize,
    q_stride: usize,
    q_off: usize,
    rep: usize,
    d: usize,
    k: &[f32],
    v: &[f32],
    past: usize,
    scale: f32,
) {
    let avx2 = Kernel::Avx2.supported();
    attend_group_with(avx2, q, out, m, q_stride, q_off, rep, d, k, v, past, scale);
}

/// [`attend_group`] on the AVX2 path (`avx2`, which the CPU must support) or the portable one.
#[allow(clippy::too_many_arguments)]
fn attend_group_with(
    avx2: bool,
    q: &[f32],
    out: &mut [f32],
    m: usize,
    q_stride: usize,
    q_off: usize,
    rep: usize,
    d: usize,
    k: &[f32],
    v: &[f32],
    past: usize,
    scale: f32,
) {
    assert!(
        !avx2 || Kernel::Avx2.supported(),
        "attention: AVX2 path on a CPU without it"
    );
    assert!(q.len() >= m * q_stride && out.len() >= m * rep * d);
    assert!(q_off + rep * d <= q_stride);
    assert!(k.len() >= (past + m) * d && v.len() >= (past + m) * d);
    let mut scores = vec![0f32; past + m];
    for i in 0..m {
        let upto = past + i + 1;
        for h in 0..rep {
            let qo = i * q_stride + q_off + h * d;
            let qv = &q[qo..qo + d];
            let oo = (i * rep + h) * d;
            let sc = &mut scores[..upto];
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: bounds asserted above; AVX2 and FMA checked.
                unsafe { attend_row_avx2(qv, &mut out[oo..oo + d], k, v, sc, scale) };
                continue;
            }
            attend_row_generic(qv, &mut out[oo..oo + d], k, v, sc, scale);
        }
    }
}

/// One query row against the first `scores.len()` cached positions (`k`, `v`:
/// `[positions][d]`).
fn attend_row_generic(
    qv: &[f32],
    o: &mut [f32],
    k: &[f32],
    v: &[f32],
    scores: &mut [f32],
    scale: f32,
) {
    let d = qv.len();
    let mut mx = f32::NEG_INFINITY;
    for (t, sc) in scores.iter_mut().enumerate() {
        let kr = &k[t * d..][..d];
        *sc = qv.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() * scale;
        mx = mx.max(*sc);
    }
    let mut sum = 0f32;
    for sc in scores.iter_mut() {
        *sc = (*sc - mx).exp();
        sum += *sc;
    }
    let inv = 1.0 / sum;
    o.fill(0.0);
    for (t, &p) in scores.iter().enumerate() {
        let p = p * inv;
        let vr = &v[t * d..][..d];
        for (a, &b) in o.iter_mut().zip(vr) {
            *a += p * b;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_avx2(
    qv: &[f32],
    o: &mut [f32],
    k: &[f32],
    v: &[f32],
    scores: &mut [f32],
    scale: f32,
) {
    scores_avx2(qv, k, scores, scale);
    let inv = softmax_numerators_avx2(scores);
    weighted_sum_avx2(o, v, scores, inv);
}

/// `scores[t] = scale · q · k[t]` for the rows of `k` (stride `q.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_avx2(qv: &[f32], k: &[f32], scores: &mut [f32], scale: f32) {
    use std::arch::x86_64::*;
    let d = qv.len();
    let d8 = d / 8 * 8;
    let upto = scores.len();
    let stride = d;
    let (qp, kp, sp) = (qv.as_ptr(), k.as_ptr(), scores.as_mut_ptr());
    // Scores, four keys at a time (four independent FMA chains), and their maximum.
    let score1 = |t: usize| -> f32 {
        let kr = kp.add(t * stride);
        let mut a = _mm256_setzero_ps();
        let mut c = 0;
        while c < d8 {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(c)), _mm256_loadu_ps(kr.add(c)), a);
            c += 8;
        }
        let mut s = hsum256(a);
        for cc in d8..d {
            s += *qp.add(cc) * *kr.add(cc);
        }
        s * scale
    };
    let mut t = 0;
    while t + 4 <= upto {
        let mut a = [_mm256_setzero_ps(); 4];
        let mut c = 0;
        while c < d8 {
            let q = _mm256_loadu_ps(qp.add(c));
            for (u, acc) in a.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(q, _mm256_loadu_ps(kp.add((t + u) * stride + c)), *acc);
            }
            c += 8;
        }
        // Four horizontal sums at once: lanes [a0, a1, a2, a3].
        let h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        let mut r = [0f32; 4];
        _mm_storeu_ps(
            r.as_mut_ptr(),
            _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)),
        );
        for (u, &ru) in r.iter().enumerate() {
            let mut s = ru;
            for cc in d8..d {
                s += *qp.add(cc) * *kp.add((t + u) * stride + cc);
            }
            *sp.add(t + u) = s * scale;
        }
        t += 4;
    }
    while t < upto {
        *sp.add(t) = score1(t);
        t += 1;
    }
}

/// Replaces `scores` by `exp(score − max)` and returns 1 / their sum.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_numerators_avx2(scores: &mut [f32]) -> f32 {
    use std::arch::x86_64::*;
    let upto = scores.len();
    let sp = scores.as_mut_ptr();
    let mx = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Softmax numerators and their sum.
    let mxv = _mm256_set1_ps(mx);
    let mut sumv = _mm256_setzero_ps();
    let mut t = 0;
    while t + 8 <= upto {
        let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(sp.add(t)), mxv));
        _mm256_storeu_ps(sp.add(t), e);
        sumv = _mm256_add_ps(sumv, e);
        t += 8;
    }
    let mut sum = hsum256(sumv);
    while t < upto {
        let e = (*sp.add(t) - mx).exp();
        *sp.add(t) = e;
        sum += e;
        t += 1;
    }
    1.0 / sum
}

/// `o = inv · Σ_t p[t] · v[t]` for the numerators `p` and the rows of `v` (stride `o.len()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum_avx2(o: &mut [f32], v: &[f32], p: &[f32], inv: f32) {
    use std::arch::x86_64::*;
    let d = o.len();
    let d8 = d / 8 * 8;
    let upto = p.len();
    let stride = d;
    let (vp, sp) = (v.as_ptr(), p.as_ptr());
    // The weighted sum: 64 columns at a time (eight independent FMA chains),
    // then 8 at a time with four chains over the positions.
    let op = o.as_mut_ptr();
    let iv = _mm256_set1_ps(inv);
    let mut c = 0;
    while c + 64 <= d8 {
        let mut a = [_mm256_setzero_ps(); 8];
        for t in 0..upto {
            let p = _mm256_broadcast_ss(&*sp.add(t));
            let vr = vp.add(t * stride + c);
            for (u, acc) in a.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr.add(8 * u)), *acc);
            }
        }
        for (u, acc) in a.iter().enumerate() {
            _mm256_storeu_ps(op.add(c + 8 * u), _mm256_mul_ps(*acc, iv));
        }
        c += 64;
    }
    while c + 8 <= d8 {
        let mut a = [_mm256_setzero_ps(); 4];
        let mut t = 0;
        while t + 4 <= upto {
            for (u, acc) in a.iter_mut().enumerate() {
                let p = _mm256_broadcast_ss(&*sp.add(t + u));
                *acc = _mm256_fmadd_ps(p, _mm256_loadu_ps(vp.add((t + u) * stride + c)), *acc);
            }
            t += 4;
        }
        while t < upto {
            let p = _mm256_broadcast_ss(&*sp.add(t));
            a[0] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vp.add(t * stride + c)), a[0]);
            t += 1;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
        _mm256_storeu_ps(op.add(c), _mm256_mul_ps(sum, iv));
        c += 8;
    }
    for cc in d8..d {
        let mut a = 0f32;
        for t in 0..upto {
            a += *sp.add(t) * *vp.add(t * stride + cc);
        }
        *op.add(cc) = a * inv;
    }
}

#[cfg(test)]
#[path = "kernels_tests.rs"]
mod tests;
