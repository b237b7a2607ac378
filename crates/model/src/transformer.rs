//! One decoder-only transformer for Llama, Qwen2 (q/k/v bias) and Qwen3 (per-head q/k
//! RMSNorm, explicit head_dim), switched by [`Config`] fields.
//!
//! The training / scoring path ([`Model::forward_hidden`], [`Model::forward`]) is built from
//! basic differentiable candle ops only: RMSNorm, softmax and RoPE are written out
//! (candle's fused kernels have no backward pass and would silently stop gradients).
//! The residual stream, norms, RoPE, softmax and logits are f32; with a bf16 model the
//! matrix products run in bf16.
//!
//! The inference path ([`Model::forward_packed`]) lives in `packed.rs`.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::Weights;

/// An attention mask copied to the host, [B][T].
type HostMask = Vec<Vec<u32>>;

/// What every decoder layer of one batch needs ([`Model::decoder_inputs`]).
#[derive(Debug, Clone)]
pub struct DecoderInputs {
    /// Batch size.
    pub b: usize,
    /// Sequence length.
    pub t: usize,
    /// Additive attention mask [B,1,1,T,T] (causal; pads masked as keys).
    add_mask: Tensor,
    /// RoPE cos and sin [B,1,T,D].
    cos: Tensor,
    sin: Tensor,
}

/// Large negative finite additive mask value: exp underflows to exactly 0, never NaN.
pub(crate) const MASK_NEG: f32 = -1.0e9;

/// One decoder layer's parameters (HF names under `model.layers.N.`).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) q_w: Tensor,
    pub(crate) q_b: Option<Tensor>,
    pub(crate) k_w: Tensor,
    pub(crate) k_b: Option<Tensor>,
    pub(crate) v_w: Tensor,
    pub(crate) v_b: Option<Tensor>,
    pub(crate) o_w: Tensor,
    /// Qwen3: [head_dim] f32.
    pub(crate) q_norm: Option<Tensor>,
    pub(crate) k_norm: Option<Tensor>,
    pub(crate) gate_w: Tensor,
    pub(crate) up_w: Tensor,
    pub(crate) down_w: Tensor,
    /// [hidden] f32.
    pub(crate) in_norm: Tensor,
    pub(crate) post_norm: Tensor,
}

/// A Llama / Qwen2 / Qwen3 causal language model.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) cfg: Config,
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    /// [V, H] in the model dtype.
    pub(crate) embed: Tensor,
    pub(crate) layers: Vec<Layer>,
    /// [H] f32.
    pub(crate) norm: Tensor,
    /// [V, H] in the model dtype; the embedding itself when tied.
    pub(crate) lm_head: Tensor,
    /// RoPE inverse frequencies [head_dim / 2] (scaling applied).
    pub(crate) inv_freq: Vec<f32>,
    /// Multiplies cos and sin (yarn attention factor; 1 otherwise).
    pub(crate) rope_mscale: f32,
    /// Block-format copies of weights for the packed path (see [`crate::compact`]).
    pub(crate) compact: Option<std::sync::Arc<crate::compact::CompactModel>>,
    /// On the CPU: whether `forward_packed` uses the packed kernels (else the candle-op
    /// path a GPU runs); see [`Model::set_packed_kernels`].
    pub(crate) packed_kernels: bool,
    /// The device-generic path's KV pool (shared by clones; allocated at the first step).
    pub(crate) kv_pool: crate::kvpool::SharedPool,
    /// Whether the differentiable path uses the fused CPU ops of [`crate::ops`] (f32 on the
    /// CPU only); see [`Model::set_fused_ops`].
    pub(crate) fused_ops: bool,
    /// The operands of the fused ops' matrix products; see [`Model::set_matmul_precision`].
    pub(crate) matmul_precision: crate::ops::MatmulPrecision,
    /// Where the decoder layers' fused products put their weights' gradients; see
    /// [`Model::set_grad_sink`].
    pub(crate) grad_sink: Option<crate::ops::GradSink>,
}

/// Fetches `name` under `vb` with `shape`, cast to `dtype`; a missing or wrongly shaped
/// tensor is [`Error::Weight`] naming the full HF name.
fn get(vb: &VarBuilder, shape: &[usize], name: &str, dtype: DType) -> Result<Tensor> {
    let full = if vb.prefix().is_empty() {
        name.to_string()
    } else {
        format!("{}.{name}", vb.prefix())
    };
    if !vb.contains_tensor(name) {
        return Err(Error::Weight {
            name: full,
            msg: "missing".into(),
        });
    }
    let t = vb
        .get_with_hints_dtype(shape, name, candle_nn::Init::Const(0.0), dtype)
        .map_err(|e| Error::Weight {
            name: full.clone(),
            msg: format!("expected shape {shape:?}: {}", crate::error::brief(&e)),
        })?;
    if t.dims() != shape {
        return Err(Error::Weight {
            name: full,
            msg: format!("expected shape {shape:?}, got {:?}", t.dims()),
        });
    }
    Ok(t.to_dtype(dtype)?)
}

impl Model {
    /// Builds the model from HF-named tensors. Matrices are cast to the builder's dtype;
    /// norm weights and biases are kept in f32. Every shape is checked.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Model> {
        let dtype = vb.dtype();
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16 | DType::F64) {
            return Err(Error::Invalid(format!("unsupported model dtype {dtype:?}")));
        }
        let (h, d, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (qd, kvd) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
        let nd = if dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let m = vb.pp("model");
        let embed = get(&m, &[cfg.vocab_size, h], "embed_tokens.weight", dtype)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let lb = m.pp(format!("layers.{l}"));
            let a = lb.pp("self_attn");
            let mlp = lb.pp("mlp");
            let bias = |name: &str, n: usize| -> Result<Option<Tensor>> {
                if cfg.attention_bias {
                    Ok(Some(get(&a, &[n], name, nd)?))
                } else {
                    Ok(None)
                }
            };
            let (q_norm, k_norm) = if cfg.qk_norm {
                (
                    Some(get(&a, &[d], "q_norm.weight", nd)?),
                    Some(get(&a, &[d], "k_norm.weight", nd)?),
                )
            } else {
                (None, None)
            };
            layers.push(Layer {
                q_w: get(&a, &[qd, h], "q_proj.weight", dtype)?,
                q_b: bias("q_proj.bias", qd)?,
                k_w: get(&a, &[kvd, h], "k_proj.weight", dtype)?,
                k_b: bias("k_proj.bias", kvd)?,
                v_w: get(&a, &[kvd, h], "v_proj.weight", dtype)?,
                v_b: bias("v_proj.bias", kvd)?,
                o_w: get(&a, &[h, qd], "o_proj.weight", dtype)?,
                q_norm,
                k_norm,
                gate_w: get(&mlp, &[i, h], "gate_proj.weight", dtype)?,
                up_w: get(&mlp, &[i, h], "up_proj.weight", dtype)?,
                down_w: get(&mlp, &[h, i], "down_proj.weight", dtype)?,
                in_norm: get(&lb, &[h], "input_layernorm.weight", nd)?,
                post_norm: get(&lb, &[h], "post_attention_layernorm.weight", nd)?,
            });
        }
        let norm = get(&m, &[h], "norm.weight", nd)?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            get(&vb, &[cfg.vocab_size, h], "lm_head.weight", dtype)?
        };
        let (inv_freq, rope_mscale) = cfg.rope_inv_freq();
        Ok(Model {
            cfg: cfg.clone(),
            device: vb.device().clone(),
            dtype,
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
            rope_mscale,
            compact: None,
            packed_kernels: crate::device::packed_kernels_default(),
            kv_pool: crate::kvpool::KvPool::new(
                cfg.num_hidden_layers,
                cfg.num_key_value_heads,
                d,
                dtype,
                vb.device(),
                cfg.max_position_embeddings,
            ),
            fused_ops: true,
            matmul_precision: crate::ops::MatmulPrecision::F32,
            grad_sink: None,
        })
    }

    /// Builds the model from a [`Weights`] map (HF names), casting to `dtype` on `dev`.
    pub fn from_weights(cfg: &Config, w: &Weights, dtype: DType, dev: &Device) -> Result<Model> {
        let vb = VarBuilder::from_tensors(w.clone(), dtype, dev);
        Model::new(cfg, vb)
    }

    /// Turns the fused differentiable CPU ops ([`crate::ops`]: products on the packed
    /// kernels, RMSNorm, attention softmax, SiLU·gate, log-softmax) on (the default) or off
    /// (the candle-op compositions they replace). They only ever run on f32 CPU tensors.
    pub fn set_fused_ops(&mut self, on: bool) {
        self.fused_ops = on;
    }

    /// Whether the fused ops are on ([`Model::set_fused_ops`]).
    pub fn fused_ops(&self) -> bool {
        self.fused_ops
    }

    /// The operands of the differentiable path's weight products (`x · wᵀ` and both of its
    /// backward products) when they run on the fused ops (an f32 model on the CPU):
    /// [`crate::ops::MatmulPrecision::F32`] (the default) or `Bf16` (operands rounded to
    /// bf16, sums in f32; AMX tiles where the CPU has them). Attention's products and every
    /// other path (bf16 models, candle ops, GPUs, the packed inference path) are unaffected.
    pub fn set_matmul_precision(&mut self, p: crate::ops::MatmulPrecision) {
        self.matmul_precision = p;
    }

    /// The weight products' operand precision ([`Model::set_matmul_precision`]).
    pub fn matmul_precision(&self) -> crate::ops::MatmulPrecision {
        self.matmul_precision
    }

    /// Where the backward of the decoder layers' weight products (on the fused ops) adds the
    /// gradients of the weights that `sink` holds, while it has a buffer lent
    /// ([`crate::ops::GradSink`]); candle's gradient store then gets none for them. So do the
    /// embedding lookup and the LM head when the sink holds their weight (as a summed weight:
    /// [`crate::ops::GradSink::with_summed`]). `None` (the default): every gradient goes to
    /// candle.
    pub fn set_grad_sink(&mut self, sink: Option<crate::ops::GradSink>) {
        self.grad_sink = sink;
    }

    /// The gradient sink when it holds the LM head's weight (`logprobs`' packed head).
    pub(crate) fn head_sink(&self) -> Option<&crate::ops::GradSink> {
        self.summed_sink(&self.lm_head)
    }

    /// The gradient sink when it holds `w` and the fused ops run on it.
    fn summed_sink(&self, w: &Tensor) -> Option<&crate::ops::GradSink> {
        let on = self.fused_ops && self.dtype == DType::F32 && crate::ops::fused_ok(w);
        self.grad_sink.as_ref().filter(|s| on && s.holds(w))
    }

    /// Whether `x` goes through the fused ops: on, an f32 model, and `x` f32 on the CPU.
    pub(crate) fn fused(&self, x: &Tensor) -> bool {
        self.fused_ops && self.dtype == DType::F32 && crate::ops::fused_ok(x)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the matrix products (f32 or bf16).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The output projection [V, H] (the embedding when tied).
    pub fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    /// The token embedding [V, H].
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed
    }

    /// The float type of the residual stream, norms and softmax (f32, or f64 for an f64 model).
    pub(crate) fn act_dtype(&self) -> DType {
        if self.dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        }
    }

    /// Checks ids [B,T] and the optional mask, and returns the host copies.
    fn check_inputs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<(usize, usize, Option<HostMask>)> {
        let (b, t) = input_ids.dims2().map_err(|_| {
            Error::Invalid(format!(
                "input_ids must be [B,T], got {:?}",
                input_ids.dims()
            ))
        })?;
        if input_ids.dtype() != DType::U32 {
            return Err(Error::Invalid(format!(
                "input_ids must be u32, got {:?}",
                input_ids.dtype()
            )));
        }
        self.check_ids(&input_ids.flatten_all()?.to_vec1::<u32>()?, t)?;
        let mask = match attention_mask {
            None => None,
            Some(m) => {
                if m.dims() != [b, t] {
                    return Err(Error::Invalid(format!(
                        "attention_mask must be [{b},{t}], got {:?}",
                        m.dims()
                    )));
                }
                Some(m.to_dtype(DType::U32)?.to_vec2::<u32>()?)
            }
        };
        Ok((b, t, mask))
    }

    /// cos and sin [B,1,T,D] (halves duplicated, as HF's `cat((freqs, freqs))`) for positions
    /// `pos` (row-major [B,T]).
    pub(crate) fn rope_tables(&self, pos: &[u32], b: usize, t: usize) -> Result<(Tensor, Tensor)> {
        let d = self.cfg.head_dim;
        let half = d / 2;
        let mut cos = Vec::with_capacity(pos.len() * d);
        let mut sin = Vec::with_capacity(pos.len() * d);
        let mut c = vec![0f32; half];
        let mut s = vec![0f32; half];
        for &p in pos {
            for (j, &f) in self.inv_freq.iter().enumerate() {
                let ang = p as f32 * f;
                c[j] = ang.cos() * self.rope_mscale;
                s[j] = ang.sin() * self.rope_mscale;
            }
            cos.extend_from_slice(&c);
            cos.extend_from_slice(&c);
            sin.extend_from_slice(&s);
            sin.extend_from_slice(&s);
        }
        let ad = self.act_dtype();
        let cos = Tensor::from_vec(cos, (b, 1, t, d), &self.device)?.to_dtype(ad)?;
        let sin = Tensor::from_vec(sin, (b, 1, t, d), &self.device)?.to_dtype(ad)?;
        Ok((cos, sin))
    }

    /// Hidden states after the final norm, [B,T,H] f32. Differentiable.
    ///
    /// `attention_mask` [B,T] (1 = token, 0 = left padding); position ids are
    /// `cumsum(mask) - 1` with pads at 0, as transformers' `generate` computes them.
    ///
    /// The same as [`Model::decoder_inputs`], [`Model::embed`], [`Model::layer_forward`] for
    /// every layer and [`Model::final_norm`], which activation recomputation calls one by one.
    pub fn forward_hidden(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let inp = self.decoder_inputs(input_ids, attention_mask)?;
        let mut x = self.embed(input_ids)?;
        for l in 0..self.layers.len() {
            x = self.layer_forward(l, &x, &inp)?;
        }
        let x = self.final_norm(&x)?;
        Ok(x.reshape((inp.b, inp.t, self.cfg.hidden_size))?)
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Checks `input_ids` [B,T] and the optional mask, and builds what every decoder layer
    /// needs: positions (`cumsum(mask) - 1`, pads at 0), RoPE tables and the additive mask.
    pub fn decoder_inputs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<DecoderInputs> {
        let (b, t, mask) = self.check_inputs(input_ids, attention_mask)?;
        let ad = self.act_dtype();
        // Positions and the additive mask [B,1,1,T,T] (causal, and pads as keys masked).
        let mut pos = vec![0u32; b * t];
        let mut add_mask = vec![0f32; b * t * t];
        for bi in 0..b {
            let mut c = 0u32;
            for ti in 0..t {
                let real = mask.as_ref().is_none_or(|m| m[bi][ti] != 0);
                if real {
                    pos[bi * t + ti] = c;
                    c += 1;
                }
            }
            for qi in 0..t {
                for ki in 0..t {
                    let real = mask.as_ref().is_none_or(|m| m[bi][ki] != 0);
                    if ki > qi || !real {
                        add_mask[(bi * t + qi) * t + ki] = MASK_NEG;
                    }
                }
            }
        }
        let add_mask = Tensor::from_vec(add_mask, (b, 1, 1, t, t), &self.device)?.to_dtype(ad)?;
        let (cos, sin) = self.rope_tables(&pos, b, t)?;
        Ok(DecoderInputs {
            b,
            t,
            add_mask,
            cos,
            sin,
        })
    }

    /// Token embeddings of `input_ids` [B,T] as rows [B*T, H] in the activation dtype.
    /// Differentiable (in the embedding).
    pub fn embed(&self, input_ids: &Tensor) -> Result<Tensor> {
        if let Some(sink) = self.summed_sink(&self.embed) {
            return Ok(crate::ops::embedding_sunk(&self.embed, input_ids, sink)?);
        }
        Ok(self
            .embed
            .index_select(&input_ids.flatten_all()?, 0)?
            .to_dtype(self.act_dtype())?)
    }

    /// An error unless sequences of `len` tokens fit the context and every id of `ids` is
    /// below the vocabulary size.
    pub(crate) fn check_ids(&self, ids: &[u32], len: usize) -> Result<()> {
        let (max, vocab) = (self.cfg.max_position_embeddings, self.cfg.vocab_size);
        if len > max {
            return Err(Error::TooLong { len, max });
        }
        match ids.iter().find(|&&x| x as usize >= vocab) {
            Some(bad) => Err(Error::Invalid(format!(
                "token id {bad} out of range (vocab_size {vocab})"
            ))),
            None => Ok(()),
        }
    }

    /// Decoder layer `l` (an error naming it when out of range).
    pub(crate) fn layer(&self, l: usize) -> Result<&Layer> {
        self.layers.get(l).ok_or_else(|| {
            Error::Invalid(format!("layer {l} out of range ({})", self.layers.len()))
        })
    }

    /// RMSNorm of `x` by `w`: the fused op when `fused`, else from differentiable ops.
    pub(crate) fn rms(&self, x: &Tensor, w: &Tensor, fused: bool) -> Result<Tensor> {
        let eps = self.cfg.rms_norm_eps;
        if fused {
            Ok(crate::ops::rms_norm(x, w, eps)?)
        } else {
            rms_norm(x, w, eps)
        }
    }

    /// Decoder layer `l` on the residual stream `x` [B*T, H] (activation dtype), returning
    /// the stream after it. Differentiable.
    pub fn layer_forward(&self, l: usize, x: &Tensor, inp: &DecoderInputs) -> Result<Tensor> {
        let layer = self.layer(l)?;
        let cfg = &self.cfg;
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let (b, t) = (inp.b, inp.t);
        let fused = self.fused(x);
        // 1. Attention block.
        let hn = self.rms(x, &layer.in_norm, fused)?;
        let q = self.linear(&hn, &layer.q_w, layer.q_b.as_ref())?; // [BT, nh*D]
        let k = self.linear(&hn, &layer.k_w, layer.k_b.as_ref())?; // [BT, nkv*D]
        let v = self.linear(&hn, &layer.v_w, layer.v_b.as_ref())?;
        let mut q = q.reshape((b, t, nh, d))?;
        let mut k = k.reshape((b, t, nkv, d))?;
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = self.rms(&q, qn, fused)?;
            k = self.rms(&k, kn, fused)?;
        }
        // [B,T,nh,D] -> [B,nh,T,D], then RoPE.
        let (q, k) = if fused {
            (
                crate::ops::rope(&q, &inp.cos, &inp.sin)?,
                crate::ops::rope(&k, &inp.cos, &inp.sin)?,
            )
        } else {
            (
                rope(&q.transpose(1, 2)?, &inp.cos, &inp.sin)?,
                rope(&k.transpose(1, 2)?, &inp.cos, &inp.sin)?,
            )
        };
        let v = v.reshape((b, t, nkv, d))?.transpose(1, 2)?.contiguous()?;
        if fused && t > 0 && crate::ops::attention_available() {
            // [B,T,nh*D] straight from the fused op (no [T,T] tensor kept for backward).
            let scale = 1.0 / (d as f64).sqrt();
            let p = self.matmul_precision;
            let o = crate::ops::attention_with(&q, &k, &v, &inp.add_mask, scale, p)?;
            let o = self.linear(&o.reshape((b * t, nh * d))?, &layer.o_w, None)?;
            return self.mlp_block(layer, &(x + o)?, fused);
        }
        let (k, v) = (k.to_dtype(self.dtype)?, v.to_dtype(self.dtype)?);
        let o = self.attend(&q, &k, &v, &inp.add_mask, b, t, t, fused && t > 0)?;
        let o = self.linear(&o, &layer.o_w, None)?;
        self.mlp_block(layer, &(x + o)?, fused)
    }

    /// Attention of queries `q` [B,nh,Q,D] (activation dtype) over keys and values
    /// [B,nkv,T,D] (model dtype) with the additive mask [B,1,1,Q,T]; rows [B·Q, nh·D].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        b: usize,
        nq: usize,
        t: usize,
        fused: bool,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let d = cfg.head_dim;
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let rep = nh / nkv;
        let scale = 1.0 / (d as f64).sqrt();
        // GQA without copying k/v: query heads of one kv group stacked along Q.
        let q = q.to_dtype(self.dtype)?.reshape((b, nkv, rep * nq, d))?;
        let probs = if fused {
            // [B,nkv,rep*Q,T] = [B,nh,Q,T] planes, each masked by its batch's [Q,T].
            let raw = q.matmul(&k.t()?)?;
            crate::ops::masked_softmax(&raw, mask, scale, b, nq, t)?
        } else {
            let scores = (q.matmul(&k.t()?)?.to_dtype(self.act_dtype())? * scale)?;
            let scores = scores.reshape((b, nkv, rep, nq, t))?.broadcast_add(mask)?;
            softmax_last_dim(&scores)?
                .reshape((b, nkv, rep * nq, t))?
                .to_dtype(self.dtype)?
        };
        let o = probs.matmul(v)?; // [B,nkv,rep*Q,D] = [B,nh,Q,D]
        Ok(o.reshape((b, nh, nq, d))?
            .transpose(1, 2)?
            .reshape((b * nq, nh * d))?)
    }

    /// The MLP block on the residual stream `x` [B*T, H]: `x + down(silu(gate(n)) * up(n))`
    /// for `n` the post-attention RMSNorm of `x`. Differentiable.
    pub(crate) fn mlp_block(&self, layer: &Layer, x: &Tensor, fused: bool) -> Result<Tensor> {
        let eps = self.cfg.rms_norm_eps;
        let ad = self.act_dtype();
        if fused {
            let hn = self.rms(x, &layer.post_norm, true)?;
            let (p, sink) = (self.matmul_precision, self.grad_sink.as_ref());
            let g = crate::ops::linear_sunk(&hn, &layer.gate_w, p, sink)?;
            let u = crate::ops::linear_sunk(&hn, &layer.up_w, p, sink)?;
            let a = crate::ops::silu_mul(&g, &u)?;
            let y = crate::ops::linear_sunk(&a, &layer.down_w, p, sink)?;
            return Ok((x + y)?);
        }
        let hn = rms_norm(x, &layer.post_norm, eps)?.to_dtype(self.dtype)?;
        let g = hn.matmul(&layer.gate_w.t()?)?;
        let u = hn.matmul(&layer.up_w.t()?)?;
        let a = (g.silu()? * u)?;
        let y = a.matmul(&layer.down_w.t()?)?.to_dtype(ad)?;
        Ok((x + y)?)
    }

    /// The final RMSNorm on rows [N, H] of the residual stream. Differentiable.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.rms(x, &self.norm, self.fused(x))
    }

    /// Logits [B,T,V] f32. Differentiable.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let hidden = self.forward_hidden(input_ids, attention_mask)?;
        let (b, t, h) = hidden.dims3()?;
        let logits = self.logits(&hidden.reshape((b * t, h))?)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// Logits [N,V] (f32, or f64 for an f64 model) of hidden rows [N,H]. Differentiable.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        if self.fused(hidden) {
            let sink = self.summed_sink(&self.lm_head);
            return Ok(crate::ops::linear_sunk(
                hidden,
                &self.lm_head,
                self.matmul_precision,
                sink,
            )?);
        }
        let ad = self.act_dtype();
        Ok(hidden
            .to_dtype(self.dtype)?
            .matmul(&self.lm_head.t()?)?
            .to_dtype(ad)?)
    }

    /// x [N,in] (activation dtype) · wᵀ (+ b), in the model dtype, back to the activation dtype.
    pub(crate) fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if self.fused(x) {
            let sink = self.grad_sink.as_ref();
            let y = crate::ops::linear_sunk(x, w, self.matmul_precision, sink)?;
            return Ok(match b {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            });
        }
        let y = x
            .to_dtype(self.dtype)?
            .matmul(&w.t()?)?
            .to_dtype(self.act_dtype())?;
        Ok(match b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// RMSNorm over the last dim from differentiable ops: x * rsqrt(mean(x²) + eps) * w.
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

/// Softmax over the last dim from differentiable ops (the max is a detached constant).
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// Half-split RoPE: x * cos + rotate_half(x) * sin, x [B,H,T,D], cos/sin [B,1,T,D].
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?)?)
}
