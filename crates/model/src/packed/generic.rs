//! The device-generic inference path: [`Model::forward_packed`] in candle ops, for a GPU and
//! for `--device cpu-generic` (the same code on the CPU, so that the CPU tests cover it).
//!
//! The linear layers run on the packed rows of all sequences (each weight read once per step),
//! with candle's fused inference kernels for RMSNorm, RoPE and softmax. The residual stream,
//! norms, RoPE and softmax are f32 (as in [`Model::forward`]); products, the KV cache and the
//! attention products are in the model dtype.
//!
//! **KV cache**: one pool per model (shared by its clones), per layer a K and a V tensor of
//! `[slots, kv_heads, capacity, head_dim]` on the device; each sequence's cache owns one slot
//! (taken at its first step, given back when the cache is dropped). New keys and values of
//! all sequences are written in place with one scatter per layer ([`Tensor::scatter_set`]);
//! the pool grows by doubling (slots or capacity), so decoding never re-concatenates.
//!
//! **Attention**: the decoding sequences of a step (one new token each) run as one batched
//! attention per layer: their queries `[M, kv_heads, rep, D]` against the pool's slots
//! (a strided view of a window of slots when they are dense, else one gather), positions
//! past each sequence's length masked. Sequences with several new tokens (prefill chunks)
//! attend one by one to their own slot with a causal mask.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::{KvCache, SeqInput};
use crate::error::{Error, Result};
use crate::kvpool::lock;
pub(crate) use crate::kvpool::{pool_slots, KvPool, SharedPool};
use crate::transformer::{Model, MASK_NEG};

/// A sequence's cache on the device: a slot of its model's pool.
#[derive(Debug)]
pub(crate) struct DevKv {
    pub(crate) pool: SharedPool,
    /// The slot (taken at the first step).
    pub(crate) slot: Option<usize>,
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    pub(crate) layers: usize,
}

impl Drop for DevKv {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            if let Some(u) = lock(&self.pool).used.get_mut(s) {
                *u = false;
            }
        }
    }
}

impl Clone for DevKv {
    /// A copy in a slot of its own (the cache is written in place, so copies must not
    /// share a slot).
    fn clone(&self) -> Self {
        let slot = self.slot.map(|a| {
            let mut p = lock(&self.pool);
            let b = p
                .take()
                .expect("a slot for a copy of a device KV cache (out of device memory?)");
            for l in 0..p.layers {
                for t in [&p.k[l], &p.v[l]] {
                    let src = t
                        .narrow(0, a, 1)
                        .and_then(|x| x.copy())
                        .and_then(|x| t.slice_set(&x, 0, b));
                    src.expect("copy of a device KV cache slot");
                }
            }
            b
        });
        DevKv {
            pool: self.pool.clone(),
            slot,
            device: self.device.clone(),
            dtype: self.dtype,
            layers: self.layers,
        }
    }
}

impl KvCache {
    /// An empty cache in `pool` (its slot is taken at the first step).
    pub(crate) fn new_device(pool: &SharedPool, heads: usize, d: usize) -> KvCache {
        let p = lock(pool);
        KvCache {
            len: 0,
            heads,
            d,
            k: Vec::new(),
            v: Vec::new(),
            dev: Some(DevKv {
                pool: pool.clone(),
                slot: None,
                device: p.device.clone(),
                dtype: p.dtype,
                layers: p.layers,
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
        let eps = self.cfg.rms_norm_eps as f32;
        let dev = &self.device;
        let n = ids.len();
        // The pool of every cache (one, this model's), a slot per sequence, room for the new
        // positions (before any write).
        let pool = self.kv_pool.clone();
        let mut guard = lock(&pool);
        let p = &mut *guard;
        let step = self.generic_step(seqs, p, &pool, pos, offs)?;
        let ids_t = Tensor::from_vec(ids, n, dev)?;
        let mut x = self
            .embed
            .index_select(&ids_t, 0)?
            .to_dtype(self.act_dtype())?; // [N, H]
        for li in 0..self.layers.len() {
            x = self.generic_layer(li, &x, p, &step)?;
        }
        drop(guard);
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

    /// Takes a slot of `p` for every sequence, makes room for the new positions, and lays
    /// out what every layer of the step shares ([`GenericStep`]).
    fn generic_step(
        &self,
        seqs: &mut [SeqInput<'_>],
        p: &mut KvPool,
        pool: &SharedPool,
        pos: &[usize],
        offs: &[usize],
    ) -> Result<GenericStep> {
        let (d, nkv) = (self.cfg.head_dim, self.cfg.num_key_value_heads);
        let (dev, ad) = (&self.device, self.act_dtype());
        let n = pos.len();
        let mut need = 0;
        for (si, s) in seqs.iter().enumerate() {
            let kv = s.cache.dev.as_ref().expect("a device cache");
            if !Arc::ptr_eq(&kv.pool, pool) {
                return Err(Error::Invalid(format!(
                    "forward_packed: sequence {si}'s cache was made by another model"
                )));
            }
            need = need.max(s.cache.len + s.tokens.len());
        }
        p.grow(p.slots, need)?;
        let mut slots = Vec::with_capacity(seqs.len());
        for s in seqs.iter_mut() {
            let kv = s.cache.dev.as_mut().expect("a device cache");
            let slot = match kv.slot {
                Some(x) => x,
                None => {
                    let x = p.take()?;
                    kv.slot = Some(x);
                    x
                }
            };
            slots.push(slot);
        }
        let (cap, lens): (usize, Vec<usize>) = (p.cap, seqs.iter().map(|s| s.cache.len).collect());
        // Where each new row's key/value goes: row (slot·heads + h)·cap + position of the
        // pool viewed as [slots·heads·cap, d]; one index per element as scatter wants.
        let mut dst = Vec::with_capacity(n * nkv * d);
        for (si, &slot) in slots.iter().enumerate() {
            for (j, _) in (offs[si]..offs[si + 1]).enumerate() {
                for h in 0..nkv {
                    let r = ((slot * nkv + h) * cap + lens[si] + j) as u32;
                    dst.extend(std::iter::repeat_n(r, d));
                }
            }
        }
        let dst = Tensor::from_vec(dst, (n * nkv, d), dev)?;
        // Decoding sequences (one new token) attend as one batch; the others one by one.
        let dec: Vec<usize> = (0..seqs.len())
            .filter(|&si| offs[si + 1] - offs[si] == 1)
            .collect();
        let pre: Vec<usize> = (0..seqs.len())
            .filter(|&si| offs[si + 1] - offs[si] > 1)
            .collect();
        let batch = if dec.is_empty() {
            None
        } else {
            Some(DecodeBatch::new(
                &dec.iter().map(|&si| slots[si]).collect::<Vec<_>>(),
                &dec.iter().map(|&si| lens[si] + 1).collect::<Vec<_>>(),
                &dec.iter().map(|&si| offs[si] as u32).collect::<Vec<_>>(),
                n,
                ad,
                dev,
            )?)
        };
        // Output row order: decode rows first, then each prefill chunk; `order` puts them
        // back in packed order (None when already in order).
        let order = if pre.is_empty() {
            None
        } else {
            let mut at = vec![0u32; n];
            let mut k = 0u32;
            for &si in dec.iter().chain(&pre) {
                for a in &mut at[offs[si]..offs[si + 1]] {
                    *a = k;
                    k += 1;
                }
            }
            Some(Tensor::from_vec(at, n, dev)?)
        };
        let (cos, sin) = self.generic_rope(pos)?;
        // Causal masks of the prefill chunks ([t, len + t], additive).
        let masks: Vec<Tensor> = pre
            .iter()
            .map(|&si| {
                let (len, t) = (lens[si], offs[si + 1] - offs[si]);
                let l = len + t;
                let mut m = vec![0f32; t * l];
                for i in 0..t {
                    for j in (len + i + 1)..l {
                        m[i * l + j] = MASK_NEG;
                    }
                }
                Ok(Tensor::from_vec(m, (t, l), dev)?.to_dtype(ad)?)
            })
            .collect::<Result<_>>()?;
        Ok(GenericStep {
            offs: offs.to_vec(),
            slots,
            lens,
            cap,
            dst,
            pre,
            batch,
            order,
            masks,
            cos,
            sin,
        })
    }

    /// RoPE tables [N, D/2] at each row's position, computed as the CPU path does.
    fn generic_rope(&self, pos: &[usize]) -> Result<(Tensor, Tensor)> {
        let half = self.cfg.head_dim / 2;
        let (dev, ad) = (&self.device, self.act_dtype());
        let n = pos.len();
        let mut cos = vec![0f32; n * half];
        let mut sin = vec![0f32; n * half];
        for (r, &q) in pos.iter().enumerate() {
            for (j, &f) in self.inv_freq.iter().enumerate() {
                let ang = q as f32 * f;
                cos[r * half + j] = ang.cos() * self.rope_mscale;
                sin[r * half + j] = ang.sin() * self.rope_mscale;
            }
        }
        let cos = Tensor::from_vec(cos, (n, half), dev)?.to_dtype(ad)?;
        let sin = Tensor::from_vec(sin, (n, half), dev)?.to_dtype(ad)?;
        Ok((cos, sin))
    }

    /// Decoder layer `li` of the generic path on the packed stream `x` [N, H]: writes the
    /// new keys and values into the pool `p` and returns the stream after the layer.
    fn generic_layer(&self, li: usize, x: &Tensor, p: &KvPool, st: &GenericStep) -> Result<Tensor> {
        let cfg = &self.cfg;
        let layer = &self.layers[li];
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let rep = nh / nkv;
        let eps = cfg.rms_norm_eps as f32;
        let (ad, dt) = (self.act_dtype(), self.dtype);
        let n = x.dim(0)?;
        let scale = 1.0 / (d as f64).sqrt();
        // Attention block.
        let hn = candle_nn::ops::rms_norm(x, &layer.in_norm, eps)?;
        let q = self.linear(&hn, &layer.q_w, layer.q_b.as_ref())?;
        let k = self.linear(&hn, &layer.k_w, layer.k_b.as_ref())?;
        let v = self.linear(&hn, &layer.v_w, layer.v_b.as_ref())?;
        let mut q = q.reshape((n, nh, d))?;
        let mut k = k.reshape((n, nkv, d))?;
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = candle_nn::ops::rms_norm(&q.contiguous()?, qn, eps)?;
            k = candle_nn::ops::rms_norm(&k.contiguous()?, kn, eps)?;
        }
        let (cos, sin) = (&st.cos, &st.sin);
        let q = candle_nn::rotary_emb::rope_thd(&q.unsqueeze(0)?.contiguous()?, cos, sin)?
            .squeeze(0)?
            .to_dtype(dt)?; // [N, nh, D]
        let k = candle_nn::rotary_emb::rope_thd(&k.unsqueeze(0)?.contiguous()?, cos, sin)?
            .squeeze(0)?
            .to_dtype(dt)?; // [N, nkv, D]
        let v = v.reshape((n, nkv, d))?.to_dtype(dt)?;
        // All new keys and values into the pool: one scatter each.
        let rows = p.slots * nkv * st.cap;
        let (kp, vp) = (&p.k[li], &p.v[li]);
        kp.reshape((rows, d))?
            .scatter_set(&st.dst, &k.reshape((n * nkv, d))?.contiguous()?, 0)?;
        vp.reshape((rows, d))?
            .scatter_set(&st.dst, &v.reshape((n * nkv, d))?.contiguous()?, 0)?;
        let mut outs = Vec::with_capacity(1 + st.pre.len());
        if let Some(b) = &st.batch {
            outs.push(b.attend(&q, kp, vp, nkv, rep, d, scale, ad, dt)?);
        }
        for (i, &si) in st.pre.iter().enumerate() {
            outs.push(self.generic_prefill(&q, kp, vp, st, i, si)?);
        }
        let attn = if outs.len() == 1 {
            outs.pop().expect("one piece")
        } else {
            Tensor::cat(&outs, 0)?
        };
        let attn = match &st.order {
            Some(o) => attn.index_select(o, 0)?,
            None => attn,
        };
        let o = self.linear(&attn, &layer.o_w, None)?;
        let x = (x + o)?;
        // MLP block: down(silu(gate(x)) * up(x)).
        let hn = candle_nn::ops::rms_norm(&x, &layer.post_norm, eps)?.to_dtype(dt)?;
        let g = hn.matmul(&layer.gate_w.t()?)?;
        let u = hn.matmul(&layer.up_w.t()?)?;
        let y = (g.silu()? * u)?.matmul(&layer.down_w.t()?)?.to_dtype(ad)?;
        Ok((x + y)?)
    }

    /// Attention of prefill chunk `i` (sequence `si`) against its own slot of the pool
    /// (`kp`, `vp` of one layer) with a causal mask: [t, nh·D].
    fn generic_prefill(
        &self,
        q: &Tensor,
        kp: &Tensor,
        vp: &Tensor,
        st: &GenericStep,
        i: usize,
        si: usize,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let rep = nh / nkv;
        let scale = 1.0 / (d as f64).sqrt();
        let (ad, dt) = (self.act_dtype(), self.dtype);
        let (a, t) = (st.offs[si], st.offs[si + 1] - st.offs[si]);
        let l = st.lens[si] + t;
        let keys = kp.get(st.slots[si])?.narrow(1, 0, l)?; // [nkv, L, D], strided view
        let vals = vp.get(st.slots[si])?.narrow(1, 0, l)?;
        // GQA without copying K/V: the query heads of one KV head stacked along T.
        let qs = q
            .narrow(0, a, t)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((nkv, rep * t, d))?;
        let scores = (qs.matmul(&keys.t()?)?.to_dtype(ad)? * scale)?; // [nkv, rep*t, L]
        let scores = scores
            .reshape((nkv, rep, t, l))?
            .broadcast_add(&st.masks[i])?
            .reshape((nkv, rep * t, l))?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dt)?;
        let o = probs.matmul(&vals)?; // [nkv, rep*t, D] = [nh, t, D]
        Ok(o.reshape((nh, t, d))?
            .transpose(0, 1)?
            .reshape((t, nh * d))?)
    }
}

/// What every layer of one generic step shares (built by [`Model::generic_step`]).
struct GenericStep {
    /// Row offsets of the sequences in the packed rows.
    offs: Vec<usize>,
    /// Each sequence's pool slot and cached length before the step.
    slots: Vec<usize>,
    lens: Vec<usize>,
    /// The pool's capacity in positions.
    cap: usize,
    /// Scatter indices of the new keys / values in the pool viewed as rows.
    dst: Tensor,
    /// Sequences with several new rows (prefill chunks), attended one by one.
    pre: Vec<usize>,
    /// The decoding sequences (one new row each), attended as one batch.
    batch: Option<DecodeBatch>,
    /// Packed order of the attention output rows (None when already in order).
    order: Option<Tensor>,
    /// Additive causal masks of the prefill chunks.
    masks: Vec<Tensor>,
    /// RoPE tables [N, D/2].
    cos: Tensor,
    sin: Tensor,
}

/// The decoding sequences of a step, laid out for one batched attention per layer.
struct DecodeBatch {
    /// The pool slots attended: `lo..lo + m` (a window), or gathered (`gather`).
    lo: usize,
    m: usize,
    gather: Option<Tensor>,
    /// Longest length attended.
    lmax: usize,
    /// Row of each of the `m` attended slots in the step's packed rows (`n`: none, a zero
    /// query appended), and of each decoding sequence among the `m`.
    q_rows: Tensor,
    out_rows: Tensor,
    /// Additive length mask [m, 1, 1, lmax].
    mask: Tensor,
}

impl DecodeBatch {
    /// `slots`, `lens` (positions to attend, the new one included) and packed `rows` (of
    /// `n`) of the decoding sequences.
    fn new(
        slots: &[usize],
        lens: &[usize],
        rows: &[u32],
        n: usize,
        ad: DType,
        dev: &Device,
    ) -> Result<Self> {
        let nd = slots.len();
        let lo = *slots.iter().min().expect("a decoding sequence");
        let hi = *slots.iter().max().expect("a decoding sequence") + 1;
        let lmax = *lens.iter().max().expect("a decoding sequence");
        // A window of slots when they are dense (no copy), else a gather of just these.
        let window = hi - lo <= 2 * nd + 8;
        let (m, gather, at): (usize, Option<Tensor>, Vec<usize>) = if window {
            (hi - lo, None, slots.iter().map(|&s| s - lo).collect())
        } else {
            let g: Vec<u32> = slots.iter().map(|&s| s as u32).collect();
            (nd, Some(Tensor::from_vec(g, nd, dev)?), (0..nd).collect())
        };
        // Queries: a zero row (index n, appended at attention time) for unused window slots.
        let mut q_rows = vec![n as u32; m];
        let mut len_of = vec![1usize; m];
        for (i, &a) in at.iter().enumerate() {
            q_rows[a] = rows[i];
            len_of[a] = lens[i];
        }
        let mut mask = vec![0f32; m * lmax];
        for (a, &l) in len_of.iter().enumerate() {
            for j in l..lmax {
                mask[a * lmax + j] = MASK_NEG;
            }
        }
        Ok(DecodeBatch {
            lo,
            m,
            gather,
            lmax,
            q_rows: Tensor::from_vec(q_rows, m, dev)?,
            out_rows: Tensor::from_vec(at.iter().map(|&a| a as u32).collect(), nd, dev)?,
            mask: Tensor::from_vec(mask, (m, 1, 1, lmax), dev)?.to_dtype(ad)?,
        })
    }

    /// One batched attention of the decoding sequences' queries (rows of `q` [N, nh, D])
    /// over their slots of the pool's `kp`/`vp` [slots, nkv, cap, D]: [nd, nh·D].
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        q: &Tensor,
        kp: &Tensor,
        vp: &Tensor,
        nkv: usize,
        rep: usize,
        d: usize,
        scale: f64,
        ad: DType,
        dt: DType,
    ) -> Result<Tensor> {
        let nh = nkv * rep;
        let (m, l) = (self.m, self.lmax);
        let kv = |t: &Tensor| -> Result<Tensor> {
            Ok(match &self.gather {
                // [m, nkv, L, D]: a strided view of the window.
                None => t.narrow(0, self.lo, m)?.narrow(2, 0, l)?,
                Some(g) => t.index_select(g, 0)?.narrow(2, 0, l)?,
            })
        };
        let (keys, vals) = (kv(kp)?, kv(vp)?);
        // Queries of the attended slots, [m, nkv, rep, D] (zeros where no sequence decodes).
        let qz = Tensor::cat(&[q, &Tensor::zeros((1, nh, d), q.dtype(), q.device())?], 0)?;
        let qb = qz
            .index_select(&self.q_rows, 0)?
            .reshape((m, nkv, rep, d))?;
        let scores = (qb.matmul(&keys.t()?)?.to_dtype(ad)? * scale)?; // [m, nkv, rep, L]
        let scores = scores.broadcast_add(&self.mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dt)?;
        let o = probs.matmul(&vals)?; // [m, nkv, rep, D]
        Ok(o.reshape((m, nh * d))?.index_select(&self.out_rows, 0)?)
    }
}
