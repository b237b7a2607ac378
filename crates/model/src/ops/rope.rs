//! Half-split rotary embedding with the head transpose, one fused op with its own backward:
//! `x` [B, T, H, D] (the projection's rows) → `x·cos + rotate_half(x)·sin` as [B, H, T, D],
//! `rotate_half(x) = [−x₂, x₁]`. It replaces the composition `transpose` → `narrow` × 2 →
//! `neg` → `cat` → `mul` × 2 → `add` (and their backward) of the training path, with the
//! same arithmetic per element.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{data, err, tensor, with_data, CResult};

/// The op; `cos` and `sin` hold B·T·D values (row-major [B, T, D]).
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

/// One (b, h) plane: `out[t]` from `x[t]` (stride `xs` between positions).
fn plane(out: &mut [f32], x: &[f32], xs: usize, cos: &[f32], sin: &[f32], d: usize, back: bool) {
    let half = d / 2;
    for (ti, o) in out.chunks_mut(d).enumerate() {
        let xr = &x[ti * xs..][..d];
        let (c, s) = (&cos[ti * d..][..d], &sin[ti * d..][..d]);
        for j in 0..half {
            let (x1, x2) = (xr[j], xr[j + half]);
            if back {
                // The transpose of y₁ = x₁c₁ − x₂s₁, y₂ = x₂c₂ + x₁s₂.
                o[j] = x1 * c[j] + x2 * s[j + half];
                o[j + half] = x2 * c[j + half] - x1 * s[j];
            } else {
                o[j] = x1 * c[j] + -x2 * s[j];
                o[j + half] = x2 * c[j + half] + x1 * s[j + half];
            }
        }
    }
}

impl Rope {
    /// [B, T, H, D] → [B, H, T, D] (forward), or the backward [B, H, T, D] → [B, T, H, D].
    fn run(&self, x: &[f32], dims: (usize, usize, usize, usize), back: bool) -> CResult<Vec<f32>> {
        let (b, t, h, d) = dims;
        if x.len() != b * t * h * d || !d.is_multiple_of(2) || self.cos.elem_count() != b * t * d {
            return Err(err(format!(
                "rope: {} values for [{b}, {t}, {h}, {d}], {} cos values",
                x.len(),
                self.cos.elem_count()
            )));
        }
        with_data(&self.cos, |cos| {
            with_data(&self.sin, |sin| {
                let mut out = vec![0f32; x.len()];
                if back {
                    // Planes of the gradient [B, H, T, D] into rows [B, T, H, D]: gather
                    // each plane's transpose into a buffer, then scatter.
                    let planes: Vec<Vec<f32>> = (0..b * h)
                        .into_par_iter()
                        .map(|bh| {
                            let bi = bh / h;
                            let mut o = vec![0f32; t * d];
                            let cs = &cos[bi * t * d..][..t * d];
                            let sn = &sin[bi * t * d..][..t * d];
                            plane(&mut o, &x[bh * t * d..][..t * d], d, cs, sn, d, true);
                            o
                        })
                        .collect();
                    for (bh, o) in planes.iter().enumerate() {
                        let (bi, hi) = (bh / h, bh % h);
                        for (ti, row) in o.chunks(d).enumerate() {
                            out[((bi * t + ti) * h + hi) * d..][..d].copy_from_slice(row);
                        }
                    }
                } else {
                    out.par_chunks_mut(t * d).enumerate().for_each(|(bh, o)| {
                        let (bi, hi) = (bh / h, bh % h);
                        let xs = &x[bi * t * h * d + hi * d..];
                        let cs = &cos[bi * t * d..][..t * d];
                        let sn = &sin[bi * t * d..][..t * d];
                        plane(o, xs, h * d, cs, sn, d, false);
                    });
                }
                Ok(out)
            })
        })
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rzero-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = data(s, l, "rope x")?;
        let (b, t, h, d) = l.shape().dims4()?;
        let out = self.run(x, (b, t, h, d), false)?;
        Ok((CpuStorage::F32(out), Shape::from((b, h, t, d))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        let (b, t, h, d) = x.dims4()?;
        let dx = with_data(g, |g_| self.run(g_, (b, t, h, d), true))?;
        Ok(Some(tensor(dx, x.shape(), x)?))
    }
}

/// Rotary embedding of `x` [B, T, H, D] with the head transpose: `[B, H, T, D]` of
/// `x·cos + rotate_half(x)·sin`, for `cos` and `sin` of B·T·D values (row-major [B, T, D],
/// e.g. [B, 1, T, D]). Differentiable in `x`. CPU f32 only.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(Rope {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
    })
}
