//! [`lora_merge`]: the LoRA-merged weight `W + (s·B)·A` as one differentiable op in `A` and
//! `B`, with the frozen `W` captured as a constant.
//!
//! The composition of candle ops (`crate::lora::merged_weight` on other devices and dtypes)
//! gives the frozen `W` and the product `(s·B)·A` gradients too: candle's backward adds the
//! merged weight's gradient into a `zeros_like` of each (two [out, in] tensors and two passes
//! per adapted module and micro-batch, the first never read). This op returns the gradients
//! of `A` and `B` only, computed by the same candle products in the same order, so they equal
//! the composition's bit for bit (`tests/ops.rs`).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

use super::{data, err, with_data, CResult};

struct LoraMerge {
    /// The frozen base weight [out, in], f32.
    w: Tensor,
    scale: f64,
}

impl LoraMerge {
    /// `(s·B)·A` [out, in], as the composition computes it.
    fn delta(&self, b: &Tensor, a: &Tensor) -> CResult<Tensor> {
        (b * self.scale)?.matmul(a)
    }
}

impl CustomOp2 for LoraMerge {
    fn name(&self) -> &'static str {
        "rzero-lora-merge"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let dev = candle_core::Device::Cpu;
        let b = Tensor::from_slice(data(s1, l1, "lora_merge b")?, l1.shape(), &dev)?;
        let a = Tensor::from_slice(data(s2, l2, "lora_merge a")?, l2.shape(), &dev)?;
        let delta = self.delta(&b, &a)?;
        if delta.dims() != self.w.dims() {
            return Err(err(format!(
                "lora_merge: B·A {:?} against W {:?}",
                delta.dims(),
                self.w.dims()
            )));
        }
        // W + delta, elementwise (an IEEE sum: the same floats as candle's add).
        let out = with_data(&self.w, |w| {
            with_data(&delta, |d| {
                Ok(w.iter().zip(d).map(|(w, d)| w + d).collect())
            })
        })?;
        Ok((CpuStorage::F32(out), self.w.shape().clone()))
    }

    fn bwd(
        &self,
        b: &Tensor,
        a: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        // The composition's backward: `delta = sb · a` (a matmul) with `sb = b · s` (affine).
        let sb = (b.detach() * self.scale)?;
        let db = b
            .track_op()
            .then(|| g.matmul(&a.detach().t()?)?.affine(self.scale, 0.))
            .transpose()?;
        let da = a.track_op().then(|| sb.t()?.matmul(g)).transpose()?;
        Ok((db, da))
    }
}

/// `w + (scale · b) · a` for `w` [out, in] (a constant: no gradient), `a` [r, in] and `b`
/// [out, r], differentiable in `a` and `b`; f32 CPU tensors only ([`super::fused_ok`]). The
/// same values and gradients as the composition `w + (b · scale).matmul(a)`.
pub fn lora_merge(w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> CResult<Tensor> {
    let op = LoraMerge {
        w: w.detach().contiguous()?,
        scale,
    };
    b.contiguous()?.apply_op2(&a.contiguous()?, op)
}
