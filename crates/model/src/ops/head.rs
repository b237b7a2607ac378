//! The head's product with [`MatmulPrecision::Bf16`](super::MatmulPrecision) on AMX, its
//! weight packed once for all the chunks of rows of a [`crate::logprobs::token_logprobs`]
//! call instead of twice per chunk (the head is `[V, H]`, 28 M values for SmolLM2: packing
//! it cost about a third of each chunk's forward product).
//!
//! [`PackedHead`] holds the weight `w [V, H]` in both tile orders its products read: `wᵀ` for
//! the forward `x · wᵀ` (packed when it is made) and `w` for the backward `dx = g · w`
//! (packed by the first backward, so a call without one, a reference model's, never packs
//! it). `dw = gᵀ · x` is the bf16 linear's. The sums are the same as
//! [`super::linear_with`]'s, bit for bit.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::{data, dw_bf16, err, product_shape, tensor, weight_grad, with_data, CResult, GradSink};
use crate::kernels::amx::{self, Mat, PackedB};

/// A weight `w [M, K]` packed for the bf16 products of `x · wᵀ` and `g · w`.
pub struct PackedHead {
    m: usize,
    k: usize,
    /// B = wᵀ (`K × M`).
    fwd: PackedB,
    /// B = w (`M × K`), packed by the first backward.
    bwd: OnceLock<PackedB>,
}

impl PackedHead {
    /// `w` [M, K] (CPU f32) packed, or `None` where bf16 products do not run on AMX.
    pub fn new(w: &Tensor) -> CResult<Option<Arc<PackedHead>>> {
        if !amx::amx_usable() {
            return Ok(None);
        }
        let (m, k) = w.dims2()?;
        with_data(w, |w_| {
            let fwd = PackedB::new(
                Mat {
                    d: w_,
                    rs: 1,
                    cs: k,
                },
                k,
                m,
            );
            let bwd = OnceLock::new();
            Ok(Some(Arc::new(PackedHead { m, k, fwd, bwd })))
        })
    }
}

struct HeadLinear(Arc<PackedHead>, Option<GradSink>);

impl CustomOp2 for HeadLinear {
    fn name(&self) -> &'static str {
        "rzero-head-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = data(s1, l1, "head x")?;
        let (m, k) = (self.0.m, self.0.k);
        let dims = l1.shape().dims();
        if dims.last() != Some(&k) || l2.shape().dims() != [m, k] {
            return Err(err(format!(
                "head: x {dims:?} and w {:?} against the packed [{m}, {k}]",
                l2.shape().dims()
            )));
        }
        let n = x.len() / k.max(1);
        let out = amx::gemm_bf16_packed(Mat { d: x, rs: k, cs: 1 }, &self.0.fwd, n);
        Ok((CpuStorage::F32(out), product_shape(dims, m)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (m, k) = (self.0.m, self.0.k);
        let n = x.elem_count() / k.max(1);
        with_data(g, |g_| {
            // dx[N, K] = g[N, M] · w[M, K].
            let dx = if x.track_op() {
                let bwd = match self.0.bwd.get() {
                    Some(b) => b,
                    None => {
                        let b = with_data(w, |w_| {
                            Ok(PackedB::new(
                                Mat {
                                    d: w_,
                                    rs: k,
                                    cs: 1,
                                },
                                m,
                                k,
                            ))
                        })?;
                        self.0.bwd.get_or_init(|| b)
                    }
                };
                let a = Mat {
                    d: g_,
                    rs: m,
                    cs: 1,
                };
                let dx = amx::gemm_bf16_packed(a, bwd, n);
                Some(tensor(dx, x.shape(), x)?)
            } else {
                None
            };
            // dW into the weight's sink when it takes it (as `Linear` does).
            let dw = if w.track_op() {
                with_data(x, |x_| Ok(Some(dw_bf16(g_, x_, m, k, n))))?
            } else {
                None
            };
            Ok((dx, weight_grad(dw, self.1.as_ref(), w)?))
        })
    }
}

/// `x[.., K] · w[M, K]ᵀ` with bf16 operands on AMX, `w` read from `packed` (which must be
/// `w` packed: [`PackedHead::new`]); differentiable in both, as
/// `linear_with(x, w, MatmulPrecision::Bf16)`; with a sink holding `w`, its gradient goes
/// into the sink ([`GradSink`]) as `linear_sunk`'s does.
pub fn head_linear(
    x: &Tensor,
    w: &Tensor,
    packed: &Arc<PackedHead>,
    sink: Option<&GradSink>,
) -> CResult<Tensor> {
    let sink = sink.filter(|s| s.holds(w)).cloned();
    x.contiguous()?
        .apply_op2(&w.contiguous()?, HeadLinear(Arc::clone(packed), sink))
}
