//! Inference-only fast path: a packed, ragged batch with one [`KvCache`] per sequence.
//!
//! All sequences' new tokens are concatenated into one [N_total, H] matrix for the linear
//! layers, so each weight matrix is read once per step for the whole batch. RoPE, the
//! cache append and attention are plain Rust over slices (rayon over sequences × heads):
//! each sequence attends to its own cache, causally within its new chunk. Only the last
//! new token of each sequence goes through the output projection.
//!
//! K/V are kept in f32 whatever the model dtype, laid out per layer as
//! `[position][kv_head][head_dim]` in a `Vec<f32>` that grows amortised (no per-step copy).
//!
//! Off the CPU, or with [`Model::set_packed_kernels`]`(false)` (`--device cpu-generic`), the
//! same step runs in candle ops with caches on the device (`generic.rs`).

use candle_core::{DType, Tensor};
use rayon::prelude::*;

mod bf16;
pub(crate) mod generic;

/// The block-format weights (moved to the leaf module [`crate::compact`]; re-exported here).
pub use crate::compact;
use crate::compact::CompactLayer;
pub(crate) use crate::compact::CompactModel;
pub use crate::compact::{BlockFormat, CompactMatrix, CompactWeights};
use crate::kernels;
pub use crate::kernels::Kernel as CpuKernel;
use crate::kernels::WSrc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::transformer::Model;

/// Above this many packed rows (prefill), the element-wise steps run in parallel.
const PAR_MIN_ROWS: usize = 64;

/// New rows of one sequence per attention task (prefill spreads over the cores).
const ATTN_ROWS: usize = 64;

/// Rows of the output projection multiplied at a time.
const LM_HEAD_CHUNK: usize = 4096;

/// One sequence of a packed step: its new tokens and its own cache.
pub struct SeqInput<'a> {
    /// New tokens, appended at positions `cache.len()..`. Must be non-empty.
    pub tokens: &'a [u32],
    /// The sequence's cache (all layers); grows by `tokens.len()`.
    pub cache: &'a mut KvCache,
}

/// Keys and values of one sequence, all layers. Clone it to share a prompt's prefix.
///
/// Laid out per (layer, KV head): each attention task then streams one contiguous block.
#[derive(Debug, Clone)]
pub struct KvCache {
    len: usize,
    /// KV heads per layer.
    heads: usize,
    /// Floats of one position of one head (head_dim).
    d: usize,
    /// Per layer × KV head (`layer * heads + head`): K and V, each `len * d` floats.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// The device-generic path's cache (then `k` and `v` are empty).
    dev: Option<generic::DevKv>,
}

impl KvCache {
    /// An empty cache for a model of this configuration.
    pub fn new(cfg: &Config) -> KvCache {
        let slots = cfg.num_hidden_layers * cfg.num_key_value_heads;
        KvCache {
            len: 0,
            heads: cfg.num_key_value_heads,
            d: cfg.head_dim,
            k: vec![Vec::new(); slots],
            v: vec![Vec::new(); slots],
            dev: None,
        }
    }

    /// Cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No cached position.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the cached positions (excluding spare capacity).
    pub fn bytes(&self) -> usize {
        match &self.dev {
            Some(kv) => 2 * kv.layers * self.heads * self.len * self.d * kv.dtype.size_in_bytes(),
            None => 2 * self.k.len() * self.len * self.d * std::mem::size_of::<f32>(),
        }
    }

    /// Whether this cache lives on the device-generic path (candle tensors).
    pub fn is_device(&self) -> bool {
        self.dev.is_some()
    }

    /// Keeps the first `len` positions (no-op when `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.len = len;
        if self.dev.is_some() {
            // Positions past `len` are overwritten by the next step.
            return;
        }
        for l in 0..self.k.len() {
            self.k[l].truncate(len * self.d);
            self.v[l].truncate(len * self.d);
        }
    }

    /// Drops spare capacity.
    pub fn shrink_to_fit(&mut self) {
        for l in 0..self.k.len() {
            self.k[l].shrink_to_fit();
            self.v[l].shrink_to_fit();
        }
    }
}

/// In-place RMSNorm of each `w.len()`-sized row of `x`.
fn rms_norm_rows(x: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    for row in x.chunks_mut(d) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for (v, &g) in row.iter_mut().zip(w) {
            *v = *v * inv * g;
        }
    }
}

/// In-place half-split RoPE of `heads` heads of one row at one position.
fn rope_row(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_mut(2 * half) {
        for j in 0..half {
            let (a, b) = (head[j], head[j + half]);
            head[j] = a * cos[j] - b * sin[j];
            head[j + half] = b * cos[j] + a * sin[j];
        }
    }
}

/// What every layer of one packed step shares: the row offsets of the sequences, the
/// attention tasks and the RoPE tables of the rows.
struct PackedStep<'a> {
    offs: &'a [usize],
    /// (sequence, KV head, first row, end row).
    tasks: &'a [(usize, usize, usize, usize)],
    /// cos and sin, each [N, D/2].
    rope: &'a (Vec<f32>, Vec<f32>),
}

/// Attention tasks: (sequence, KV head, block of new rows), so that both many short
/// sequences (decoding) and one long prompt (prefill) spread over the cores.
fn attention_tasks(offs: &[usize], nkv: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut tasks = Vec::new();
    for si in 0..offs.len() - 1 {
        let (a, b) = (offs[si], offs[si + 1]);
        for g in 0..nkv {
            let mut r = a;
            while r < b {
                let e = (r + ATTN_ROWS).min(b);
                tasks.push((si, g, r, e));
                r = e;
            }
        }
    }
    tasks
}

fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

impl Model {
    /// Attaches the block-format matrices of `weights` that mirror this model's own f32
    /// weights (tensor identity is checked), for [`Model::forward_packed`] to read instead
    /// of the f32 ones; results are bit-identical. Returns how many were attached.
    pub fn attach_compact(&mut self, weights: &CompactWeights) -> usize {
        let mut count = 0;
        let mut pick = |name: String, t: &Tensor| {
            let c = weights.for_tensor(&name, t);
            count += c.is_some() as usize;
            c
        };
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, w)| {
                let a = format!("model.layers.{l}.self_attn");
                let m = format!("model.layers.{l}.mlp");
                CompactLayer {
                    q: pick(format!("{a}.q_proj.weight"), &w.q_w),
                    k: pick(format!("{a}.k_proj.weight"), &w.k_w),
                    v: pick(format!("{a}.v_proj.weight"), &w.v_w),
                    o: pick(format!("{a}.o_proj.weight"), &w.o_w),
                    gate: pick(format!("{m}.gate_proj.weight"), &w.gate_w),
                    up: pick(format!("{m}.up_proj.weight"), &w.up_w),
                    down: pick(format!("{m}.down_proj.weight"), &w.down_w),
                }
            })
            .collect();
        let head_name = if self.cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        let lm_head = pick(head_name.to_string(), &self.lm_head);
        self.compact = (count > 0).then(|| std::sync::Arc::new(CompactModel { layers, lm_head }));
        count
    }

    /// Number of weight matrices the packed path reads from a copy (GGUF blocks or bf16).
    pub fn compact_count(&self) -> usize {
        self.compact.as_ref().map_or(0, |c| {
            c.lm_head.is_some() as usize
                + c.layers
                    .iter()
                    .map(|l| {
                        [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                            .iter()
                            .filter(|m| m.is_some())
                            .count()
                    })
                    .sum::<usize>()
        })
    }

    /// An empty cache for this model (a device cache off the packed CPU path).
    pub fn new_cache(&self) -> KvCache {
        if self.packed_kernels() {
            return KvCache::new(&self.cfg);
        }
        KvCache::new_device(
            &self.kv_pool,
            self.cfg.num_key_value_heads,
            self.cfg.head_dim,
        )
    }

    /// Slots allocated in the device-generic path's KV pool (one per live device cache that
    /// has run a step, plus free ones; 0 before the first step).
    pub fn kv_pool_slots(&self) -> usize {
        generic::pool_slots(&self.kv_pool)
    }

    /// Whether [`Model::forward_packed`] uses the packed CPU kernels (f32 host caches) or the
    /// device-generic candle path (device caches). True on the CPU unless switched off.
    pub fn packed_kernels(&self) -> bool {
        self.packed_kernels && self.device.is_cpu()
    }

    /// Switches the packed CPU kernels on or off (off: the candle-op path a GPU runs, on the
    /// CPU; `--device cpu-generic`). Caches made before the switch no longer fit.
    pub fn set_packed_kernels(&mut self, on: bool) {
        self.packed_kernels = on;
    }

    /// KV bytes one cached position costs on this model's inference path, all layers.
    pub fn kv_bytes_per_token(&self) -> usize {
        let c = &self.cfg;
        let el = if self.packed_kernels() {
            std::mem::size_of::<f32>()
        } else {
            self.dtype.size_in_bytes()
        };
        2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * el
    }

    /// Appends each sequence's `tokens` to its cache and returns the logits of each
    /// sequence's last new token, [num_seqs, V] f32. Inference only (no graph).
    ///
    /// On error every cache is left as it was.
    pub fn forward_packed(&self, seqs: &mut [SeqInput<'_>]) -> Result<Tensor> {
        let start: Vec<usize> = seqs.iter().map(|s| s.cache.len()).collect();
        let r = self.forward_packed_inner(seqs);
        if r.is_err() {
            for (s, &l) in seqs.iter_mut().zip(&start) {
                s.cache.truncate(l);
            }
        }
        r
    }

    fn forward_packed_inner(&self, seqs: &mut [SeqInput<'_>]) -> Result<Tensor> {
        if seqs.is_empty() {
            return Err(Error::Invalid("forward_packed: no sequence".into()));
        }
        // 1. Validate, and lay out the packed rows: seq s owns rows offs[s]..offs[s+1].
        let (ids, pos, offs) = self.pack_rows(seqs)?;
        if !self.packed_kernels() {
            return self.forward_generic(seqs, ids, &pos, &offs);
        }
        let n = ids.len();
        let rope = self.rope_rows(&pos);
        let ids_t = Tensor::from_vec(ids, n, &self.device)?;
        // The residual stream on the host, [N,H] f32.
        let mut x = to_f32_vec(&self.embed.index_select(&ids_t, 0)?)?;
        let tasks = attention_tasks(&offs, self.cfg.num_key_value_heads);
        let no_compact = CompactLayer::default();
        for li in 0..self.layers.len() {
            let cl = self.compact.as_ref().map_or(&no_compact, |c| &c.layers[li]);
            let step = PackedStep {
                offs: &offs,
                tasks: &tasks,
                rope: &rope,
            };
            self.packed_attention(li, cl, &mut x, seqs, &step)?;
            self.packed_mlp(li, cl, &mut x)?;
        }
        for (si, s) in seqs.iter_mut().enumerate() {
            s.cache.len += offs[si + 1] - offs[si];
        }
        self.packed_logits(&x, &offs)
    }

    /// Checks every sequence (tokens, cache, length) and packs their new tokens: the ids,
    /// each row's position, and the row offsets (sequence s owns rows `offs[s]..offs[s+1]`).
    fn pack_rows(&self, seqs: &[SeqInput<'_>]) -> Result<(Vec<u32>, Vec<usize>, Vec<usize>)> {
        let cfg = &self.cfg;
        let (d, nkv) = (cfg.head_dim, cfg.num_key_value_heads);
        let mut offs = vec![0usize];
        let mut ids = Vec::new();
        let mut pos = Vec::new();
        for (si, s) in seqs.iter().enumerate() {
            if s.tokens.is_empty() {
                return Err(Error::Invalid(format!(
                    "forward_packed: sequence {si} has no new token"
                )));
            }
            let fits = match &s.cache.dev {
                None => self.packed_kernels() && s.cache.k.len() == cfg.num_hidden_layers * nkv,
                Some(kv) => {
                    !self.packed_kernels()
                        && kv.layers == cfg.num_hidden_layers
                        && kv.dtype == self.dtype
                        && kv.device.same_device(&self.device)
                }
            };
            if !fits || s.cache.heads != nkv || s.cache.d != d {
                return Err(Error::Invalid(format!(
                    "forward_packed: sequence {si}'s cache was made for another model \
                     (or another device path)"
                )));
            }
            let total = s.cache.len() + s.tokens.len();
            if total > cfg.max_position_embeddings {
                return Err(Error::TooLong {
                    len: total,
                    max: cfg.max_position_embeddings,
                });
            }
            if let Some(&bad) = s.tokens.iter().find(|&&x| x as usize >= cfg.vocab_size) {
                return Err(Error::Invalid(format!(
                    "token id {bad} out of range (vocab_size {})",
                    cfg.vocab_size
                )));
            }
            ids.extend_from_slice(s.tokens);
            pos.extend(s.cache.len()..total);
            offs.push(ids.len());
        }
        Ok((ids, pos, offs))
    }

    /// RoPE cos and sin of each packed row's position, each [N, D/2].
    fn rope_rows(&self, pos: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let half = self.cfg.head_dim / 2;
        let n = pos.len();
        let mut cos = vec![0f32; n * half];
        let mut sin = vec![0f32; n * half];
        for (r, &p) in pos.iter().enumerate() {
            for (j, &f) in self.inv_freq.iter().enumerate() {
                let ang = p as f32 * f;
                cos[r * half + j] = ang.cos() * self.rope_mscale;
                sin[r * half + j] = ang.sin() * self.rope_mscale;
            }
        }
        (cos, sin)
    }

    /// Layer `li`'s attention block on the packed stream `x` [N,H] (added in place): q, k, v
    /// projections, RoPE, the append to each sequence's cache, attention, o_proj.
    fn packed_attention(
        &self,
        li: usize,
        cl: &CompactLayer,
        x: &mut [f32],
        seqs: &mut [SeqInput<'_>],
        step: &PackedStep<'_>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let layer = &self.layers[li];
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let (half, row, qw) = (d / 2, nkv * d, nh * d);
        let eps = cfg.rms_norm_eps as f32;
        let n = x.len() / cfg.hidden_size;
        // 2. Projections on the packed rows (q, k and v in one parallel pass).
        let mut hn = x.to_vec();
        rms_norm_rows(&mut hn, &to_f32_vec(&layer.in_norm)?, eps);
        let mut qkv = self.host_linears(
            &hn,
            n,
            &[
                (&layer.q_w, layer.q_b.as_ref(), cl.q.as_deref()),
                (&layer.k_w, layer.k_b.as_ref(), cl.k.as_deref()),
                (&layer.v_w, layer.v_b.as_ref(), cl.v.as_deref()),
            ],
        )?;
        let v = qkv.pop().expect("v");
        let mut k = qkv.pop().expect("k");
        let mut q = qkv.pop().expect("q"); // [N, nh*D]
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            rms_norm_rows(&mut q, &to_f32_vec(qn)?, eps);
            rms_norm_rows(&mut k, &to_f32_vec(kn)?, eps);
        }
        // 3. RoPE per row at its own position.
        let (cos, sin) = step.rope;
        let rope = |(r, (qr, kr)): (usize, (&mut [f32], &mut [f32]))| {
            let (c, s) = (
                &cos[r * half..(r + 1) * half],
                &sin[r * half..(r + 1) * half],
            );
            rope_row(qr, c, s);
            rope_row(kr, c, s);
        };
        if n > PAR_MIN_ROWS {
            q.par_chunks_mut(qw)
                .zip(k.par_chunks_mut(row))
                .enumerate()
                .for_each(rope);
        } else {
            q.chunks_mut(qw)
                .zip(k.chunks_mut(row))
                .enumerate()
                .for_each(rope);
        }
        // 4. Append to the caches.
        let offs = step.offs;
        for (si, s) in seqs.iter_mut().enumerate() {
            let (a, b) = (offs[si], offs[si + 1]);
            for g in 0..nkv {
                let (kc, vc) = (&mut s.cache.k[li * nkv + g], &mut s.cache.v[li * nkv + g]);
                for r in a..b {
                    kc.extend_from_slice(&k[r * row + g * d..][..d]);
                    vc.extend_from_slice(&v[r * row + g * d..][..d]);
                }
            }
        }
        // 5. Attention per task, each sequence against its own cache.
        let caches: Vec<&KvCache> = seqs.iter().map(|s| &*s.cache).collect();
        let attn = self.packed_attend(li, &q, n, &caches, step);
        let o = self.host_linear(&attn, n, &layer.o_w, cl.o.as_deref())?;
        x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Attention of the packed queries `q` [N, nh·D] of layer `li` (after RoPE), each
    /// sequence against its own cache (which already holds the new rows): [N, nh·D].
    fn packed_attend(
        &self,
        li: usize,
        q: &[f32],
        n: usize,
        caches: &[&KvCache],
        step: &PackedStep<'_>,
    ) -> Vec<f32> {
        let cfg = &self.cfg;
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let (rep, qw) = (nh / nkv, nh * d);
        let scale = 1.0 / (d as f32).sqrt();
        let outs: Vec<Vec<f32>> = step
            .tasks
            .par_iter()
            .map(|&(si, g, r0, r1)| {
                let c = caches[si];
                let mut o = vec![0f32; (r1 - r0) * rep * d];
                kernels::attend_group(
                    &q[r0 * qw..r1 * qw],
                    &mut o,
                    r1 - r0,
                    qw,
                    g * rep * d,
                    rep,
                    d,
                    &c.k[li * nkv + g],
                    &c.v[li * nkv + g],
                    c.len + (r0 - step.offs[si]),
                    scale,
                );
                o
            })
            .collect();
        let mut attn = vec![0f32; n * qw];
        for (&(_, g, r0, _), o) in step.tasks.iter().zip(&outs) {
            for (i, chunk) in o.chunks(rep * d).enumerate() {
                attn[(r0 + i) * qw + g * rep * d..][..rep * d].copy_from_slice(chunk);
            }
        }
        attn
    }

    /// Layer `li`'s MLP block on the packed stream `x` (added in place): down(silu(gate) ·
    /// up), gate and up in one parallel pass.
    fn packed_mlp(&self, li: usize, cl: &CompactLayer, x: &mut [f32]) -> Result<()> {
        let cfg = &self.cfg;
        let layer = &self.layers[li];
        let inter = cfg.intermediate_size;
        let n = x.len() / cfg.hidden_size;
        // 6. MLP: down(silu(gate) * up), gate and up in one parallel pass.
        let mut hn = x.to_vec();
        rms_norm_rows(
            &mut hn,
            &to_f32_vec(&layer.post_norm)?,
            cfg.rms_norm_eps as f32,
        );
        let mut gu = self.host_linears(
            &hn,
            n,
            &[
                (&layer.gate_w, None, cl.gate.as_deref()),
                (&layer.up_w, None, cl.up.as_deref()),
            ],
        )?;
        let u = gu.pop().expect("up");
        let mut g = gu.pop().expect("gate");
        if n > PAR_MIN_ROWS {
            g.par_chunks_mut(inter)
                .zip(u.par_chunks(inter))
                .for_each(|(g, u)| crate::simd::silu_mul(g, u));
        } else {
            crate::simd::silu_mul(&mut g, &u);
        }
        let y = self.host_linear(&g, n, &layer.down_w, cl.down.as_deref())?;
        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// 7. The output projection of each sequence's last new row only: [num_seqs, V] f32.
    fn packed_logits(&self, x: &[f32], offs: &[usize]) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (hdim, dev) = (cfg.hidden_size, &self.device);
        let nl = offs.len() - 1;
        let mut xl = Vec::with_capacity(nl * hdim);
        for &o in &offs[1..] {
            xl.extend_from_slice(&x[(o - 1) * hdim..o * hdim]);
        }
        rms_norm_rows(&mut xl, &to_f32_vec(&self.norm)?, cfg.rms_norm_eps as f32);
        let vsz = cfg.vocab_size;
        // f32 on the CPU: the packed path's kernel, which streams the output projection once
        // per step (from its block-format copy when there is one).
        if self.lm_head.dtype() == DType::F32
            && self.lm_head.is_contiguous()
            && self.lm_head.device().is_cpu()
        {
            let head = self.compact.as_ref().and_then(|c| c.lm_head.as_deref());
            let y = self.host_linear(&xl, nl, &self.lm_head, head)?;
            return Ok(Tensor::from_vec(y, (nl, vsz), dev)?);
        }
        let xl = Tensor::from_vec(xl, (nl, hdim), dev)?.to_dtype(self.dtype)?;
        // The vocabulary in row chunks: one huge [N,H]x[H,V] product runs far below the
        // matmul kernel's peak on CPU (the packing of the whole lm_head thrashes the cache).
        let mut parts = Vec::with_capacity(vsz.div_ceil(LM_HEAD_CHUNK));
        let mut s0 = 0;
        while s0 < vsz {
            let c = LM_HEAD_CHUNK.min(vsz - s0);
            parts.push(
                xl.matmul(&self.lm_head.narrow(0, s0, c)?.t()?)?
                    .to_dtype(DType::F32)?,
            );
            s0 += c;
        }
        let logits = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts, 1)?
        };
        Ok(logits)
    }

    /// Host rows x [m, in] · wᵀ (+ b) -> [m, out] f32. On CPU with f32 weights this is the
    /// packing-free kernel of `kernels.rs`; otherwise a candle matmul in the model dtype.
    /// With `compact`, the kernel reads the weight from its block-format copy.
    fn host_linear(
        &self,
        x: &[f32],
        m: usize,
        w: &Tensor,
        compact: Option<&CompactMatrix>,
    ) -> Result<Vec<f32>> {
        Ok(self
            .host_linears(x, m, &[(w, None, compact)])?
            .pop()
            .expect("one product"))
    }

    /// [`Self::host_linear`] for several weights applied to the same rows: one parallel
    /// pass over all of them when the kernel applies.
    fn host_linears(
        &self,
        x: &[f32],
        m: usize,
        ws: &[(&Tensor, Option<&Tensor>, Option<&CompactMatrix>)],
    ) -> Result<Vec<Vec<f32>>> {
        let nin = x.len() / m.max(1);
        let mut dims = Vec::with_capacity(ws.len());
        for &(w, _, _) in ws {
            let (nout, k) = w.dims2()?;
            if k != nin {
                return Err(Error::Invalid(format!(
                    "forward_packed: weight of shape [{nout}, {k}] applied to rows of {nin}"
                )));
            }
            dims.push(nout);
        }
        let use_kernel = ws
            .iter()
            .all(|(w, _, _)| w.dtype() == DType::F32 && w.is_contiguous() && w.device().is_cpu());
        let mut outs = if use_kernel {
            let guards: Vec<_> = ws.iter().map(|(w, _, _)| w.storage_and_layout()).collect();
            let mut slices = Vec::with_capacity(ws.len());
            for (((st, layout), &nout), &(_, _, c)) in guards.iter().zip(&dims).zip(ws) {
                if let Some(c) = c {
                    slices.push((WSrc::Compact(c), nout));
                    continue;
                }
                let candle_core::Storage::Cpu(cpu) = &**st else {
                    return Err(Error::Invalid(
                        "forward_packed: weight not on the CPU".into(),
                    ));
                };
                let s = cpu.as_slice::<f32>()?;
                let o = layout.start_offset();
                slices.push((WSrc::F32(&s[o..o + nout * nin]), nout));
            }
            kernels::matmul_nt_multi(x, m, nin, &slices)
        } else {
            let xt = Tensor::from_slice(x, (m, nin), &self.device)?.to_dtype(self.dtype)?;
            ws.iter()
                .map(|&(w, _, _)| to_f32_vec(&xt.matmul(&w.t()?)?))
                .collect::<Result<Vec<_>>>()?
        };
        for ((y, &(_, b, _)), &nout) in outs.iter_mut().zip(ws).zip(&dims) {
            if let Some(b) = b {
                let b = to_f32_vec(b)?;
                for r in y.chunks_mut(nout) {
                    r.iter_mut().zip(&b).for_each(|(a, c)| *a += c);
                }
            }
        }
        Ok(outs)
    }
}

/// The packed path's CPU matrix product `out[m,n] = x[m,k] · w[n,k]ᵀ` (row-major), with the
/// [`CpuKernel::current`] kernel.
pub fn matmul_nt(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    kernels::matmul_nt(x, m, k, w, n)
}
