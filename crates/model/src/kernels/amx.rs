//! Matrix products with bf16 operands and f32 sums, for the training path's opt-in
//! [`crate::ops::MatmulPrecision::Bf16`] (what `torch.set_float32_matmul_precision("medium")`
//! does on CPU): `C[i, j] = Σ_p bf16(A(i, p)) · bf16(B(p, j))`, each operand rounded to the
//! nearest bf16 (ties to even; subnormals flushed to zero, as the hardware reads them), every
//! product exact in f32, the sums in f32.
//!
//! Two ways to run it ([`Bf16Path`]):
//! - [`Bf16Path::Amx`]: AMX tiles (`TDPBF16PS`: a 16×16 f32 tile of C += a 16×32 bf16 tile of
//!   A · a 32×16 bf16 tile of B). Both operands are rounded once into tile order (A: 16 rows
//!   × 32 columns per 1 KiB tile; B: the VNNI order, pairs of `p` side by side), then tasks
//!   of up to [`RB`]×[`CB`] pairs of tiles keep a 2×2 block of C tiles in the tile registers
//!   over blocks of up to [`KB`] tiles of `p`. x86-64 Linux with AMX-TILE and AMX-BF16 and
//!   the kernel's permission to use tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM)`).
//! - [`Bf16Path::Rounded`] (every CPU): the operands rounded to bf16 values (stored as f32),
//!   then the f32 product of `kernels/gemm.rs` (AVX-512F) or `kernels.rs`. The same products,
//!   summed in another order.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::gemm;

/// Row pairs of tiles (32 rows) per parallel task.
const RB: usize = 4;
/// Column pairs of tiles (32 columns) per parallel task.
const CB: usize = 4;
/// Most tiles of `p` (32 each) summed in the tile registers before C goes back to memory.
const KB: usize = 16;
/// bf16 values per tile (16 rows × 64 bytes).
const TILE: usize = 512;

/// A matrix operand read at any strides: element `(r, c)` is `d[r·rs + c·cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    pub d: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl Mat<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.d[r * self.rs + c * self.cs]
    }

    /// Panics unless every element of an `rows × cols` matrix is in bounds.
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * self.rs + (cols - 1) * self.cs < self.d.len(),
                "bf16 gemm: {what} operand sizes"
            );
        }
    }
}

/// How a bf16 product runs (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bf16Path {
    /// AMX tiles.
    Amx,
    /// The f32 kernel on operands rounded to bf16.
    Rounded,
}

impl Bf16Path {
    /// Whether this CPU and OS run the path.
    pub(crate) fn supported(self) -> bool {
        match self {
            Bf16Path::Amx => amx_usable(),
            Bf16Path::Rounded => true,
        }
    }

    /// The fastest path this machine runs.
    pub(crate) fn best() -> Bf16Path {
        if amx_usable() {
            Bf16Path::Amx
        } else {
            Bf16Path::Rounded
        }
    }
}

/// The bits of the bf16 nearest to `x` (ties to even), a subnormal flushed to a signed zero,
/// a NaN kept a (quiet) NaN.
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let abs = b & 0x7FFF_FFFF;
    if abs > 0x7F80_0000 {
        ((b >> 16) | 0x40) as u16
    } else if abs < 0x0080_0000 {
        ((b >> 16) & 0x8000) as u16
    } else {
        ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// `x` rounded to bf16 as [`bf16_bits`] does, as an f32.
#[inline(always)]
pub(crate) fn round_bf16(x: f32) -> f32 {
    f32::from_bits(u32::from(bf16_bits(x)) << 16)
}

/// Whether AMX-TILE and AMX-BF16 are there and the OS lets this process use tile data
/// (asked once per process).
pub(crate) fn amx_usable() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(amx_init)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_init() -> bool {
    // CPUID leaf 7 sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
    let leaf0 = std::arch::x86_64::__cpuid(0);
    if leaf0.eax < 7 {
        return false;
    }
    let l7 = std::arch::x86_64::__cpuid_count(7, 0);
    if (l7.edx >> 22) & 1 == 0 || (l7.edx >> 24) & 1 == 0 {
        return false;
    }
    // Tile packing uses AVX-512F (every CPU with AMX has it).
    if !std::is_x86_feature_detected!("avx512f") {
        return false;
    }
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes only reads its integer arguments, or writes the
    // permitted feature mask to `perm`, a live u64.
    unsafe {
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) != 0
        {
            return false;
        }
        let mut perm: u64 = 0;
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut perm as *mut u64,
        ) != 0
        {
            return false;
        }
        perm & (1 << XFEATURE_XTILEDATA) != 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_init() -> bool {
    false
}

/// `C[m, n]` (row-major) `= bf16(A[m, k]) · bf16(B[k, n])` on the fastest path
/// ([`Bf16Path::best`]).
pub(crate) fn gemm_bf16(a: Mat<'_>, b: Mat<'_>, m: usize, n: usize, k: usize) -> Vec<f32> {
    gemm_bf16_with(Bf16Path::best(), a, b, m, n, k)
}

/// [`gemm_bf16`] on `path` (which this machine must run).
pub(crate) fn gemm_bf16_with(
    path: Bf16Path,
    a: Mat<'_>,
    b: Mat<'_>,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    assert!(path.supported(), "bf16 gemm: {path:?} not supported here");
    a.check(m, k, "A");
    b.check(k, n, "B");
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    match path {
        Bf16Path::Amx => amx_gemm(a, b, m, n, k),
        Bf16Path::Rounded => rounded_gemm(a, b, m, n, k),
    }
}

/// The `rows × cols` operand rounded to bf16 values, row-major (in parallel over rows).
fn rounded(x: Mat<'_>, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    out.par_chunks_mut(cols).enumerate().for_each(|(r, o)| {
        for (c, v) in o.iter_mut().enumerate() {
            *v = round_bf16(x.at(r, c));
        }
    });
    out
}

fn rounded_gemm(a: Mat<'_>, b: Mat<'_>, m: usize, n: usize, k: usize) -> Vec<f32> {
    let ar = rounded(a, m, k);
    // Bᵀ [n, k] row-major: the weight form both kernels take.
    let bt = rounded(
        Mat {
            d: b.d,
            rs: b.cs,
            cs: b.rs,
        },
        n,
        k,
    );
    if gemm::available() {
        gemm::gemm_nt(&ar, k, 1, &bt, m, n, k)
    } else {
        super::matmul_nt(&ar, m, k, &bt, n)
    }
}

struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// Fills `buf` (resized to `tiles · kt` tiles) with tiles `(t, kc)` at `(t·kt + kc)·TILE`,
/// each written by `fill(t, kc, tile)`, in parallel: over strips of `t` (each tile of a
/// strip after the other) or, with `by_chunk`, over `kc` (the tiles of all `t` for one
/// `kc`): the order in which the source's rows are read in sequence.
fn pack(
    buf: &mut Vec<u16>,
    tiles: usize,
    kt: usize,
    by_chunk: bool,
    fill: impl Fn(usize, usize, &mut [u16]) + Sync,
) {
    buf.clear();
    buf.resize(tiles * kt * TILE, 0);
    if !by_chunk {
        buf.par_chunks_mut(kt * TILE)
            .enumerate()
            .for_each(|(t, strip)| {
                for (kc, tile) in strip.chunks_exact_mut(TILE).enumerate() {
                    fill(t, kc, tile);
                }
            });
        return;
    }
    let p = SendPtr(buf.as_mut_ptr());
    let p = &p;
    (0..kt).into_par_iter().for_each(|kc| {
        for t in 0..tiles {
            // SAFETY: tile (t, kc) lies inside `buf` (tiles · kt tiles) and only this task
            // writes it (one task per kc).
            let tile =
                unsafe { std::slice::from_raw_parts_mut(p.0.add((t * kt + kc) * TILE), TILE) };
            fill(t, kc, tile);
        }
    });
}

/// A in tile order into `buf`: tile `(ti, kc)` (rows `16·ti..`, columns `32·kc..`) at
/// `(ti·kt + kc)·TILE`, 16 rows of 32 values; zero outside the matrix. `mt` row tiles.
fn pack_a(buf: &mut Vec<u16>, a: Mat<'_>, m: usize, k: usize, mt: usize, kt: usize) {
    // Rows of A contiguous: a strip of row tiles reads 16 rows in sequence; else (Aᵀ of a
    // row-major matrix) the tiles of one chunk of columns do.
    pack(buf, mt, kt, a.cs != 1, |ti, kc, tile| {
        let (r0, c0) = (ti * 16, kc * 32);
        #[cfg(target_arch = "x86_64")]
        if r0 + 16 <= m && c0 + 32 <= k && gather_ok(a.cs, 32) {
            // SAFETY: AVX-512F (checked with AMX); the whole tile is inside A (the caller
            // checked A's bounds) and `tile` holds TILE values.
            unsafe { simd::a_tile(a, r0, c0, tile) };
            return;
        }
        tile.fill(0);
        let rows = m.saturating_sub(r0).min(16);
        let cols = (k - c0).min(32);
        for r in 0..rows {
            for c in 0..cols {
                tile[r * 32 + c] = bf16_bits(a.at(r0 + r, c0 + c));
            }
        }
    });
}

/// B in VNNI tile order into `buf`: tile `(tj, kc)` (columns `16·tj..`, rows `32·kc..`) at
/// `(tj·kt + kc)·TILE`, 16 rows `q` of 16 pairs `(B(32·kc + 2q, j), B(32·kc + 2q + 1, j))`;
/// zero outside the matrix. `nt` column tiles.
fn pack_b(buf: &mut Vec<u16>, b: Mat<'_>, k: usize, n: usize, nt: usize, kt: usize) {
    // Rows of B contiguous: the tiles of one chunk of rows read them in sequence; else (Bᵀ
    // row-major, a weight) a strip of column tiles does.
    pack(buf, nt, kt, b.cs == 1, |tj, kc, tile| {
        let (p0, j0) = (kc * 32, tj * 16);
        #[cfg(target_arch = "x86_64")]
        if p0 + 32 <= k && j0 + 16 <= n && gather_ok(b.cs, 16) {
            // SAFETY: as in `pack_a`.
            unsafe { simd::b_tile(b, p0, j0, tile) };
            return;
        }
        tile.fill(0);
        let rows = (k - p0).min(32);
        let cols = n.saturating_sub(j0).min(16);
        for p in 0..rows {
            let row = (p / 2) * 32 + (p & 1);
            for j in 0..cols {
                tile[row + j * 2] = bf16_bits(b.at(p0 + p, j0 + j));
            }
        }
    });
}

/// Whether the byte offsets of a gather over `span` elements at `stride` floats fit in
/// i32 (or no gather is needed: `stride` 1).
fn gather_ok(stride: usize, span: usize) -> bool {
    stride == 1 || span * stride < i32::MAX as usize / 4
}

/// AVX-512F tile packing (whole tiles inside the matrix).
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::Mat;

    /// 16 floats → their bf16 bits (as `bf16_bits`) in the low halves of 16 u32.
    #[inline(always)]
    unsafe fn bf16x16(v: __m512) -> __m512i {
        let b = _mm512_castps_si512(v);
        let hi = _mm512_srli_epi32::<16>(b);
        let abs = _mm512_and_si512(b, _mm512_set1_epi32(0x7FFF_FFFF));
        let lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
        let bias = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb);
        let r = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
        let nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
        let sub = _mm512_cmplt_epu32_mask(abs, _mm512_set1_epi32(0x0080_0000));
        let r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
        _mm512_mask_mov_epi32(r, sub, _mm512_and_si512(hi, _mm512_set1_epi32(0x8000)))
    }

    /// 16 floats at `p + idx[l]` (f32 offsets).
    #[inline(always)]
    unsafe fn gather(idx: __m512i, p: *const f32) -> __m512 {
        _mm512_i32gather_ps::<4>(idx, p as _)
    }

    /// Offsets `l · stride` (f32 units) of 16 lanes.
    #[inline(always)]
    unsafe fn lanes(stride: usize) -> __m512i {
        let s = stride as i32;
        _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(s),
        )
    }

    /// A's tile at rows `r0..r0 + 16`, columns `c0..c0 + 32` into `tile` (row-major 16×32).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn a_tile(a: Mat<'_>, r0: usize, c0: usize, tile: &mut [u16]) {
        let d = a.d.as_ptr();
        let t = tile.as_mut_ptr();
        if a.cs == 1 {
            for r in 0..16 {
                let src = d.add((r0 + r) * a.rs + c0);
                let lo = bf16x16(_mm512_loadu_ps(src));
                let hi = bf16x16(_mm512_loadu_ps(src.add(16)));
                _mm256_storeu_si256(t.add(r * 32) as _, _mm512_cvtepi32_epi16(lo));
                _mm256_storeu_si256(t.add(r * 32 + 16) as _, _mm512_cvtepi32_epi16(hi));
            }
        } else if a.rs == 1 {
            // Aᵀ of a row-major matrix (a weight gradient's gᵀ, attention's Pᵀ and dSᵀ):
            // columns 2q, 2q + 1 of A are two rows of the source, 16 rows of A each. Their
            // pairs (16 u32, one per row of A) go to a 16 × 16 block, transposed into the tile
            // (row r: the 16 pairs of row r).
            let mut blk = [0u32; 256];
            for q in 0..16 {
                let src = d.add(r0 + (c0 + 2 * q) * a.cs);
                let lo = bf16x16(_mm512_loadu_ps(src));
                let hi = bf16x16(_mm512_loadu_ps(src.add(a.cs)));
                let pair = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
                _mm512_storeu_si512(blk.as_mut_ptr().add(q * 16) as _, pair);
            }
            let t32 = t as *mut u32;
            for r in 0..16 {
                for q in 0..16 {
                    t32.add(r * 16 + q).write_unaligned(blk[q * 16 + r]);
                }
            }
        } else {
            // Lane q of row r: the pair of columns 2q, 2q + 1.
            let idx = lanes(2 * a.cs);
            for r in 0..16 {
                let src = d.add((r0 + r) * a.rs + c0 * a.cs);
                let lo = bf16x16(gather(idx, src));
                let hi = bf16x16(gather(idx, src.add(a.cs)));
                let pair = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
                _mm512_storeu_si512(t.add(r * 32) as _, pair);
            }
        }
    }

    /// B's VNNI tile at rows `p0..p0 + 32`, columns `j0..j0 + 16` into `tile`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn b_tile(b: Mat<'_>, p0: usize, j0: usize, tile: &mut [u16]) {
        let d = b.d.as_ptr();
        let t = tile.as_mut_ptr();
        let idx = lanes(b.cs);
        for q in 0..16 {
            let src = d.add((p0 + 2 * q) * b.rs + j0 * b.cs);
            let (lo, hi) = if b.cs == 1 {
                (_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(b.rs)))
            } else {
                (gather(idx, src), gather(idx, src.add(b.rs)))
            };
            let pair = _mm512_or_si512(bf16x16(lo), _mm512_slli_epi32::<16>(bf16x16(hi)));
            _mm512_storeu_si512(t.add(q * 32) as _, pair);
        }
    }
}

thread_local! {
    /// The packed operands of the last product on this thread, kept for the next one (no
    /// fresh pages to fault in and zero on every call).
    static PACKED: std::cell::RefCell<(Vec<u16>, Vec<u16>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// A `k × n` B operand packed once ([`pack_b`]'s tile order) for several AMX products
/// ([`gemm_bf16_packed`]): a weight that every chunk of rows multiplies.
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    tiles: Vec<u16>,
}

impl PackedB {
    /// `b` (`k × n`) packed. AMX only ([`amx_usable`]).
    pub(crate) fn new(b: Mat<'_>, k: usize, n: usize) -> PackedB {
        assert!(amx_usable(), "bf16 gemm: packed operands need AMX");
        b.check(k, n, "B");
        let mut tiles = Vec::new();
        if k > 0 && n > 0 {
            pack_b(&mut tiles, b, k, n, 2 * n.div_ceil(32), k.div_ceil(32));
        }
        PackedB { k, n, tiles }
    }
}

/// `C[m, n] = bf16(A[m, k]) · B` for a packed `B` ([`PackedB`]): the same sums as
/// [`gemm_bf16`] on AMX.
pub(crate) fn gemm_bf16_packed(a: Mat<'_>, b: &PackedB, m: usize) -> Vec<f32> {
    let (n, k) = (b.n, b.k);
    a.check(m, k, "A");
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    let (mp, kt) = (m.div_ceil(32), k.div_ceil(32));
    let (mut ap, bp) = PACKED.with(|p| std::mem::take(&mut *p.borrow_mut()));
    pack_a(&mut ap, a, m, k, 2 * mp, kt);
    let c = amx_product(&ap, &b.tiles, m, n, k);
    PACKED.with(|p| *p.borrow_mut() = (ap, bp));
    c
}

fn amx_gemm(a: Mat<'_>, b: Mat<'_>, m: usize, n: usize, k: usize) -> Vec<f32> {
    // Whole pairs of tiles on both sides (a padding tile is zero).
    let (mp, np, kt) = (m.div_ceil(32), n.div_ceil(32), k.div_ceil(32));
    let (mut ap, mut bp) = PACKED.with(|p| std::mem::take(&mut *p.borrow_mut()));
    pack_a(&mut ap, a, m, k, 2 * mp, kt);
    pack_b(&mut bp, b, k, n, 2 * np, kt);
    let c = amx_product(&ap, &bp, m, n, k);
    PACKED.with(|p| *p.borrow_mut() = (ap, bp));
    c
}

/// `C[m, n]` from the packed operands: `ap` ([`pack_a`], `2·⌈m/32⌉` row tiles) and `bp`
/// ([`pack_b`], `2·⌈n/32⌉` column tiles), `⌈k/32⌉` tiles of `p` each.
fn amx_product(ap: &[u16], bp: &[u16], m: usize, n: usize, k: usize) -> Vec<f32> {
    let (mp, np, kt) = (m.div_ceil(32), n.div_ceil(32), k.div_ceil(32));
    let (mpad, npad) = (mp * 32, np * 32);
    assert!(
        ap.len() >= 2 * mp * kt * TILE && bp.len() >= 2 * np * kt * TILE,
        "bf16 gemm: packed operand sizes"
    );
    // Every element of C is stored by the first block of p (k > 0) before any is read.
    let mut c: Vec<f32> = Vec::with_capacity(mpad * npad);
    let tasks: Vec<(usize, usize)> = (0..mp.div_ceil(RB))
        .flat_map(|bi| (0..np.div_ceil(CB)).map(move |bj| (bi * RB, bj * CB)))
        .collect();
    let cp = SendPtr(c.as_mut_ptr());
    let cp = &cp;
    let run = |&(i0, j0): &(usize, usize)| {
        let (i1, j1) = ((i0 + RB).min(mp), (j0 + CB).min(np));
        // SAFETY: AMX is usable (checked by the caller); each task writes only the C rows
        // 32·i0..32·i1 × columns 32·j0..32·j1 (disjoint across tasks) of the mpad × npad
        // buffer, and reads packed tiles inside `ap` ([2·mp][kt] tiles) and `bp` (asserted).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            amx_task(ap, bp, kt, i0, i1, j0, j1, cp.0, npad)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (i1, j1, cp, ap, bp);
    };
    if tasks.len() == 1 {
        run(&tasks[0]);
    } else {
        tasks.par_iter().for_each(run);
    }
    // SAFETY: the tasks stored all mpad × npad elements (see above).
    unsafe { c.set_len(mpad * npad) };
    if npad != n {
        for i in 0..m {
            c.copy_within(i * npad..i * npad + n, i * n);
        }
    }
    c.truncate(m * n);
    c
}

/// The 64-byte tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn all_16x64() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = 16;
        }
        TileConfig(c)
    }
}

/// The C tiles of row pairs `i0..i1` × column pairs `j0..j1`: tmm0..3 the 2×2 block of C,
/// tmm4/5 two A tiles, tmm6/7 two B tiles.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_task(
    ap: &[u16],
    bp: &[u16],
    kt: usize,
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
    c: *mut f32,
    ldc: usize,
) {
    use std::arch::asm;
    let cfg = TileConfig::all_16x64();
    asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    let strip = kt * TILE; // u16 between consecutive row (column) tiles
    let mut k0 = 0;
    // Blocks of p of equal size, at most KB tiles each.
    let nb = kt.div_ceil(KB);
    let per = kt.div_ceil(nb);
    while k0 < kt {
        let k1 = (k0 + per).min(kt);
        for jp in j0..j1 {
            for ip in i0..i1 {
                let a0 = ap.as_ptr().add(2 * ip * strip + k0 * TILE);
                let b0 = bp.as_ptr().add(2 * jp * strip + k0 * TILE);
                let ct = c.add(32 * ip * ldc + 32 * jp);
                micro_2x2(a0, strip * 2, b0, strip * 2, k1 - k0, ct, ldc, k0 > 0);
            }
        }
        k0 = k1;
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// C[32×32] at `c` (row stride `ldc` floats) `+=` (or `=`, unless `load`) the sum over `nk`
/// tiles of p: A tiles at `a` and `a + a_next` bytes (rows 0..16, 16..32), B tiles at `b` and
/// `b + b_next` bytes (columns 0..16, 16..32), each followed by its next tile of p 1 KiB on.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_2x2(
    a: *const u16,
    a_next: usize,
    b: *const u16,
    b_next: usize,
    nk: usize,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    use std::arch::asm;
    let cs = ldc * 4;
    let (c1, c2, c3) = (c.add(16), c.add(16 * ldc), c.add(16 * ldc + 16));
    if load {
        asm!(
            "tileloadd tmm0, [{c0} + {s} * 1]",
            "tileloadd tmm1, [{c1} + {s} * 1]",
            "tileloadd tmm2, [{c2} + {s} * 1]",
            "tileloadd tmm3, [{c3} + {s} * 1]",
            c0 = in(reg) c, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
            s = in(reg) cs,
            options(nostack, readonly),
        );
    } else {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem),
        );
    }
    let mut pa = a as *const u8;
    let mut pb = b as *const u8;
    for _ in 0..nk {
        asm!(
            "tileloadd tmm4, [{a0} + {s} * 1]",
            "tileloadd tmm6, [{b0} + {s} * 1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s} * 1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s} * 1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) pa, a1 = in(reg) pa.add(a_next),
            b0 = in(reg) pb, b1 = in(reg) pb.add(b_next),
            s = in(reg) 64usize,
            options(nostack, readonly),
        );
        pa = pa.add(2 * TILE);
        pb = pb.add(2 * TILE);
    }
    asm!(
        "tilestored [{c0} + {s} * 1], tmm0",
        "tilestored [{c1} + {s} * 1], tmm1",
        "tilestored [{c2} + {s} * 1], tmm2",
        "tilestored [{c3} + {s} * 1], tmm3",
        c0 = in(reg) c, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
        s = in(reg) cs,
        options(nostack),
    );
}

#[cfg(test)]
#[path = "amx_tests.rs"]
mod tests;
