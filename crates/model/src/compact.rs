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
}

impl BlockFormat {
    fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_1 => 20,
            BlockFormat::Q8_0 => 34,
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
    /// candle's dequantisation.
    pub fn expand_rows(&self, r0: usize, nr: usize, out: &mut [f32]) {
        assert!(r0 + nr <= self.rows && out.len() >= nr * self.cols);
        let src = &self.data[r0 * self.row_bytes..(r0 + nr) * self.row_bytes];
        let blocks = nr * self.cols / QK;
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
                // SAFETY: `src` holds `blocks` blocks and `out` room for `blocks * QK` floats.
                unsafe {
                    match self.format {
                        BlockFormat::Q4_1 => expand_q4_1_avx2(src, blocks, out),
                        BlockFormat::Q8_0 => expand_q8_0_avx2(src, blocks, out),
                    }
                }
                return;
            }
        }
        match self.format {
            BlockFormat::Q4_1 => expand_q4_1(src, blocks, out),
            BlockFormat::Q8_0 => expand_q8_0(src, blocks, out),
        }
    }
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
            }
            assert!(portable
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
