//! Fused differentiable CPU ops for the training path (f32), each a candle custom op with its
//! own backward (`bwd`), so the invariant "the differentiable path uses no kernel without a
//! backward" holds:
//!
//! - [`linear`]: `x · wᵀ`, forward and both backward products on an AVX-512 kernel
//!   (`kernels/gemm.rs`) where the CPU has it (runtime detection), else on the packed path's
//!   AVX2 / portable dot-product kernel (`kernels.rs`); with [`MatmulPrecision::Bf16`]
//!   ([`linear_with`]) the three products take bf16-rounded operands and sum in f32
//!   (`kernels/amx.rs`: AMX tiles where the CPU and OS have them);
//!   [`linear_sunk`] adds the weight's gradient into a [`GradSink`] instead of returning it
//!   to candle (`ops/sink.rs`);
//! - [`attention`]: masked grouped-query attention, `softmax(q · kᵀ · scale + mask) · v`
//!   (`ops/attention.rs`; with AVX-512F);
//! - [`masked_softmax`]: `softmax(scores · scale + mask)` over the last dim (the attention
//!   of CPUs without AVX-512F);
//! - [`rope`]: the half-split rotary embedding with the head transpose (`ops/rope.rs`);
//! - [`rms_norm`]: `x · rsqrt(mean(x²) + eps) · w`;
//! - [`silu_mul`]: `silu(g) · u` (the gated MLP);
//! - [`lora_merge`]: LoRA's merged weight `W + (s·B)·A`, differentiable in `A` and `B` only
//!   (`ops/merge.rs`);
//! - [`logprobs_entropy`]: per row of logits, the log-softmax at a target and the entropy
//!   (one pass, never a second `[rows, V]` tensor in the forward).
//!
//! Each replaces a composition of candle ops in [`crate::Model`]'s differentiable path when
//! [`fused_ok`] holds (CPU, f32, and [`crate::Model::set_fused_ops`] not turned off); tests in
//! `tests/ops.rs` check every backward by finite differences and every op against the
//! composition it replaces.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::amx::{self, Mat};
use crate::kernels::{self, gemm};

mod attention;
mod head;
mod merge;
mod rope;
mod sink;
pub use attention::{attention, attention_with, available as attention_available};
pub use head::{head_linear, PackedHead};
pub use merge::lora_merge;
pub use rope::rope;
pub use sink::{embedding_sunk, GradSink};

type CResult<T> = candle_core::Result<T>;

fn err(msg: impl Into<String>) -> candle_core::Error {
    candle_core::Error::Msg(msg.into())
}

/// Whether the fused ops can run on `t`: a CPU f32 tensor.
pub fn fused_ok(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The contiguous f32 data of a custom op's CPU operand.
fn data<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> CResult<&'a [f32]> {
    let d = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&d[a..b]),
        None => Err(err(format!("{what}: operand must be contiguous"))),
    }
}

/// Runs `f` on the contiguous f32 data of `t` (copied first if `t` is not contiguous).
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> CResult<R>) -> CResult<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        candle_core::Storage::Cpu(cs) => f(data(cs, l, "fused op")?),
        _ => Err(err("fused ops run on the CPU only")),
    }
}

fn tensor(v: Vec<f32>, shape: impl Into<Shape>, like: &Tensor) -> CResult<Tensor> {
    Tensor::from_vec(v, shape, like.device())
}

/// The shape `[.., M]` of a product `x[.., K] · wᵀ` with x's dims `dims`.
fn product_shape(dims: &[usize], m: usize) -> Shape {
    let mut od = dims.to_vec();
    *od.last_mut().expect("x has a last dim") = m;
    Shape::from(od)
}

/// `dw[M, K] = gᵀ · x` for `g` [N, M] and `x` [N, K] with bf16 operands (`A(i, p) =
/// g[p·M + i]`).
fn dw_bf16(g: &[f32], x: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let a = Mat { d: g, rs: 1, cs: m };
    amx::gemm_bf16(a, Mat { d: x, rs: k, cs: 1 }, m, k, n)
}

/// The gradient `d` of the weight `w` [M, K] for candle: `None` when `sink` takes it
/// ([`GradSink`]), else as a tensor.
fn weight_grad(
    d: Option<Vec<f32>>,
    sink: Option<&GradSink>,
    w: &Tensor,
) -> CResult<Option<Tensor>> {
    let d = match (d, sink) {
        (Some(d), Some(sink)) => sink.put(w, d),
        (d, _) => d,
    };
    d.map(|d| tensor(d, w.shape(), w)).transpose()
}

/// `dst[c, r] = src[r, c]` for a row-major `[rows, cols]` source, in parallel 32×32 blocks.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BS: usize = 32;
    let mut dst = vec![0f32; rows * cols];
    // Each task writes BS destination rows (source columns c0..c1).
    dst.par_chunks_mut(BS * rows)
        .enumerate()
        .for_each(|(bi, out)| {
            let c0 = bi * BS;
            let c1 = (c0 + BS).min(cols);
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + BS).min(rows);
                for c in c0..c1 {
                    let o = &mut out[(c - c0) * rows..(c - c0 + 1) * rows];
                    for r in r0..r1 {
                        o[r] = src[r * cols + c];
                    }
                }
                r0 = r1;
            }
        });
    dst
}

// ---------------------------------------------------------------------------------------
// linear

/// The operands of the training path's matrix products ([`linear_with`]), as
/// `torch.set_float32_matmul_precision` sets them: `"f32"` (the default) or `"bf16"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// f32 operands (the default).
    #[default]
    F32,
    /// Operands rounded to bf16 (to nearest, ties to even; subnormals to zero), products
    /// summed in f32: weights, activations, gradients and outputs stay f32. AMX tiles where
    /// the CPU and OS have them (see [`bf16_products_on_amx`]), else the f32 kernel on the
    /// rounded operands (same products, summed in another order).
    Bf16,
}

impl MatmulPrecision {
    /// `"f32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            MatmulPrecision::F32 => "f32",
            MatmulPrecision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for MatmulPrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(MatmulPrecision::F32),
            "bf16" => Ok(MatmulPrecision::Bf16),
            other => Err(format!("matmul precision is f32 or bf16, not {other:?}")),
        }
    }
}

/// Whether [`MatmulPrecision::Bf16`] products run on AMX tiles on this machine.
pub fn bf16_products_on_amx() -> bool {
    kernels::amx::amx_usable()
}

/// `x[.., K] · w[M, K]ᵀ` → `[.., M]`; with a sink, the weight's gradient goes into it when
/// the sink takes it ([`GradSink`]).
struct Linear(MatmulPrecision, Option<GradSink>);

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "rzero-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = data(s1, l1, "linear x")?;
        let w = data(s2, l2, "linear w")?;
        let (m, k) = l2.shape().dims2()?;
        let dims = l1.shape().dims();
        if dims.last() != Some(&k) {
            return Err(err(format!("linear: x {dims:?} against w [{m}, {k}]")));
        }
        let n = x.len() / k.max(1);
        let out = if self.0 == MatmulPrecision::Bf16 {
            // A = x [N, K], B = wᵀ: B(p, j) = w[j·K + p].
            amx::gemm_bf16(
                Mat { d: x, rs: k, cs: 1 },
                Mat { d: w, rs: 1, cs: k },
                n,
                m,
                k,
            )
        } else if gemm::available() {
            // x · wᵀ: B = wᵀ, packed panel by panel from the rows of w.
            gemm::gemm_nt(x, k, 1, w, n, m, k)
        } else {
            kernels::matmul_nt(x, n, k, w, m)
        };
        Ok((CpuStorage::F32(out), product_shape(dims, m)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (m, k) = w.dims2()?;
        let n = x.elem_count() / k.max(1);
        let (want_dx, want_dw) = (x.track_op(), w.track_op());
        let (dx, dw) = with_data(g, |g_| {
            with_data(w, |w_| {
                with_data(
                    x,
                    |x_| Ok(self.grads(x_, w_, g_, n, m, k, want_dx, want_dw)),
                )
            })
        })?;
        let dx = dx.map(|d| tensor(d, x.shape(), x)).transpose()?;
        // dW into the weight's sink when it takes it (no gradient for candle to store).
        Ok((dx, weight_grad(dw, self.1.as_ref(), w)?))
    }
}

impl Linear {
    /// The backward products of `y[N, M] = x[N, K] · w[M, K]ᵀ` for the output gradient `g`:
    /// `dx = g · w` [N, K] and `dw = gᵀ · x` [M, K], each only when wanted.
    #[allow(clippy::too_many_arguments)]
    fn grads(
        &self,
        x: &[f32],
        w: &[f32],
        g: &[f32],
        n: usize,
        m: usize,
        k: usize,
        want_dx: bool,
        want_dw: bool,
    ) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
        if self.0 == MatmulPrecision::Bf16 {
            // dx[N, K] = g[N, M] · w[M, K].
            let dx = want_dx.then(|| {
                let a = Mat { d: g, rs: m, cs: 1 };
                amx::gemm_bf16(a, Mat { d: w, rs: k, cs: 1 }, n, k, m)
            });
            let dw = want_dw.then(|| dw_bf16(g, x, m, k, n));
            return (dx, dw);
        }
        if gemm::available() {
            // dx[N, K] = g[N, M] · w[M, K]; dw[M, K] = gᵀ · x: A(i, p) = g[p·M + i].
            let dx = want_dx.then(|| gemm::gemm(g, m, 1, w, k, n, k, m));
            let dw = want_dw.then(|| gemm::gemm(g, 1, m, x, k, m, k, n));
            return (dx, dw);
        }
        // dx = g · w = g · (wᵀ)ᵀ: rows of g against the rows of wᵀ [K, M].
        let dx = want_dx.then(|| kernels::matmul_nt(g, n, m, &transpose(w, m, k), k));
        // dw = gᵀ · x: rows of gᵀ [M, N] against the rows of xᵀ [K, N].
        let dw = want_dw.then(|| {
            let (gt, xt) = (transpose(g, n, m), transpose(x, n, k));
            kernels::matmul_nt(&gt, m, n, &xt, k)
        });
        (dx, dw)
    }
}

/// `x[.., K] · w[M, K]ᵀ` → `[.., M]` on the packed product kernels, differentiable in both.
/// CPU f32 only ([`fused_ok`]); `w` is made contiguous.
pub fn linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    linear_with(x, w, MatmulPrecision::F32)
}

/// [`linear`] with the operands of its forward and backward products at `precision`.
pub fn linear_with(
    x: &Tensor,
    w: &Tensor,
    precision: MatmulPrecision,
) -> candle_core::Result<Tensor> {
    linear_sunk(x, w, precision, None)
}

/// [`linear_with`] whose backward adds the weight's gradient into `sink` when the sink
/// holds `w` and has a buffer lent ([`GradSink`]); candle then gets no gradient for `w`.
pub fn linear_sunk(
    x: &Tensor,
    w: &Tensor,
    precision: MatmulPrecision,
    sink: Option<&GradSink>,
) -> candle_core::Result<Tensor> {
    let sink = sink.filter(|s| s.holds(w)).cloned();
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Linear(precision, sink))
}

// ---------------------------------------------------------------------------------------
// masked softmax

/// `softmax(s · scale + mask)` over the last dim; `s` [B, X, Q, T], mask [B, Q, T]
/// (any shape with B·Q·T elements, e.g. [B,1,1,Q,T]), broadcast over X.
struct MaskedSoftmax {
    scale: f32,
    b: usize,
    q: usize,
    t: usize,
}

impl MaskedSoftmax {
    fn check(&self, s: usize, mask: usize) -> CResult<usize> {
        let (b, q, t) = (self.b, self.q, self.t);
        if b * q * t == 0 || mask != b * q * t || !s.is_multiple_of(b * q * t) {
            return Err(err(format!(
                "masked_softmax: {s} scores and {mask} mask values for B={b} Q={q} T={t}"
            )));
        }
        Ok(s / (b * q * t))
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "rzero-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let s = data(s1, l1, "masked_softmax scores")?;
        let mask = data(s2, l2, "masked_softmax mask")?;
        let x = self.check(s.len(), mask.len())?;
        let (q, t) = (self.q, self.t);
        let scale = self.scale;
        let mut out = vec![0f32; s.len()];
        // One task per (b, x) plane of Q rows.
        out.par_chunks_mut(q * t)
            .zip(s.par_chunks(q * t))
            .enumerate()
            .for_each(|(plane, (o, sp))| {
                let bi = plane / x;
                let mp = &mask[bi * q * t..(bi + 1) * q * t];
                for r in 0..q {
                    let (orow, srow, mrow) = (
                        &mut o[r * t..(r + 1) * t],
                        &sp[r * t..(r + 1) * t],
                        &mp[r * t..(r + 1) * t],
                    );
                    let mut mx = f32::NEG_INFINITY;
                    for j in 0..t {
                        let v = srow[j] * scale + mrow[j];
                        orow[j] = v;
                        mx = mx.max(v);
                    }
                    orow.iter_mut().for_each(|v| *v -= mx);
                    crate::simd::exp_inplace(orow);
                    let sum: f32 = orow.iter().sum();
                    let inv = 1.0 / sum;
                    orow.iter_mut().for_each(|v| *v *= inv);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        s: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let t = self.t;
        let scale = self.scale;
        let ds = with_data(res, |p| {
            with_data(g, |g_| {
                let mut ds = vec![0f32; p.len()];
                ds.par_chunks_mut(t)
                    .zip(p.par_chunks(t).zip(g_.par_chunks(t)))
                    .for_each(|(d, (pr, gr))| {
                        let dot: f32 = pr.iter().zip(gr).map(|(a, b)| a * b).sum();
                        for j in 0..t {
                            d[j] = scale * pr[j] * (gr[j] - dot);
                        }
                    });
                Ok(ds)
            })
        })?;
        Ok((Some(tensor(ds, s.shape(), s)?), None))
    }
}

/// `softmax(scores · scale + mask)` over the last dim, differentiable in `scores`.
/// `scores` [B, X, Q, T] (any shape with that element order), `mask` B·Q·T additive values
/// (row-major [B, Q, T]) shared by the X planes of each b. CPU f32 only.
pub fn masked_softmax(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
    b: usize,
    q: usize,
    t: usize,
) -> candle_core::Result<Tensor> {
    scores.contiguous()?.apply_op2(
        &mask.contiguous()?,
        MaskedSoftmax {
            scale: scale as f32,
            b,
            q,
            t,
        },
    )
}

// ---------------------------------------------------------------------------------------
// RMSNorm

/// `x · rsqrt(mean(x²) + eps) · w` over the last dim; `w` [H].
struct RmsNorm {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row, as the composition computes it.
fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ss: f32 = row.iter().map(|v| v * v).sum();
    1.0 / (ss / row.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rzero-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = data(s1, l1, "rms_norm x")?;
        let w = data(s2, l2, "rms_norm w")?;
        let h = w.len();
        if l1.shape().dims().last() != Some(&h) {
            return Err(err("rms_norm: weight length is not the last dim"));
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(h)
            .zip(x.par_chunks(h))
            .for_each(|(o, xr)| {
                let inv = inv_rms(xr, self.eps);
                for j in 0..h {
                    o[j] = xr[j] * inv * w[j];
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let h = w.elem_count();
        let eps = self.eps;
        let (dx, dw) = with_data(x, |x_| {
            with_data(w, |w_| {
                with_data(g, |g_| {
                    let mut dx = vec![0f32; x_.len()];
                    // Per-chunk partial sums of dw, reduced after.
                    const CH: usize = 64;
                    let dws: Vec<Vec<f32>> = dx
                        .par_chunks_mut(CH * h)
                        .zip(x_.par_chunks(CH * h).zip(g_.par_chunks(CH * h)))
                        .map(|(d, (xc, gc))| {
                            let mut dw = vec![0f32; h];
                            for ((dr, xr), gr) in
                                d.chunks_mut(h).zip(xc.chunks(h)).zip(gc.chunks(h))
                            {
                                let inv = inv_rms(xr, eps);
                                // y = x̂·w, x̂ = x·inv: dx = inv·(g·w − x̂·mean(g·w·x̂)).
                                let mut dot = 0f32;
                                for j in 0..h {
                                    let xh = xr[j] * inv;
                                    dw[j] += gr[j] * xh;
                                    dot += gr[j] * w_[j] * xh;
                                }
                                let c = dot / h as f32;
                                for j in 0..h {
                                    dr[j] = inv * (gr[j] * w_[j] - xr[j] * inv * c);
                                }
                            }
                            dw
                        })
                        .collect();
                    let mut dw = vec![0f32; h];
                    for p in dws {
                        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
                    }
                    Ok((dx, dw))
                })
            })
        })?;
        Ok((
            Some(tensor(dx, x.shape(), x)?),
            Some(tensor(dw, w.shape(), w)?),
        ))
    }
}

/// RMSNorm over the last dim, differentiable in `x` and `w` ([H]). CPU f32 only.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })
}

// ---------------------------------------------------------------------------------------
// SiLU · gate

/// `silu(g) · u`, elementwise.
struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "rzero-silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let g = data(s1, l1, "silu_mul g")?;
        let u = data(s2, l2, "silu_mul u")?;
        if l1.shape() != l2.shape() {
            return Err(err("silu_mul: operands of different shapes"));
        }
        let mut out = g.to_vec();
        const CH: usize = 1 << 14;
        out.par_chunks_mut(CH)
            .zip(u.par_chunks(CH))
            .for_each(|(o, uc)| crate::simd::silu_mul(o, uc));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = with_data(g, |g_| {
            with_data(u, |u_| {
                with_data(dy, |d_| {
                    let mut dg = vec![0f32; g_.len()];
                    let mut du = vec![0f32; g_.len()];
                    const CH: usize = 1 << 14;
                    dg.par_chunks_mut(CH)
                        .zip(du.par_chunks_mut(CH))
                        .zip(
                            g_.par_chunks(CH)
                                .zip(u_.par_chunks(CH))
                                .zip(d_.par_chunks(CH)),
                        )
                        .for_each(|((dgc, duc), ((gc, uc), dc))| {
                            for i in 0..gc.len() {
                                let x = gc[i];
                                let s = 1.0 / (1.0 + (-x).exp());
                                let silu = x * s;
                                duc[i] = dc[i] * silu;
                                dgc[i] = dc[i] * uc[i] * s * (1.0 + x * (1.0 - s));
                            }
                        });
                    Ok((dg, du))
                })
            })
        })?;
        Ok((
            Some(tensor(dg, g.shape(), g)?),
            Some(tensor(du, u.shape(), u)?),
        ))
    }
}

/// `silu(g) · u`, differentiable in both. CPU f32 only.
pub fn silu_mul(g: &Tensor, u: &Tensor) -> candle_core::Result<Tensor> {
    g.contiguous()?.apply_op2(&u.contiguous()?, SiluMul)
}

// ---------------------------------------------------------------------------------------
// log-softmax at targets + entropy

/// Rows of logits [R, V] → [R, 2]: (log_softmax(row)[target], entropy(row)); the backward
/// flows through the first column only (the entropy is a detached statistic).
struct LogprobsEntropy {
    targets: Vec<u32>,
}

impl CustomOp1 for LogprobsEntropy {
    fn name(&self) -> &'static str {
        "rzero-logprobs-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = data(s, l, "logprobs logits")?;
        let (r, v) = l.shape().dims2()?;
        if self.targets.len() != r {
            return Err(err("logprobs: one target per row"));
        }
        if let Some(&bad) = self.targets.iter().find(|&&t| t as usize >= v) {
            return Err(err(format!("logprobs: target {bad} out of range ({v})")));
        }
        let mut out = vec![0f32; 2 * r];
        out.par_chunks_mut(2)
            .zip(x.par_chunks(v))
            .zip(self.targets.par_iter())
            .for_each_init(
                || (vec![0f32; v], vec![0f32; v]),
                |(buf, shifted), ((o, row), &tg)| {
                    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                    for ((b, sh), &xv) in buf.iter_mut().zip(shifted.iter_mut()).zip(row) {
                        *b = xv - m;
                        *sh = xv - m;
                    }
                    let picked = buf[tg as usize];
                    crate::simd::exp_inplace(buf);
                    // Σ e^(x−m) and Σ e^(x−m)·(x−m).
                    let mut s = 0f32;
                    let mut sx = 0f32;
                    for (e, d) in buf.iter().zip(shifted.iter()) {
                        s += e;
                        sx += e * d;
                    }
                    let lse = s.ln();
                    o[0] = picked - lse;
                    // H = −Σ p·(x − m − lse) = lse − Σ p·(x − m).
                    o[1] = lse - sx / s;
                },
            );
        Ok((CpuStorage::F32(out), Shape::from((r, 2))))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, g: &Tensor) -> CResult<Option<Tensor>> {
        let (r, v) = x.dims2()?;
        let dx = with_data(x, |x_| {
            with_data(res, |res_| {
                with_data(g, |g_| {
                    let mut dx = vec![0f32; r * v];
                    dx.par_chunks_mut(v)
                        .zip(x_.par_chunks(v))
                        .enumerate()
                        .for_each(|(i, (d, row))| {
                            let gi = g_[2 * i];
                            if gi == 0.0 {
                                return;
                            }
                            let tg = self.targets[i] as usize;
                            // logp = x[t] − LSE, so LSE = x[t] − logp; p = e^(x − LSE).
                            let lse = row[tg] - res_[2 * i];
                            for (dv, &xv) in d.iter_mut().zip(row) {
                                *dv = xv - lse;
                            }
                            crate::simd::exp_inplace(d);
                            d.iter_mut().for_each(|dv| *dv *= -gi);
                            d[tg] += gi;
                        });
                    Ok(dx)
                })
            })
        })?;
        Ok(Some(tensor(dx, (r, v), x)?))
    }
}

/// For logits rows [R, V] and one target per row: `[R, 2]` of (log-softmax at the target,
/// differentiable; entropy of the row, whose gradient is ignored). CPU f32 only.
pub fn logprobs_entropy(logits: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
    logits.contiguous()?.apply_op1(LogprobsEntropy {
        targets: targets.to_vec(),
    })
}
