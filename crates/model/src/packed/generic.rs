//! The device-generic inference path: [`Model::forward_packed`] in candle ops, for a GPU and
//! for `--device cpu-generic` (the same code on the CPU, so that the CPU tests cover it).
//!
//! The linear layers run on the packed rows of all sequences (each weight read once per step),
//! with candle's fused inference kernels for RMSNorm, RoPE and softmax. The residual stream,
//! norms, RoPE and softmax are f32 (as in [`Model::forward`]); products, the KV cache and the
//! attention products are in the model dtype. Each sequence's cache is preallocated per layer
//! as `[kv_heads, capacity, head_dim]` on the device and written in place
//! ([`Tensor::slice_set`]); it grows by doubling, so decoding never re-concatenates it.
//! Attention reads the first `len` positions of it through a strided view (no copy).

use candle_core::{DType, Device, Tensor};

use super::{KvCache, SeqInput};
use crate::error::Result;
use crate::transformer::{Model, MASK_NEG};

/// Smallest capacity of a device cache, in positions.
const MIN_CAP: usize = 64;

/// A sequence's keys and values on the device, one `[kv_heads, cap, head_dim]` tensor per
/// layer each (zero-sized until the first append).
#[derive(Debug)]
pub(crate) struct DevKv {
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    pub(crate) layers: usize,
    pub(crate) cap: usize,
    /// Upper bound on `cap` (the model's context).
    pub(crate) max_cap: usize,
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
}

impl Clone for DevKv {
    /// A deep copy: the cache is written in place, so copies must not share storage.
    fn clone(&self) -> Self {
        let copy = |ts: &[Tensor]| -> Vec<Tensor> {
            ts.iter()
                .map(|t| {
                    t.copy()
                        .expect("copy of a device KV cache (out of device memory?)")
                })
                .collect()
        };
        DevKv {
            device: self.device.clone(),
            dtype: self.dtype,
            layers: self.layers,
            cap: self.cap,
            max_cap: self.max_cap,
            k: copy(&self.k),
            v: copy(&self.v),
        }
    }
}

impl DevKv {
    /// Makes room for `need` positions, keeping the first `keep`.
    fn reserve(&mut self, need: usize, keep: usize, heads: usize, d: usize) -> Result<()> {
        if need <= self.cap {
            return Ok(());
        }
        let cap = need
            .max(2 * self.cap)
            .max(MIN_CAP)
            .min(self.max_cap.max(need));
        let grow = |old: &Tensor| -> Result<Tensor> {
            let t = Tensor::zeros((heads, cap, d), self.dtype, &self.device)?;
            if keep > 0 {
                t.slice_set(&old.narrow(1, 0, keep)?.contiguous()?, 1, 0)?;
            }
            Ok(t)
        };
        if self.k.is_empty() {
            let t = || Tensor::zeros((heads, cap, d), self.dtype, &self.device);
            self.k = (0..self.layers)
                .map(|_| t())
                .collect::<candle_core::Result<_>>()?;
            self.v = (0..self.layers)
                .map(|_| t())
                .collect::<candle_core::Result<_>>()?;
        } else {
            for l in 0..self.layers {
                self.k[l] = grow(&self.k[l])?;
                self.v[l] = grow(&self.v[l])?;
            }
        }
        self.cap = cap;
        Ok(())
    }
}

impl KvCache {
    /// An empty device cache: `layers` layers of `heads` KV heads of `d` values in `dtype`
    /// (allocated at the first step).
    pub(crate) fn new_device(
        layers: usize,
        heads: usize,
        d: usize,
        dtype: DType,
        device: &Device,
        max_cap: usize,
    ) -> KvCache {
        KvCache {
            len: 0,
            heads,
            d,
            k: Vec::new(),
            v: Vec::new(),
            dev: Some(DevKv {
                device: device.clone(),
                dtype,
                layers,
                cap: 0,
                max_cap,
                k: Vec::new(),
                v: Vec::new(),
            }),
        }
    }
}

impl Model {
    /// [`Model::forward_packed`] in candle ops (see the module notes). `pos`/`offs` come from
    /// the shared validation; every cache is a device cache of this model.
    pub(crate) fn forward_generic(
        &self,
        seqs: &mut [SeqInput<'_>],
        ids: Vec<u32>,
        pos: &[usize],
        offs: &[usize],
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let rep = nh / nkv;
        let half = d / 2;
        let eps = cfg.rms_norm_eps as f32;
        let dev = &self.device;
        let ad = self.act_dtype();
        let dt = self.dtype;
        let n = ids.len();
        let scale = 1.0 / (d as f64).sqrt();
        // Room for the new positions in every cache (before any write).
        for s in seqs.iter_mut() {
            let (len, t) = (s.cache.len, s.tokens.len());
            let kv = s.cache.dev.as_mut().expect("a device cache");
            kv.reserve(len + t, len, nkv, d)?;
        }
        // RoPE tables [N, D/2] at each row's position, computed as the CPU path does.
        let mut cos = vec![0f32; n * half];
        let mut sin = vec![0f32; n * half];
        for (r, &p) in pos.iter().enumerate() {
            for (j, &f) in self.inv_freq.iter().enumerate() {
                let ang = p as f32 * f;
                cos[r * half + j] = ang.cos() * self.rope_mscale;
                sin[r * half + j] = ang.sin() * self.rope_mscale;
            }
        }
        let cos = Tensor::from_vec(cos, (n, half), dev)?.to_dtype(ad)?;
        let sin = Tensor::from_vec(sin, (n, half), dev)?.to_dtype(ad)?;
        // Causal masks within each sequence's new chunk ([t, len + t], additive), when t > 1.
        let masks: Vec<Option<Tensor>> = seqs
            .iter()
            .map(|s| {
                let (len, t) = (s.cache.len, s.tokens.len());
                if t == 1 {
                    return Ok(None);
                }
                let l = len + t;
                let mut m = vec![0f32; t * l];
                for i in 0..t {
                    for j in (len + i + 1)..l {
                        m[i * l + j] = MASK_NEG;
                    }
                }
                Ok(Some(Tensor::from_vec(m, (t, l), dev)?.to_dtype(ad)?))
            })
            .collect::<Result<_>>()?;
        let ids_t = Tensor::from_vec(ids, n, dev)?;
        let mut x = self.embed.index_select(&ids_t, 0)?.to_dtype(ad)?; // [N, H]
        for (li, layer) in self.layers.iter().enumerate() {
            // Attention block.
            let hn = candle_nn::ops::rms_norm(&x, &layer.in_norm, eps)?;
            let q = self.linear(&hn, &layer.q_w, layer.q_b.as_ref())?;
            let k = self.linear(&hn, &layer.k_w, layer.k_b.as_ref())?;
            let v = self.linear(&hn, &layer.v_w, layer.v_b.as_ref())?;
            let mut q = q.reshape((n, nh, d))?;
            let mut k = k.reshape((n, nkv, d))?;
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                q = candle_nn::ops::rms_norm(&q.contiguous()?, qn, eps)?;
                k = candle_nn::ops::rms_norm(&k.contiguous()?, kn, eps)?;
            }
            let q = candle_nn::rotary_emb::rope_thd(&q.unsqueeze(0)?.contiguous()?, &cos, &sin)?
                .squeeze(0)?
                .to_dtype(dt)?; // [N, nh, D]
            let k = candle_nn::rotary_emb::rope_thd(&k.unsqueeze(0)?.contiguous()?, &cos, &sin)?
                .squeeze(0)?
                .to_dtype(dt)?; // [N, nkv, D]
            let v = v.reshape((n, nkv, d))?.to_dtype(dt)?;
            let mut outs = Vec::with_capacity(seqs.len());
            for (si, s) in seqs.iter_mut().enumerate() {
                let (a, t) = (offs[si], offs[si + 1] - offs[si]);
                let len = s.cache.len;
                let l = len + t;
                let kv = s.cache.dev.as_mut().expect("a device cache");
                let (kc, vc) = (&kv.k[li], &kv.v[li]);
                kc.slice_set(&k.narrow(0, a, t)?.transpose(0, 1)?.contiguous()?, 1, len)?;
                vc.slice_set(&v.narrow(0, a, t)?.transpose(0, 1)?.contiguous()?, 1, len)?;
                let keys = kc.narrow(1, 0, l)?; // [nkv, L, D], strided view
                let vals = vc.narrow(1, 0, l)?;
                // GQA without copying K/V: the query heads of one KV head stacked along T.
                let qs =
                    q.narrow(0, a, t)?
                        .transpose(0, 1)?
                        .contiguous()?
                        .reshape((nkv, rep * t, d))?;
                let scores = (qs.matmul(&keys.t()?)?.to_dtype(ad)? * scale)?; // [nkv, rep*t, L]
                let scores = match &masks[si] {
                    Some(m) => scores
                        .reshape((nkv, rep, t, l))?
                        .broadcast_add(m)?
                        .reshape((nkv, rep * t, l))?,
                    None => scores,
                };
                let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dt)?;
                let o = probs.matmul(&vals)?; // [nkv, rep*t, D] = [nh, t, D]
                outs.push(
                    o.reshape((nh, t, d))?
                        .transpose(0, 1)?
                        .reshape((t, nh * d))?,
                );
            }
            let attn = if outs.len() == 1 {
                outs.pop().expect("one sequence")
            } else {
                Tensor::cat(&outs, 0)?
            };
            let o = self.linear(&attn, &layer.o_w, None)?;
            x = (x + o)?;
            // MLP block: down(silu(gate(x)) * up(x)).
            let hn = candle_nn::ops::rms_norm(&x, &layer.post_norm, eps)?.to_dtype(dt)?;
            let g = hn.matmul(&layer.gate_w.t()?)?;
            let u = hn.matmul(&layer.up_w.t()?)?;
            let y = (g.silu()? * u)?.matmul(&layer.down_w.t()?)?.to_dtype(ad)?;
            x = (x + y)?;
        }
        for (si, s) in seqs.iter_mut().enumerate() {
            s.cache.len += offs[si + 1] - offs[si];
        }
        // Output projection of each sequence's last new row only.
        let last: Vec<u32> = offs[1..].iter().map(|&o| (o - 1) as u32).collect();
        let nl = last.len();
        let xl = x.index_select(&Tensor::from_vec(last, nl, dev)?, 0)?;
        let xl = candle_nn::ops::rms_norm(&xl, &self.norm, eps)?;
        Ok(self.logits(&xl)?.to_dtype(DType::F32)?)
    }
}
