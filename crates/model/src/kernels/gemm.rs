//! An AVX-512 matrix product for the training path's [`crate::ops::linear`]:
//! `C[i, j] = Σ_p A(i, p) · B[p, j]`, with `A` read at any strides (one broadcast element at a
//! time, so `x`, `g` and `gᵀ` need no copy) and `B` read at any row stride, or as the
//! transpose of a row-major weight ([`gemm_nt`]). Tiles of 8 rows × 48 columns (24 zmm
//! accumulators, 3 B vectors, one broadcast), `p` in blocks of [`KC`]; parallel over blocks
//! of rows × 48-column panels (as few row blocks as keep both threads busy). Each task copies its panel of B, one `KC` block at a
//! time, into a contiguous buffer (48 KiB, L1-sized) that its tiles stream linearly: rows of B
//! at a large stride would otherwise fall into a few cache sets.
//!
//! Only with AVX-512F ([`available`]); callers use candle's product otherwise.

use rayon::prelude::*;

/// Rows of A per tile.
const MR: usize = 8;
/// Columns per panel (3 vectors of 16).
const NR: usize = 48;
/// Fewest rows of A per parallel task.
const MB: usize = 64;
/// Most rows of A per parallel task (a `KC` block of them stays in L2).
const MB_MAX: usize = 512;
/// Tasks per pool thread that the split into row blocks aims for.
const TASKS: usize = 4;
/// Reduction block.
const KC: usize = 256;

/// Whether this CPU runs the kernel (AVX-512F, detected at run time).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `C[m, n]` (row-major) with `C[i, j] = Σ_{p<k} a[i·rsa + p·csa] · b[p·ldb + j]`.
/// Panics unless [`available`] and the operands are large enough.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
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
    run(a, rsa, csa, m, n, k, |p0, p1, j0, j1, panel| {
        pack_panel(b, ldb, p0, p1, j0, j1, panel)
    })
}

/// `C[m, n]` with `C[i, j] = Σ_{p<k} a[i·rsa + p·csa] · w[j·k + p]`: the product with the
/// transpose of a row-major `w` [n, k] (a weight), without transposing it first.
pub(crate) fn gemm_nt(
    a: &[f32],
    rsa: usize,
    csa: usize,
    w: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    assert!(w.len() >= n * k, "gemm_nt: operand sizes");
    run(a, rsa, csa, m, n, k, |p0, p1, j0, j1, panel| {
        pack_panel_t(w, k, p0, p1, j0, j1, panel)
    })
}

/// The product over tasks of `mb` rows (a multiple of [`MR`], so the tiles and their
/// arithmetic are those of any other split) × one [`NR`]-column panel of B; for each block of
/// [`KC`] rows of B, `pack` copies rows `p0..p1`, columns `j0..j1` into a contiguous
/// `[p1 − p0][NR]` buffer, which the task's tiles then stream.
fn run(
    a: &[f32],
    rsa: usize,
    csa: usize,
    m: usize,
    n: usize,
    k: usize,
    pack: impl Fn(usize, usize, usize, usize, &mut Vec<f32>) + Sync,
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
    // Tasks of `mb` rows × one panel: as many rows as the pool's balance allows (at most
    // MB_MAX), so that each panel of B is packed once per `mb` rows, not once per MB.
    let np = n.div_ceil(NR);
    let splits = (TASKS * rayon::current_num_threads())
        .div_ceil(np)
        .max(m.div_ceil(MB_MAX))
        .clamp(1, m.div_ceil(MB));
    let mb = m.div_ceil(splits).next_multiple_of(MR);
    let tasks: Vec<(usize, usize)> = (0..m.div_ceil(mb))
        .flat_map(|bi| (0..np).map(move |bj| (bi * mb, bj * NR)))
        .collect();
    let cp = SendPtr(c.as_mut_ptr());
    let cp = &cp;
    tasks
        .par_iter()
        .for_each_init(Vec::new, |panel, &(i0, j0)| {
            let i1 = (i0 + mb).min(m);
            let j1 = (j0 + NR).min(n);
            let mut p0 = 0;
            while p0 < k {
                let p1 = (p0 + KC).min(k);
                pack(p0, p1, j0, j1, panel);
                assert_eq!(panel.len(), (p1 - p0) * NR, "gemm: panel size");
                // SAFETY: AVX-512F checked; each task writes only C[i0..i1, j0..j1]
                // (disjoint), and every read is in bounds by the assertions above (the
                // panel holds (p1 − p0) × NR).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    block(a, rsa, csa, panel, n, p0, p1, i0, i1, j0, j1, cp.0)
                };
                p0 = p1;
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (i1, j1, cp);
        });
    c
}

/// Copies the panel `B[p0..p1, j0..j1]` into `panel` as contiguous rows of [`NR`] floats
/// (zero-padded), so that the tile streams it linearly: B rows of a large `ldb` would
/// otherwise fall into a few cache sets.
fn pack_panel(
    b: &[f32],
    ldb: usize,
    p0: usize,
    p1: usize,
    j0: usize,
    j1: usize,
    panel: &mut Vec<f32>,
) {
    let w = j1 - j0;
    panel.clear();
    panel.resize((p1 - p0) * NR, 0.0);
    for (p, row) in (p0..p1).zip(panel.chunks_exact_mut(NR)) {
        row[..w].copy_from_slice(&b[p * ldb + j0..p * ldb + j1]);
    }
}

/// [`pack_panel`] of `B = wᵀ` for a row-major `w` [n, k]: `panel[p][j] = w[(j0 + j)·k + p]`,
/// in blocks of 16 of p so that each `w` row is read in cache lines.
fn pack_panel_t(
    w: &[f32],
    k: usize,
    p0: usize,
    p1: usize,
    j0: usize,
    j1: usize,
    panel: &mut Vec<f32>,
) {
    const PB: usize = 16;
    panel.clear();
    panel.resize((p1 - p0) * NR, 0.0);
    let mut q0 = p0;
    while q0 < p1 {
        let q1 = (q0 + PB).min(p1);
        for j in j0..j1 {
            let src = &w[j * k + q0..j * k + q1];
            for (dp, &v) in src.iter().enumerate() {
                panel[(q0 - p0 + dp) * NR + (j - j0)] = v;
            }
        }
        q0 = q1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    a: &[f32],
    rsa: usize,
    csa: usize,
    panel: &[f32],
    ldc: usize,
    p0: usize,
    p1: usize,
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
    c: *mut f32,
) {
    let w = j1 - j0;
    let nv = w.div_ceil(16);
    let rem = w - (nv - 1) * 16;
    let mask: u16 = if rem == 16 { 0xFFFF } else { (1u16 << rem) - 1 };
    let (kc, ldb) = (p1 - p0, NR);
    let first = p0 == 0;
    let mut i = i0;
    while i < i1 {
        let mr = (i1 - i).min(MR);
        let ap = a.as_ptr().add(i * rsa + p0 * csa);
        let bp = panel.as_ptr();
        let cp = c.add(i * ldc + j0);
        macro_rules! go {
            ($r:literal, $v:literal) => {
                tile::<$r, $v>(ap, rsa, csa, bp, ldb, kc, cp, ldc, mask, first)
            };
        }
        macro_rules! rows {
            ($v:literal) => {
                match mr {
                    8 => go!(8, $v),
                    7 => go!(7, $v),
                    6 => go!(6, $v),
                    5 => go!(5, $v),
                    4 => go!(4, $v),
                    3 => go!(3, $v),
                    2 => go!(2, $v),
                    _ => go!(1, $v),
                }
            };
        }
        match nv {
            3 => rows!(3),
            2 => rows!(2),
            _ => rows!(1),
        }
        i += mr;
    }
}

/// One `R`×`16·V` tile of C over `kc` steps of p; the last vector is masked with `mask`.
/// Starts from zero (`first`) or from C.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<const R: usize, const V: usize>(
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    ldb: usize,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    mask: u16,
    first: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    if !first {
        for i in 0..R {
            for v in 0..V {
                let m = if v == V - 1 { mask } else { 0xFFFF };
                acc[i][v] = _mm512_maskz_loadu_ps(m, c.add(i * ldc + 16 * v));
            }
        }
    }
    for p in 0..kc {
        let bp = b.add(p * ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            bv[v] = if v == V - 1 {
                _mm512_maskz_loadu_ps(mask, bp.add(16 * v))
            } else {
                _mm512_loadu_ps(bp.add(16 * v))
            };
        }
        let ap = a.add(p * csa);
        for i in 0..R {
            let av = _mm512_set1_ps(*ap.add(i * rsa));
            for v in 0..V {
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
            }
        }
    }
    for i in 0..R {
        for v in 0..V {
            let m = if v == V - 1 { mask } else { 0xFFFF };
            _mm512_mask_storeu_ps(c.add(i * ldc + 16 * v), m, acc[i][v]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product of many rows (split into several row blocks per panel) equals, bit for
    /// bit, the products of its 8-row slices computed on their own (one task each): the
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
        // m rows over 2-3 row blocks (MB_MAX 512), ragged panels and k over two KC blocks.
        let (m, n, k) = (1100, 101, 300);
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
        let full_nt = gemm_nt(&a, k, 1, &w, m, n, k);
        // B as a row-major [k, n] for `gemm`, read with A transposed (csa = m).
        let b: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let full = gemm(&at, 1, m, &b, n, m, n, k);
        assert_eq!(full, full_nt, "gemm and gemm_nt of the same product");
        for i0 in (0..m).step_by(MR) {
            let r = MR.min(m - i0);
            let part = gemm_nt(&a[i0 * k..], k, 1, &w, r, n, k);
            assert!(
                part == full[i0 * n..(i0 + r) * n],
                "rows {i0}..{} differ from the full product's",
                i0 + r
            );
        }
    }
}
