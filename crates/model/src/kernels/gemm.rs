//! An AVX-512 matrix product for the training path's [`crate::ops::linear`] and fused
//! attention: `C[i, j] = Σ_p A(i, p) · B[p, j]`, with `A` read at any strides and `B` read at
//! any row stride, or as the transpose of a row-major weight ([`gemm_nt`]). Tiles of 6 rows ×
//! 64 columns (24 zmm accumulators, 4 B vectors, one broadcast per row), `p` in blocks of
//! 128; parallel over blocks of rows × 64-column panels (as few row blocks as keep both
//! threads busy). Each task copies its panel of B, one block of p at a time, into a
//! contiguous buffer (32 KiB, within L1) that its tiles stream linearly (rows of `wᵀ` are
//! transposed 16 × 16 in registers). A is read in place (one broadcast element per row and
//! step) unless B has 4 panels or more and A is strided along p (`gᵀ` of `dw = gᵀ·x`) or its
//! rows are far apart (the head's `dx`): then it is first copied, in passes of at most 4 MiB,
//! into micro-panels of 6 rows (`[p][6]`, contiguous), which the tiles read linearly.
//!
//! Every element of C is the chain `c = fma(A(i, p), B(p, j), c)` over p = 0, 1, … from +0,
//! whatever the tile, block or packing (C is stored and reloaded exactly between blocks of
//! p): the results are those of any other tiling, bit for bit.
//!
//! Only with AVX-512F ([`available`]); callers use candle's product otherwise.

use rayon::prelude::*;

/// Fewest rows of A per parallel task.
const MB: usize = 64;
/// Most rows of A per parallel task (a block of p of them stays in L2).
const MB_MAX: usize = 512;
/// Tasks per pool thread that the split into row blocks aims for.
const TASKS: usize = 4;
/// Most floats of packed A at a time (4 MiB): rows × steps of one packing pass.
const A_MAX: usize = 1 << 20;
/// Most steps of p per packing pass of A (a multiple of every `kc`).
const KB_MAX: usize = 512;

/// Whether this CPU runs the kernel (AVX-512F, detected at run time).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// When A is copied into micro-panels before the products.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PackA {
    /// Never (tiles broadcast straight from A).
    #[cfg_attr(not(test), allow(dead_code))]
    Never,
    /// When B has 4 panels or more and A is read with a stride along p (`csa != 1`).
    #[cfg_attr(not(test), allow(dead_code))]
    Strided,
    /// When B has 4 panels or more and A is strided along p or its rows are far apart.
    Wide,
    /// Always.
    #[cfg_attr(not(test), allow(dead_code))]
    Always,
}

/// Tile (`r` rows × `16·v` columns), block of p (`kc`) and A policy.
#[derive(Clone, Copy, Debug)]
struct Cfg {
    r: usize,
    v: usize,
    kc: usize,
    pack_a: PackA,
}

/// The kernel's configuration: the fastest measured on the step's shapes
/// (`examples/gemm_bench.rs`, `bench/results/train-profile.md`).
const CFG: Cfg = Cfg {
    r: 6,
    v: 4,
    kc: 128,
    pack_a: PackA::Wide,
};

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `C[m, n]` (row-major) with `C[i, j] = Σ_{p<k} a[i·rsa + p·csa] · b[p·ldb + j]`.
/// Panics unless [`available`] and the operands are large enough.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    ldb: usize,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    assert!(
        m == 0 || n == 0 || k == 0 || (k - 1) * ldb + n <= b.len(),
        "gemm: operand sizes"
    );
    run(a, rsa, csa, m, n, k, |p0, p1, j0, j1, nr, panel| {
        pack_panel(b, ldb, p0, p1, j0, j1, nr, panel)
    })
}

/// `C[m, n]` with `C[i, j] = Σ_{p<k} a[i·rsa + p·csa] · w[j·k + p]`: the product with the
/// transpose of a row-major `w` [n, k] (a weight), without transposing it first.
pub fn gemm_nt(
    a: &[f32],
    rsa: usize,
    csa: usize,
    w: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    assert!(w.len() >= n * k, "gemm_nt: operand sizes");
    run(a, rsa, csa, m, n, k, |p0, p1, j0, j1, nr, panel| {
        pack_panel_t(w, k, p0, p1, j0, j1, nr, panel)
    })
}

type Pack<'a> = &'a (dyn Fn(usize, usize, usize, usize, usize, &mut Vec<f32>) + Sync);

fn run(
    a: &[f32],
    rsa: usize,
    csa: usize,
    m: usize,
    n: usize,
    k: usize,
    pack: impl Fn(usize, usize, usize, usize, usize, &mut Vec<f32>) + Sync,
) -> Vec<f32> {
    run_cfg(CFG, a, rsa, csa, m, n, k, &pack)
}

#[allow(clippy::too_many_arguments)]
fn run_cfg(
    cf: Cfg,
    a: &[f32],
    rsa: usize,
    csa: usize,
    m: usize,
    n: usize,
    k: usize,
    pack: Pack<'_>,
) -> Vec<f32> {
    assert!(available(), "gemm: needs AVX-512F");
    let mut c = vec![0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    assert!(
        (m - 1) * rsa + (k - 1) * csa < a.len(),
        "gemm: operand sizes"
    );
    let f = match (cf.r, cf.v) {
        (6, 4) => run_t::<6, 4>,
        // Other tiles, for the tests (the arithmetic is the same for all).
        #[cfg(test)]
        (12, 2) => run_t::<12, 2>,
        #[cfg(test)]
        (14, 2) => run_t::<14, 2>,
        #[cfg(test)]
        (4, 4) => run_t::<4, 4>,
        #[cfg(test)]
        (8, 3) => run_t::<8, 3>,
        (r, v) => panic!("gemm: no {r} x {} tile", 16 * v),
    };
    f(cf, a, rsa, csa, m, n, k, pack, &mut c);
    c
}

/// The product in tiles of `R` rows × `16·V` columns: tasks of `mb` rows (a multiple of
/// `R`) × one panel of `16·V` columns of B, `p` in blocks of `kc`; for each block, the task
/// packs its panel of B (`pack` copies rows `p0..p1`, columns `j0..j1` into a contiguous,
/// zero-padded `[p1 − p0][16·V]` buffer) and runs its tiles over it. A is either read in
/// place (one broadcast element per row and step) or first copied, in passes of at most
/// [`A_MAX`] floats, into micro-panels of `R` rows (`[p][R]`, contiguous).
#[allow(clippy::too_many_arguments)]
fn run_t<const R: usize, const V: usize>(
    cf: Cfg,
    a: &[f32],
    rsa: usize,
    csa: usize,
    m: usize,
    n: usize,
    k: usize,
    pack: Pack<'_>,
    c: &mut [f32],
) {
    let nr = 16 * V;
    let kc = cf.kc.max(1);
    let np = n.div_ceil(nr);
    let splits = (TASKS * rayon::current_num_threads())
        .div_ceil(np)
        .max(m.div_ceil(MB_MAX))
        .clamp(1, m.div_ceil(MB));
    let mb = m.div_ceil(splits).next_multiple_of(R);
    let packed = match cf.pack_a {
        PackA::Never => false,
        PackA::Strided => csa != 1 && np >= 4,
        PackA::Wide => np >= 4 && (csa != 1 || rsa >= 1024),
        PackA::Always => true,
    };
    let cp = SendPtr(c.as_mut_ptr());
    let geo = Geo { n, nr, mb, np, kc };
    if !packed {
        // A read in place: tile rows at row i, step p0.
        let a_at = |i: usize, p0: usize| a[i * rsa + p0 * csa..].as_ptr();
        tasks::<R, V, false>(&geo, (0, m), (0, k), &a_at, (rsa, csa), pack, &cp);
        return;
    }
    // Packed A: passes of `g` rows (a multiple of mb) × `kb` steps (a multiple of kc).
    let kb = if k <= KB_MAX {
        k
    } else {
        (KB_MAX / kc).max(1) * kc
    };
    let g = ((A_MAX / kb) / mb).max(1) * mb;
    let mut ap = vec![0f32; g.min(m).next_multiple_of(R) * kb];
    let mut g0 = 0;
    while g0 < m {
        let g1 = (g0 + g).min(m);
        let mut q0 = 0;
        while q0 < k {
            let q1 = (q0 + kb).min(k);
            let kq = q1 - q0;
            // Micro-panel t: rows g0 + t·R .. +R, ap[t·R·kq + p·R + r] = A(row, q0 + p).
            ap[..(g1 - g0).next_multiple_of(R) * kq]
                .par_chunks_mut(R * kq)
                .enumerate()
                .for_each(|(t, dst)| {
                    pack_a(
                        a,
                        rsa,
                        csa,
                        g0 + t * R,
                        (g0 + t * R + R).min(g1),
                        q0,
                        q1,
                        R,
                        dst,
                    )
                });
            // Micro-panel t holds R·kq floats; the tile rows at row i, step p0 start at
            // (p0 − q0)·R in it.
            let ap_ = &ap;
            let a_at = |i: usize, p0: usize| ap_[(i - g0) / R * R * kq + (p0 - q0) * R..].as_ptr();
            tasks::<R, V, true>(&geo, (g0, g1), (q0, q1), &a_at, (0, 0), pack, &cp);
            q0 = q1;
        }
        g0 = g1;
    }
}

/// The shape of a product's tasks: C's width `n`, panels of `nr` columns (`np` of them),
/// tasks of `mb` rows, `p` in blocks of `kc`.
struct Geo {
    n: usize,
    nr: usize,
    mb: usize,
    np: usize,
    kc: usize,
}

/// Runs, in parallel, the tiles of rows `g0..g1` of C (tasks of `mb` rows × one panel)
/// over steps `q0..q1` in blocks of `kc`: each task packs its panel of B per block and runs
/// its tiles, reading A at `a_at(row, p0)` with strides `(rsa, csa)` (`(0, 0)` for packed
/// micro-panels, `PACKED`).
fn tasks<const R: usize, const V: usize, const PACKED: bool>(
    geo: &Geo,
    (g0, g1): (usize, usize),
    (q0, q1): (usize, usize),
    a_at: &(dyn Fn(usize, usize) -> *const f32 + Sync),
    (rsa, csa): (usize, usize),
    pack: Pack<'_>,
    cp: &SendPtr,
) {
    let Geo { n, nr, mb, np, kc } = *geo;
    let tasks: Vec<(usize, usize)> = (0..(g1 - g0).div_ceil(mb))
        .flat_map(|bi| (0..np).map(move |bj| (g0 + bi * mb, bj * nr)))
        .collect();
    tasks
        .par_iter()
        .for_each_init(Vec::new, |panel, &(i0, j0)| {
            let (i1, j1) = ((i0 + mb).min(g1), (j0 + nr).min(n));
            let mut p0 = q0;
            while p0 < q1 {
                let p1 = (p0 + kc).min(q1);
                pack(p0, p1, j0, j1, nr, panel);
                assert_eq!(panel.len(), (p1 - p0) * nr, "gemm: panel size");
                // SAFETY: AVX-512F checked; each task writes only C[i0..i1, j0..j1]
                // (disjoint); A rows are clamped to i1 − 1 and every read is in bounds
                // (`a_at` slices A or its micro-panel there; the panel holds
                // (p1 − p0) × nr).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let mut i = i0;
                    while i < i1 {
                        let mr = (i1 - i).min(R);
                        block::<R, V, PACKED>(
                            a_at(i, p0),
                            rsa,
                            csa,
                            panel.as_ptr(),
                            p1 - p0,
                            cp.0.add(i * n + j0),
                            n,
                            mr,
                            j1 - j0,
                            p0 == 0,
                        );
                        i += mr;
                    }
                }
                p0 = p1;
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (i1, j1, cp, a_at);
        });
}

/// Copies `A(i0..i1, q0..q1)` into the micro-panel `dst` (`[q1 − q0][r]`, rows past `i1`
/// zero).
#[allow(clippy::too_many_arguments)]
fn pack_a(
    a: &[f32],
    rsa: usize,
    csa: usize,
    i0: usize,
    i1: usize,
    q0: usize,
    q1: usize,
    r: usize,
    dst: &mut [f32],
) {
    let mr = i1 - i0;
    if rsa == 1 {
        for (p, d) in (q0..q1).zip(dst.chunks_exact_mut(r)) {
            let s = i0 + p * csa;
            d[..mr].copy_from_slice(&a[s..s + mr]);
            d[mr..].fill(0.0);
        }
    } else {
        if mr < r {
            dst.fill(0.0);
        }
        for ri in 0..mr {
            let row = (i0 + ri) * rsa;
            for (p, d) in (q0..q1).zip(dst[ri..].iter_mut().step_by(r)) {
                *d = a[row + p * csa];
            }
        }
    }
}

/// Copies the panel `B[p0..p1, j0..j1]` into `panel` as contiguous rows of `nr` floats
/// (zero-padded), so that the tile streams it linearly: B rows of a large `ldb` would
/// otherwise fall into a few cache sets.
#[allow(clippy::too_many_arguments)]
fn pack_panel(
    b: &[f32],
    ldb: usize,
    p0: usize,
    p1: usize,
    j0: usize,
    j1: usize,
    nr: usize,
    panel: &mut Vec<f32>,
) {
    let w = j1 - j0;
    panel.clear();
    panel.resize((p1 - p0) * nr, 0.0);
    for (p, row) in (p0..p1).zip(panel.chunks_exact_mut(nr)) {
        row[..w].copy_from_slice(&b[p * ldb + j0..p * ldb + j1]);
    }
}

/// [`pack_panel`] of `B = wᵀ` for a row-major `w` [n, k]: `panel[p][j] = w[(j0 + j)·k + p]`,
/// in 16 × 16 blocks (16 rows of `w` read along p, transposed in registers).
#[allow(clippy::too_many_arguments)]
fn pack_panel_t(
    w: &[f32],
    k: usize,
    p0: usize,
    p1: usize,
    j0: usize,
    j1: usize,
    nr: usize,
    panel: &mut Vec<f32>,
) {
    assert!(
        nr.is_multiple_of(16)
            && j0 <= j1
            && j1 - j0 <= nr
            && j1 * k <= w.len()
            && p0 <= p1
            && p1 <= k,
        "gemm_nt: panel bounds"
    );
    panel.clear();
    panel.resize((p1 - p0) * nr, 0.0);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is checked by `run_cfg` before any packing; the bounds by the
    // assertion above.
    unsafe {
        pack_t16(w, k, p0, p1, j0, j1, nr, panel)
    }
    #[cfg(not(target_arch = "x86_64"))]
    for j in j0..j1 {
        for p in p0..p1 {
            panel[(p - p0) * nr + (j - j0)] = w[j * k + p];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn pack_t16(
    w: &[f32],
    k: usize,
    p0: usize,
    p1: usize,
    j0: usize,
    j1: usize,
    nr: usize,
    panel: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (kc, wd) = (p1 - p0, j1 - j0);
    let (src, dst) = (w.as_ptr(), panel.as_mut_ptr());
    for jb in (0..wd).step_by(16) {
        let nj = (wd - jb).min(16);
        for qb in (0..kc).step_by(16) {
            let np = (kc - qb).min(16);
            let pm: u16 = if np == 16 { 0xFFFF } else { (1u16 << np) - 1 };
            // r[t] = w[j0 + jb + t][p0 + qb ..][..16] (zero past the ends).
            let mut r = [_mm512_setzero_ps(); 16];
            for t in 0..nj {
                r[t] = _mm512_maskz_loadu_ps(pm, src.add((j0 + jb + t) * k + p0 + qb));
            }
            // Pairs of rows interleaved, then quads: u[4i + c], 128-bit lane l, holds
            // column 4l + c of rows 4i..4i+4.
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            let mut u = [_mm512_setzero_ps(); 16];
            for i in 0..4 {
                let (a0, a1) = (_mm512_castps_pd(t[4 * i]), _mm512_castps_pd(t[4 * i + 1]));
                let (a2, a3) = (
                    _mm512_castps_pd(t[4 * i + 2]),
                    _mm512_castps_pd(t[4 * i + 3]),
                );
                u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
                u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
                u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
                u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
            }
            // Column 4l + c = lanes l of u[c], u[4 + c], u[8 + c], u[12 + c].
            for c in 0..4 {
                let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
                let v1 = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
                let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
                let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
                let cols = [
                    (c, _mm512_shuffle_f32x4::<0x88>(v0, v2)),
                    (4 + c, _mm512_shuffle_f32x4::<0x88>(v1, v3)),
                    (8 + c, _mm512_shuffle_f32x4::<0xDD>(v0, v2)),
                    (12 + c, _mm512_shuffle_f32x4::<0xDD>(v1, v3)),
                ];
                for (col, x) in cols {
                    if col < np {
                        _mm512_storeu_ps(dst.add((qb + col) * nr + jb), x);
                    }
                }
            }
        }
    }
}

/// One tile: C rows `0..mr` (of `R`), columns `0..w` (of `16·V`), over `kc` steps of p:
/// `C[r][j] (+)= Σ_p A(r, p) · panel[p·16V + j]`, where A(r, p) is `a[r·rsa + p·csa]` (A in
/// place; rows past `mr` repeat row `mr − 1`) or, `PACKED`, `a[p·R + r]` (a micro-panel,
/// zero rows past `mr`). Rows past `mr` are not stored. Starts from zero (`first`) or from C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn block<const R: usize, const V: usize, const PACKED: bool>(
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    w: usize,
    first: bool,
) {
    use std::arch::x86_64::*;
    let masks: [u16; V] = std::array::from_fn(|v| {
        let bits = w.saturating_sub(16 * v).min(16);
        if bits == 16 {
            0xFFFF
        } else {
            (1u16 << bits) - 1
        }
    });
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    if !first {
        for i in 0..R.min(mr) {
            for v in 0..V {
                acc[i][v] = _mm512_maskz_loadu_ps(masks[v], c.add(i * ldc + 16 * v));
            }
        }
    }
    if PACKED {
        for p in 0..kc {
            let bp = b.add(p * 16 * V);
            let mut bv = [_mm512_setzero_ps(); V];
            for v in 0..V {
                bv[v] = _mm512_loadu_ps(bp.add(16 * v));
            }
            let ap = a.add(p * R);
            for i in 0..R {
                let av = _mm512_set1_ps(*ap.add(i));
                for v in 0..V {
                    acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                }
            }
        }
    } else {
        let rows: [*const f32; R] = std::array::from_fn(|r| a.add(r.min(mr - 1) * rsa));
        for p in 0..kc {
            let bp = b.add(p * 16 * V);
            let mut bv = [_mm512_setzero_ps(); V];
            for v in 0..V {
                bv[v] = _mm512_loadu_ps(bp.add(16 * v));
            }
            for i in 0..R {
                let av = _mm512_set1_ps(*rows[i].add(p * csa));
                for v in 0..V {
                    acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
                }
            }
        }
    }
    for i in 0..R.min(mr) {
        for v in 0..V {
            _mm512_mask_storeu_ps(c.add(i * ldc + 16 * v), masks[v], acc[i][v]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product of many rows (split into several row blocks per panel) equals, bit for
    /// bit, the products of its tile-high row slices computed on their own (one task each): the
    /// split into tasks changes which task packs a panel, never the arithmetic.
    #[test]
    fn row_split_does_not_change_a_bit() {
        assert!(
            available(),
            "the gemm needs AVX-512F, which this machine must have"
        );
        let mut s = 7u32;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        // m rows over 2-3 row blocks (MB_MAX 512), ragged panels and k over three blocks of p.
        let (m, n, k) = (1100, 101, 300);
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
        let full_nt = gemm_nt(&a, k, 1, &w, m, n, k);
        // B as a row-major [k, n] for `gemm`, read with A transposed (csa = m).
        let b: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let full = gemm(&at, 1, m, &b, n, m, n, k);
        assert_eq!(full, full_nt, "gemm and gemm_nt of the same product");
        let mr = CFG.r;
        for i0 in (0..m).step_by(mr) {
            let r = mr.min(m - i0);
            let part = gemm_nt(&a[i0 * k..], k, 1, &w, r, n, k);
            assert!(
                part == full[i0 * n..(i0 + r) * n],
                "rows {i0}..{} differ from the full product's",
                i0 + r
            );
        }
    }

    fn lcg(seed: u32) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        }
    }

    /// Every tile shape, `kc`, and A policy (in place or packed, one or several packing
    /// passes), on ragged shapes, A row-major, transposed (`csa ≠ 1`) and with both strides
    /// (`rsa`, `csa` > 1), B row-major at a wider `ldb` or the transpose of a weight: each
    /// element of C is, bit for bit, the chain `c = fma(A(i, p), B(p, j), c)` over
    /// p = 0, 1, … from +0 (the arithmetic of the 8 × 48 kernel before micro-panels), and
    /// that chain is within k·ε·Σ|A·B| of the f64 product.
    #[test]
    fn every_tile_equals_the_fma_chain_bit_for_bit() {
        assert!(
            available(),
            "the gemm needs AVX-512F, which this machine must have"
        );
        let mut next = lcg(11);
        // (m, n, k, layout): 0 A row-major, 1 A transposed, 2 A with rsa = 3k-ish and csa = 2.
        let cases = [
            (1, 1, 1, 0),
            (13, 37, 29, 0),
            (70, 130, 600, 0),
            (70, 130, 600, 1),
            (29, 64, 513, 2),
            (131, 17, 300, 1),
            (9, 200, 1100, 1),
            (2200, 20, 40, 1),
        ];
        let variants = [(8, 3), (6, 4), (12, 2), (14, 2), (4, 4)];
        for &(m, n, k, layout) in &cases {
            let (rsa, csa) = match layout {
                0 => (k + 3, 1),
                1 => (1, m + 5),
                _ => (2 * k + 7, 2),
            };
            let a: Vec<f32> = (0..(m - 1) * rsa + (k - 1) * csa + 1)
                .map(|_| next())
                .collect();
            let ldb = n + 9;
            let b: Vec<f32> = (0..(k - 1) * ldb + n).map(|_| next()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            // The FMA chains and the f64 products, for B and for wᵀ.
            let (mut want, mut want_t) = (vec![0f32; m * n], vec![0f32; m * n]);
            for i in 0..m {
                for j in 0..n {
                    let (mut c, mut ct) = (0f32, 0f32);
                    let (mut c64, mut ct64, mut mag, mut magt) = (0f64, 0f64, 0f64, 0f64);
                    for p in 0..k {
                        let x = a[i * rsa + p * csa];
                        let (y, yt) = (b[p * ldb + j], w[j * k + p]);
                        c = x.mul_add(y, c);
                        ct = x.mul_add(yt, ct);
                        c64 += x as f64 * y as f64;
                        ct64 += x as f64 * yt as f64;
                        mag += (x as f64 * y as f64).abs();
                        magt += (x as f64 * yt as f64).abs();
                    }
                    let tol = |mag: f64| k as f64 * f32::EPSILON as f64 * mag + 1e-30;
                    assert!((c as f64 - c64).abs() <= tol(mag), "fma chain against f64");
                    assert!(
                        (ct as f64 - ct64).abs() <= tol(magt),
                        "fma chain against f64"
                    );
                    want[i * n + j] = c;
                    want_t[i * n + j] = ct;
                }
            }
            for &(r, v) in &variants {
                for kc in [256, 64, 100] {
                    for pack_a in [PackA::Never, PackA::Strided, PackA::Wide, PackA::Always] {
                        let cf = Cfg { r, v, kc, pack_a };
                        let got = run_cfg(cf, &a, rsa, csa, m, n, k, &|p0, p1, j0, j1, nr, pl| {
                            pack_panel(&b, ldb, p0, p1, j0, j1, nr, pl)
                        });
                        let got_t =
                            run_cfg(cf, &a, rsa, csa, m, n, k, &|p0, p1, j0, j1, nr, pl| {
                                pack_panel_t(&w, k, p0, p1, j0, j1, nr, pl)
                            });
                        for (what, g, wn) in [("gemm", &got, &want), ("gemm_nt", &got_t, &want_t)] {
                            if let Some(e) = (0..m * n).find(|&e| g[e].to_bits() != wn[e].to_bits())
                            {
                                panic!(
                                    "{what} {m}x{n}x{k} layout {layout} {cf:?}: C[{}, {}] = {} but the FMA chain gives {}",
                                    e / n,
                                    e % n,
                                    g[e],
                                    wn[e]
                                );
                            }
                        }
                    }
                }
            }
        }
        // The public entry points use the default configuration.
        let (m, n, k) = (37, 50, 70);
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
        let got = gemm_nt(&a, k, 1, &w, m, n, k);
        for i in 0..m {
            for j in 0..n {
                let c = (0..k).fold(0f32, |c, p| a[i * k + p].mul_add(w[j * k + p], c));
                assert_eq!(got[i * n + j].to_bits(), c.to_bits(), "gemm_nt C[{i}, {j}]");
            }
        }
    }
}
