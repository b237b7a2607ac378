//! Weights kept in their GGUF block format (Q4_1, Q8_0) for the packed path.
//!
//! A GGUF model is dequantized to f32 at load, and every other path uses those f32 tensors.
//! The packed path's matrix products read the weights once per step from memory, which at
//! f32 costs more time than the arithmetic. So beside each f32 matrix that came from a
//! Q4_1 or Q8_0 tensor we keep its blocks (5 or 8.5 bits a weight), and the product kernel
//! expands one tile of rows at a time into L1 with exactly candle's dequantisation
//! arithmetic (`q as f32 * d + m` and `q as f32 * d`, no fused multiply-add): the products
//! see bit-identical f32 weights and give bit-identical results, while reading about 6x
//! fewer bytes.
//!
//! A compact matrix remembers the id of the f32 tensor it mirrors; [`Model`] only uses it
//! while its weight is that very tensor (a model rebuilt from changed weights, e.g. a merged
//! adapter, falls back to the f32 path). A tensor written in place (`Var::set`) keeps its
//! id, so compact matrices must never be attached to a model whose weights are updated in
//! place: only `LoadedModel::model()` attaches them; the trainer builds its models without.
//!
//! The same mechanism carries bf16 copies of f32 weights ([`BlockFormat::Bf16`],
//! [`CompactMatrix::bf16_of`]): for a trained policy, whose f32 weights have no GGUF blocks,
//! `Model::attach_bf16` rounds each matrix to bf16 once (round to nearest even) and the
//! kernel widens the rows back to f32 (exact) tile by tile. Unlike the GGUF copies these are
//! *not* bit-identical to the f32 tensor: the products see the bf16-rounded weights (a
//! choice, `engine.policy_weights`). They are made on a clone of the policy after its update
//! and live only while that clone does.
//!
//! [`Model`]: crate::Model

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Tensor, TensorId};

/// Block formats kept compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// 32 weights: f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles; `w = q * d + m`.
    Q4_1,
    /// 32 weights: f16 scale `d`, 32 signed bytes; `w = q * d`.
    Q8_0,
    /// bf16 rows (2 bytes a weight): the f32 weight rounded to nearest even, widened back
    /// exactly. Not a GGUF block format: made from f32 weights by [`CompactMatrix::bf16_of`].
    Bf16,
}

impl BlockFormat {
    fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_1 => 20,
            BlockFormat::Q8_0 => 34,
            BlockFormat::Bf16 => 2 * QK,
        }
    }
}

/// Weights per block, both formats.
const QK: usize = 32;

/// One `[rows, cols]` weight matrix in GGUF blocks, rows in the f32 tensor's order.
#[derive(Debug)]
pub struct CompactMatrix {
    format: BlockFormat,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
    source: TensorId,
}

impl CompactMatrix {
    /// The blocks of `q` (a 2-D Q4_1 or Q8_0 tensor), with rows reordered so that row `i`
    /// is `q`'s row `row_order[i]` (identity when `None`), mirroring the f32 tensor
    /// `source`. `None` for other formats or shapes.
    pub fn from_qtensor(
        q: &QTensor,
        row_order: Option<&[usize]>,
        source: &Tensor,
    ) -> Option<CompactMatrix> {
        let format = match q.dtype() {
            GgmlDType::Q4_1 => BlockFormat::Q4_1,
            GgmlDType::Q8_0 => BlockFormat::Q8_0,
            _ => return None,
        };
        let (rows, cols) = q.shape().dims2().ok()?;
        if cols % QK != 0 || source.dims() != [rows, cols] {
            return None;
        }
        let raw = q.data().ok()?;
        let row_bytes = cols / QK * format.block_bytes();
        if raw.len() != rows * row_bytes {
            return None;
        }
        let data = match row_order {
            None => raw.into_owned(),
            Some(order) => {
                if order.len() != rows {
                    return None;
                }
                let mut d = Vec::with_capacity(raw.len());
                for &r in order {
                    d.extend_from_slice(raw.get(r * row_bytes..(r + 1) * row_bytes)?);
                }
                d
            }
        };
        Some(CompactMatrix {
            format,
            rows,
            cols,
            row_bytes,
            data,
            source: source.id(),
        })
    }

    /// The bf16 rounding (nearest even) of `t`, a 2-D contiguous f32 tensor on the CPU, in
    /// its row order; `None` for other tensors.
    pub fn bf16_of(t: &Tensor) -> Option<CompactMatrix> {
        use rayon::prelude::*;
        let (rows, cols) = t.dims2().ok()?;
        if t.dtype() != candle_core::DType::F32 || !t.is_contiguous() || !t.device().is_cpu() {
            return None;
        }
        let (st, layout) = t.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*st else {
            return None;
        };
        let o = layout.start_offset();
        let src = cpu.as_slice::<f32>().ok()?.get(o..o + rows * cols)?;
        let mut data = vec![0u8; rows * cols * 2];
        data.par_chunks_mut(2 * cols.max(1) * 64)
            .zip(src.par_chunks(cols.max(1) * 64))
            .for_each(|(d, s)| {
                for (d, &v) in d.chunks_exact_mut(2).zip(s) {
                    d.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes());
                }
            });
        Some(CompactMatrix {
            format: BlockFormat::Bf16,
            rows,
            cols,
            row_bytes: 2 * cols,
            data,
            source: t.id(),
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (the inner dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The block format.
    pub fn format(&self) -> BlockFormat {
        self.format
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether this mirrors exactly the tensor `t`.
    pub fn mirrors(&self, t: &Tensor) -> bool {
        self.source == t.id() && t.dims() == [self.rows, self.cols]
    }

    /// Expands rows `r0..r0 + nr` into `out` (`nr * cols` f32, row-major), bit-identical to
    /// candle's dequantisation (GGUF blocks) or to the bf16 weights widened (bf16).
    pub fn expand_rows(&self, r0: usize, nr: usize, out: &mut [f32]) {
        self.expand_rows_with(Widen::best(), r0, nr, out)
    }

    /// [`Self::expand_rows`] with the bf16 widening on the path `widen` (which the CPU must
    /// support; the product kernel's own detection picks it). GGUF blocks ignore it.
    pub(crate) fn expand_rows_with(&self, widen: Widen, r0: usize, nr: usize, out: &mut [f32]) {
        assert!(r0 + nr <= self.rows && out.len() >= nr * self.cols);
        let src = &self.data[r0 * self.row_bytes..(r0 + nr) * self.row_bytes];
        if self.format == BlockFormat::Bf16 {
            widen_bf16(widen, src, &mut out[..nr * self.cols]);
            return;
        }
        let blocks = nr * self.cols / QK;
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
                // SAFETY: `src` holds `blocks` blocks and `out` room for `blocks * QK` floats.
                unsafe {
                    match self.format {
                        BlockFormat::Q4_1 => expand_q4_1_avx2(src, blocks, out),
                        BlockFormat::Q8_0 => expand_q8_0_avx2(src, blocks, out),
                        BlockFormat::Bf16 => unreachable!("widened above"),
                    }
                }
                return;
            }
        }
        match self.format {
            BlockFormat::Q4_1 => expand_q4_1(src, blocks, out),
            BlockFormat::Q8_0 => expand_q8_0(src, blocks, out),
            BlockFormat::Bf16 => unreachable!("widened above"),
        }
    }
}

/// The code path that widens bf16 rows to f32 (all exact: a 16-bit shift).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Widen {
    /// 16 weights a step with AVX-512F.
    Avx512,
    /// 8 weights a step with AVX2.
    Avx2,
    /// Portable code.
    Scalar,
}

impl Widen {
    /// The fastest path this CPU supports.
    pub(crate) fn best() -> Widen {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Widen::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Widen::Avx2;
            }
        }
        Widen::Scalar
    }
}

/// `out[i] = f32(src bf16 i)` for every bf16 (little-endian) of `src`.
fn widen_bf16(widen: Widen, src: &[u8], out: &mut [f32]) {
    assert!(src.len() == 2 * out.len());
    #[cfg(target_arch = "x86_64")]
    {
        match widen {
            Widen::Avx512 if std::is_x86_feature_detected!("avx512f") => {
                // SAFETY: the CPU has AVX-512F; lengths checked above.
                unsafe { widen_bf16_avx512(src, out) };
                return;
            }
            Widen::Avx2 | Widen::Avx512 if std::is_x86_feature_detected!("avx2") => {
                // SAFETY: the CPU has AVX2; lengths checked above.
                unsafe { widen_bf16_avx2(src, out) };
                return;
            }
            _ => {}
        }
    }
    let _ = widen;
    widen_bf16_scalar(src, out);
}

fn widen_bf16_scalar(src: &[u8], out: &mut [f32]) {
    for (y, b) in out.iter_mut().zip(src.chunks_exact(2)) {
        *y = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn widen_bf16_avx512(src: &[u8], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len();
    let (s, y) = (src.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 16 <= n {
        let h = _mm256_loadu_si256(s.add(2 * i) as *const __m256i);
        let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
        _mm512_storeu_ps(y.add(i), _mm512_castsi512_ps(w));
        i += 16;
    }
    widen_bf16_scalar(&src[2 * i..], &mut out[i..]);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn widen_bf16_avx2(src: &[u8], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len();
    let (s, y) = (src.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(s.add(2 * i) as *const __m128i);
        let w = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h));
        _mm256_storeu_ps(y.add(i), _mm256_castsi256_ps(w));
        i += 8;
    }
    widen_bf16_scalar(&src[2 * i..], &mut out[i..]);
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn expand_q4_1(src: &[u8], blocks: usize, out: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(20)
        .take(blocks)
        .zip(out.chunks_exact_mut(QK))
    {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..QK / 2 {
            let q = b[4 + j];
            y[j] = ((q & 0x0F) as f32) * d + m;
            y[j + QK / 2] = ((q >> 4) as f32) * d + m;
        }
    }
}

fn expand_q8_0(src: &[u8], blocks: usize, out: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(34)
        .take(blocks)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = f16_at(b, 0);
        for j in 0..QK {
            y[j] = (b[2 + j] as i8 as f32) * d;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn expand_q4_1_avx2(src: &[u8], blocks: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(src.len() >= blocks * 20 && out.len() >= blocks * QK);
    let low = _mm_set1_epi8(0x0F);
    for bi in 0..blocks {
        let b = src.as_ptr().add(bi * 20);
        // d and m (two f16) converted exactly by F16C, then broadcast.
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const i32).read_unaligned()));
        let d = _mm256_broadcastss_ps(dm);
        let m = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
        let qs = _mm_loadu_si128(b.add(4) as *const __m128i);
        let lo = _mm_and_si128(qs, low);
        let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low);
        let y = out.as_mut_ptr().add(bi * QK);
        // Separate multiply and add: the same two roundings as `q as f32 * d + m`.
        let conv = |v: __m128i| {
            _mm256_add_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), d),
                m,
            )
        };
        _mm256_storeu_ps(y, conv(lo));
        _mm256_storeu_ps(y.add(8), conv(_mm_srli_si128(lo, 8)));
        _mm256_storeu_ps(y.add(16), conv(hi));
        _mm256_storeu_ps(y.add(24), conv(_mm_srli_si128(hi, 8)));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn expand_q8_0_avx2(src: &[u8], blocks: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(src.len() >= blocks * 34 && out.len() >= blocks * QK);
    for bi in 0..blocks {
        let b = src.as_ptr().add(bi * 34);
        let d = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const u16).read_unaligned() as i32));
        let d = _mm256_broadcastss_ps(d);
        let p = b.add(2);
        let y = out.as_mut_ptr().add(bi * QK);
        for c in 0..4 {
            let v = _mm_loadl_epi64(p.add(8 * c) as *const __m128i);
            let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
            _mm256_storeu_ps(y.add(8 * c), _mm256_mul_ps(f, d));
        }
    }
}

/// Compact matrices by Hugging Face parameter name.
#[derive(Debug, Clone, Default)]
pub struct CompactWeights(pub HashMap<String, Arc<CompactMatrix>>);

impl CompactWeights {
    /// Bytes held by all matrices.
    pub fn bytes(&self) -> usize {
        self.0.values().map(|m| m.bytes()).sum()
    }

    /// The matrix kept for `name`, if it still mirrors `t`.
    pub(crate) fn for_tensor(&self, name: &str, t: &Tensor) -> Option<Arc<CompactMatrix>> {
        self.0.get(name).filter(|m| m.mirrors(t)).cloned()
    }
}

/// The compact matrices of one decoder layer (each `None` where the f32 path is used).
#[derive(Debug, Clone, Default)]
pub(crate) struct CompactLayer {
    pub(crate) q: Option<Arc<CompactMatrix>>,
    pub(crate) k: Option<Arc<CompactMatrix>>,
    pub(crate) v: Option<Arc<CompactMatrix>>,
    pub(crate) o: Option<Arc<CompactMatrix>>,
    pub(crate) gate: Option<Arc<CompactMatrix>>,
    pub(crate) up: Option<Arc<CompactMatrix>>,
    pub(crate) down: Option<Arc<CompactMatrix>>,
}

/// A model's compact matrices, by position.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompactModel {
    pub(crate) layers: Vec<CompactLayer>,
    pub(crate) lm_head: Option<Arc<CompactMatrix>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Expansion equals candle's dequantisation bit for bit, both formats, with a row order.
    #[test]
    fn expansion_is_bit_identical_to_dequantize() {
        let dev = Device::Cpu;
        let (rows, cols) = (12, 96);
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.47) * 3.1)
            .collect();
        let t = Tensor::from_vec(data, (rows, cols), &dev).unwrap();
        for dt in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&t, dt).unwrap();
            let f = q.dequantize(&dev).unwrap();
            let order: Vec<usize> = (0..rows).rev().collect();
            let fo = f
                .index_select(
                    &Tensor::from_vec(
                        order.iter().map(|&r| r as u32).collect::<Vec<_>>(),
                        rows,
                        &dev,
                    )
                    .unwrap(),
                    0,
                )
                .unwrap();
            let c = CompactMatrix::from_qtensor(&q, Some(&order), &fo).unwrap();
            assert!(c.mirrors(&fo) && !c.mirrors(&f));
            let want = fo.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut got = vec![0f32; rows * cols];
            c.expand_rows(0, rows, &mut got);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dt:?}"
            );
            let mut part = vec![0f32; 3 * cols];
            c.expand_rows(5, 3, &mut part);
            assert_eq!(&part[..], &want[5 * cols..8 * cols]);
            // The portable path agrees too.
            let blocks = rows * cols / QK;
            let mut portable = vec![0f32; rows * cols];
            match c.format() {
                BlockFormat::Q4_1 => expand_q4_1(&c.data, blocks, &mut portable),
                BlockFormat::Q8_0 => expand_q8_0(&c.data, blocks, &mut portable),
                BlockFormat::Bf16 => unreachable!("a GGUF format"),
            }
            assert!(portable
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    /// The bf16 copy holds each weight rounded to nearest even (ties to even, NaN kept), and
    /// every widening path gives back exactly those values, ragged lengths included.
    #[test]
    fn bf16_copy_rounds_to_nearest_even_and_widens_exactly_on_every_path() {
        let dev = Device::Cpu;
        let (rows, cols) = (7, 37);
        let mut data: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.47) * 3.1e-2)
            .collect();
        // Ties: 1 + 2^-8 lies halfway between two bf16 values (rounds down to even 1.0);
        // 1 + 3·2^-8 halfway too (rounds up to even 1 + 2^-6).
        data[0] = 1.0 + 2f32.powi(-8);
        data[1] = 1.0 + 3.0 * 2f32.powi(-8);
        data[2] = f32::NAN;
        data[3] = -0.0;
        let t = Tensor::from_vec(data.clone(), (rows, cols), &dev).unwrap();
        let c = CompactMatrix::bf16_of(&t).unwrap();
        assert!(c.mirrors(&t) && c.format() == BlockFormat::Bf16);
        assert_eq!(c.bytes(), rows * cols * 2);
        let want: Vec<f32> = data
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect();
        assert_eq!(want[0], 1.0);
        assert_eq!(want[1], 1.0 + 2f32.powi(-6));
        let mut paths = vec![Widen::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                paths.push(Widen::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                paths.push(Widen::Avx512);
            }
        }
        eprintln!("bf16 widening paths tested: {paths:?}");
        for w in paths {
            let mut got = vec![0f32; rows * cols];
            c.expand_rows_with(w, 0, rows, &mut got);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{w:?}"
            );
            let mut part = vec![0f32; 3 * cols];
            c.expand_rows_with(w, 2, 3, &mut part);
            assert!(part
                .iter()
                .zip(&want[2 * cols..5 * cols])
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        // Not for other dtypes or shapes.
        assert!(CompactMatrix::bf16_of(&t.to_dtype(candle_core::DType::BF16).unwrap()).is_none());
        assert!(CompactMatrix::bf16_of(&t.flatten_all().unwrap()).is_none());
        assert!(CompactMatrix::bf16_of(&t.t().unwrap()).is_none());
    }
}
