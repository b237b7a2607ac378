//! Shared-prefix forward: one prefix (a prompt) and `G` branches (its responses) that
//! continue it, computed as one stream of `P + G·R` rows instead of `G` sequences of `P + R`.
//!
//! The prefix rows run once (causal among themselves, positions `0..P`); each branch's rows
//! (positions `P..P+R`, right-padded) attend to the prefix's keys and values, broadcast to
//! the `G` branches, and causally to their own. Differentiable: the gradients of all branches
//! flow back into the prefix rows through the broadcast, so the gradient equals the one of
//! the `G` unshared sequences up to float reassociation (`tests/shared_prefix.rs`).
//!
//! The stream layout is `[prefix rows (P) | branch 0 rows (R) | … | branch G-1 rows (R)]`;
//! every product runs on all rows at once. Like [`Model::decoder_inputs`] /
//! [`Model::layer_forward`], the pieces ([`Model::shared_inputs`], [`Model::embed`] of
//! [`SharedInputs::ids`], [`Model::layer_forward_shared`], [`Model::final_norm`]) let
//! activation recomputation run layer by layer.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::transformer::{rope, Model, MASK_NEG};

/// What every decoder layer of one shared-prefix batch needs ([`Model::shared_inputs`]).
#[derive(Debug, Clone)]
pub struct SharedInputs {
    /// Prefix length.
    pub p: usize,
    /// Number of branches.
    pub g: usize,
    /// Branch length (the longest; shorter ones are right-padded).
    pub r: usize,
    /// The stream's token ids [P + G·R] u32 (pads as given).
    ids: Tensor,
    /// Additive masks: prefix [1,1,1,P,P] (causal), branches [G,1,1,R,P+R].
    prefix_mask: Tensor,
    branch_mask: Tensor,
    /// RoPE tables: prefix [1,1,P,D] (positions 0..P), branches [1,1,R,D] (P..P+R).
    cos_p: Tensor,
    sin_p: Tensor,
    cos_b: Tensor,
    sin_b: Tensor,
    /// Real tokens per branch.
    lens: Vec<usize>,
}

impl SharedInputs {
    /// The stream's ids [P + G·R] (prefix, then each branch), for [`Model::embed`].
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// Rows of the stream.
    pub fn rows(&self) -> usize {
        self.p + self.g * self.r
    }

    /// Real tokens of each branch (its mask's sum).
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// For branch `i` and token `j` (row-major [G, R]): the stream row whose output predicts
    /// branch token `j` — the last prefix row for `j = 0`, else branch row `j - 1`.
    pub fn next_token_rows(&self) -> Vec<usize> {
        let (p, r) = (self.p, self.r);
        (0..self.g)
            .flat_map(|i| (0..r).map(move |j| if j == 0 { p - 1 } else { p + i * r + j - 1 }))
            .collect()
    }
}

impl Model {
    /// Checks a prefix `[P]` (or `[1,P]`) and right-padded branches `[G,R]` with their
    /// optional mask `[G,R]` (1 = token, 0 = right padding after the branch's tokens), and
    /// builds what every decoder layer needs for the shared-prefix stream.
    pub fn shared_inputs(
        &self,
        prefix: &Tensor,
        branches: &Tensor,
        branch_mask: Option<&Tensor>,
    ) -> Result<SharedInputs> {
        let prefix = prefix.flatten_all()?;
        let p = prefix.dim(0)?;
        let (g, r) = branches.dims2().map_err(|_| {
            Error::Invalid(format!("branches must be [G,R], got {:?}", branches.dims()))
        })?;
        if p == 0 || g == 0 || r == 0 {
            return Err(Error::Invalid(format!(
                "shared prefix needs P, G, R >= 1, got P={p} G={g} R={r}"
            )));
        }
        if prefix.dtype() != DType::U32 || branches.dtype() != DType::U32 {
            return Err(Error::Invalid("prefix and branch ids must be u32".into()));
        }
        let ids = Tensor::cat(&[&prefix, &branches.flatten_all()?], 0)?;
        self.check_ids(&ids.to_vec1::<u32>()?, p + r)?;
        let mask: Vec<Vec<u32>> = match branch_mask {
            None => vec![vec![1; r]; g],
            Some(m) => {
                if m.dims() != [g, r] {
                    return Err(Error::Invalid(format!(
                        "branch mask must be [{g},{r}], got {:?}",
                        m.dims()
                    )));
                }
                m.to_dtype(DType::U32)?.to_vec2::<u32>()?
            }
        };
        let ad = self.act_dtype();
        let dev = &self.device;
        let mut pm = vec![0f32; p * p];
        for qi in 0..p {
            for ki in qi + 1..p {
                pm[qi * p + ki] = MASK_NEG;
            }
        }
        let t = p + r;
        let mut bm = vec![0f32; g * r * t];
        for (bi, mrow) in mask.iter().enumerate() {
            for qi in 0..r {
                for kj in 0..r {
                    if kj > qi || mrow[kj] == 0 {
                        bm[(bi * r + qi) * t + p + kj] = MASK_NEG;
                    }
                }
            }
        }
        let lens = mask
            .iter()
            .map(|m| m.iter().filter(|&&x| x != 0).count())
            .collect();
        let pos_p: Vec<u32> = (0..p as u32).collect();
        let pos_b: Vec<u32> = (p as u32..(p + r) as u32).collect();
        let (cos_p, sin_p) = self.rope_tables(&pos_p, 1, p)?;
        let (cos_b, sin_b) = self.rope_tables(&pos_b, 1, r)?;
        Ok(SharedInputs {
            p,
            g,
            r,
            ids,
            prefix_mask: Tensor::from_vec(pm, (1, 1, 1, p, p), dev)?.to_dtype(ad)?,
            branch_mask: Tensor::from_vec(bm, (g, 1, 1, r, t), dev)?.to_dtype(ad)?,
            cos_p,
            sin_p,
            cos_b,
            sin_b,
            lens,
        })
    }

    /// The shared-prefix stream after the final norm, [P + G·R, H] (prefix rows, then each
    /// branch's R rows). Differentiable. The same as [`Model::embed`] of
    /// [`SharedInputs::ids`], [`Model::layer_forward_shared`] for every layer and
    /// [`Model::final_norm`].
    pub fn forward_hidden_shared(&self, inp: &SharedInputs) -> Result<Tensor> {
        let mut x = self.embed(inp.ids())?;
        for l in 0..self.num_layers() {
            x = self.layer_forward_shared(l, &x, inp)?;
        }
        self.final_norm(&x)
    }

    /// Decoder layer `l` on the shared-prefix stream `x` [P + G·R, H] (activation dtype).
    /// Differentiable.
    pub fn layer_forward_shared(&self, l: usize, x: &Tensor, inp: &SharedInputs) -> Result<Tensor> {
        let layer = self.layer(l)?;
        let cfg = &self.cfg;
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let (p, g, r) = (inp.p, inp.g, inp.r);
        let fused = self.fused(x);
        // 1. Attention block: q/k/v of all rows at once.
        let hn = self.rms(x, &layer.in_norm, fused)?;
        let mut q = self.linear(&hn, &layer.q_w, layer.q_b.as_ref())?; // [N, nh*D]
        let mut k = self.linear(&hn, &layer.k_w, layer.k_b.as_ref())?; // [N, nkv*D]
        let v = self.linear(&hn, &layer.v_w, layer.v_b.as_ref())?;
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = self.rms(&q.reshape((q.dim(0)?, nh, d))?, qn, fused)?;
            k = self.rms(&k.reshape((k.dim(0)?, nkv, d))?, kn, fused)?;
        }
        // [rows, heads*D] of one part -> [B, heads, T, D], RoPE'd for q and k.
        let heads = |t: &Tensor, start: usize, b: usize, len: usize, n: usize| -> Result<Tensor> {
            Ok(t.narrow(0, start, b * len)?
                .reshape((b, len, n, d))?
                .transpose(1, 2)?)
        };
        let (cp, sp, cb, sb) = (&inp.cos_p, &inp.sin_p, &inp.cos_b, &inp.sin_b);
        let qp = rope(&heads(&q, 0, 1, p, nh)?, cp, sp)?;
        let kp = rope(&heads(&k, 0, 1, p, nkv)?, cp, sp)?;
        let vp = heads(&v, 0, 1, p, nkv)?.contiguous()?;
        let qb = rope(&heads(&q, p, g, r, nh)?, cb, sb)?;
        let kb = rope(&heads(&k, p, g, r, nkv)?, cb, sb)?;
        let vb = heads(&v, p, g, r, nkv)?.contiguous()?;
        // Branch keys/values: the prefix's (broadcast to every branch), then their own.
        let kp = kp.to_dtype(self.dtype)?;
        let vp = vp.to_dtype(self.dtype)?;
        let kall = Tensor::cat(
            &[&kp.broadcast_as((g, nkv, p, d))?, &kb.to_dtype(self.dtype)?],
            2,
        )?
        .contiguous()?;
        let vall = Tensor::cat(
            &[&vp.broadcast_as((g, nkv, p, d))?, &vb.to_dtype(self.dtype)?],
            2,
        )?
        .contiguous()?;
        let op = self.attend(&qp, &kp, &vp, &inp.prefix_mask, 1, p, p, fused)?;
        let ob = self.attend(&qb, &kall, &vall, &inp.branch_mask, g, r, p + r, fused)?;
        let o = Tensor::cat(&[&op, &ob], 0)?;
        let o = self.linear(&o, &layer.o_w, None)?;
        self.mlp_block(layer, &(x + o)?, fused)
    }
}
