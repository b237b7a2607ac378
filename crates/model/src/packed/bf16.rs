//! bf16 copies of a trained policy's f32 matrices for the packed path
//! ([`Model::attach_bf16`]).

use candle_core::Tensor;

use crate::compact::{CompactLayer, CompactMatrix, CompactModel};
use crate::transformer::Model;

impl Model {
    /// Gives every f32 weight matrix of the packed path that has no block-format copy (all
    /// of them for a trained policy; none for a GGUF model whose products are all in Q4_1 /
    /// Q8_0) a bf16 copy, rounded to nearest even, which [`Model::forward_packed`] then reads
    /// (widened exactly) instead: half the bytes per step, at the price of the rounding.
    /// Returns how many were made (0 off the packed CPU path or for non-f32 weights).
    ///
    /// The copies remember their tensors by id, and an in-place update (`Var::set`) keeps
    /// the id: call this on a clone of a policy after its update, and drop that clone before
    /// the next one (`engine::LocalSampler` over `engine::PolicyWeights::Bf16` does so).
    pub fn attach_bf16(&mut self) -> usize {
        if !self.packed_kernels() {
            return 0;
        }
        let mut cm = match &self.compact {
            Some(c) => (**c).clone(),
            None => CompactModel {
                layers: vec![CompactLayer::default(); self.layers.len()],
                lm_head: None,
            },
        };
        let mut count = 0;
        let mut fill = |slot: &mut Option<std::sync::Arc<CompactMatrix>>, t: &Tensor| {
            if slot.is_none() {
                *slot = CompactMatrix::bf16_of(t).map(std::sync::Arc::new);
                count += slot.is_some() as usize;
            }
        };
        for (cl, w) in cm.layers.iter_mut().zip(&self.layers) {
            fill(&mut cl.q, &w.q_w);
            fill(&mut cl.k, &w.k_w);
            fill(&mut cl.v, &w.v_w);
            fill(&mut cl.o, &w.o_w);
            fill(&mut cl.gate, &w.gate_w);
            fill(&mut cl.up, &w.up_w);
            fill(&mut cl.down, &w.down_w);
        }
        fill(&mut cm.lm_head, &self.lm_head);
        if count > 0 {
            self.compact = Some(std::sync::Arc::new(cm));
        }
        count
    }
}
