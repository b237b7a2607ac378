//! GGUF files (llama.cpp): metadata -> [`Config`], every tensor dequantized to f32 and renamed
//! to its Hugging Face parameter name, the tokenizer and the chat template.
//!
//! Architectures: `llama` (SmolLM2, Llama), `qwen2`, `qwen3`.
//!
//! **q/k un-permutation.** For `llama` GGUFs, llama.cpp's converter permutes the rows of
//! `attn_q` / `attn_k` for interleaved RoPE: HF row `h*hd + j*hd/2 + i` becomes GGUF row
//! `h*hd + 2*i + j`. We undo it (`reshape(n_head, hd/2, 2, in).swapaxes(1, 2)`, with
//! `n_head = num_key_value_heads` for `attn_k`), exactly as transformers does, so the weights
//! are in HF layout and the model uses half-split RoPE. Qwen2/Qwen3 GGUFs are not permuted.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::compact::{CompactMatrix, CompactWeights};
use crate::config::{Arch, Config, RopeScaling};
use crate::error::{brief, Error, Result};
use crate::tokenizer::{value_as_i64, Tokenizer};
use crate::Weights;

/// Everything read from a GGUF file.
#[derive(Debug)]
pub struct GgufModel {
    /// Configuration derived from the metadata.
    pub config: Config,
    /// Dequantized weights by HF name, in the requested dtype and device.
    pub weights: Weights,
    /// Block-format (Q4_1 / Q8_0) copies of the linear weights for the packed path (empty
    /// unless the weights are f32 on the CPU).
    pub compact: CompactWeights,
    /// Tokenizer rebuilt from `tokenizer.ggml.*`.
    pub tokenizer: Tokenizer,
    /// `tokenizer.chat_template`, if present.
    pub chat_template: Option<String>,
    /// Token strings of BOS / EOS (for the chat template's `bos_token` / `eos_token`).
    pub bos_token: Option<String>,
    /// See `bos_token`.
    pub eos_token: Option<String>,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Read the GGUF header (metadata and tensor table) of `path`.
pub fn read_content(path: &Path) -> Result<(memmap2::Mmap, Content)> {
    let file = std::fs::File::open(path).map_err(fsutil::at(path))?;
    // SAFETY: the map is read-only; like every mmap reader we assume nobody truncates the file
    // while we read it.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(fsutil::at(path))?;
    precheck(&mmap).map_err(|e| bad(path, format!("not a valid GGUF file: {e}")))?;
    let content = Content::read(&mut std::io::Cursor::new(&mmap[..]))
        .map_err(|e| bad(path, format!("not a valid GGUF file: {}", brief(&e))))?;
    Ok((mmap, content))
}

/// A cursor over the raw bytes of a GGUF header.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    wide: bool,
}
impl Cur<'_> {
    fn take(&mut self, n: u64) -> Option<&[u8]> {
        let n = usize::try_from(n).ok()?;
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }
    fn len(&mut self) -> Option<u64> {
        if self.wide {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }
    fn string(&mut self) -> Option<&[u8]> {
        let n = self.len()?;
        self.take(n)
    }
    /// Skips a value of type `t`; returns it as an integer when it is one.
    fn value(&mut self, t: u32, depth: usize) -> Option<Option<i128>> {
        let fixed = |t: u32| match t {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        if let Some(n) = fixed(t) {
            let s = self.take(n)?;
            let mut buf = [0u8; 8];
            buf[..s.len()].copy_from_slice(s);
            let u = u64::from_le_bytes(buf);
            return Some(match t {
                0 | 2 | 4 | 10 => Some(i128::from(u)),
                1 => Some(i128::from(s[0] as i8)),
                3 => Some(i128::from(u as u16 as i16)),
                5 => Some(i128::from(u as u32 as i32)),
                11 => Some(i128::from(u as i64)),
                _ => None,
            });
        }
        match t {
            8 => self.string().map(|_| None),
            9 if depth < 8 => {
                let et = self.u32()?;
                let n = self.len()?;
                if let Some(size) = fixed(et) {
                    self.take(n.checked_mul(size)?)?;
                } else {
                    // Each element takes at least 4 bytes: a bound on the loop.
                    if n > (self.b.len() - self.pos) as u64 {
                        return None;
                    }
                    for _ in 0..n {
                        self.value(et, depth + 1)?;
                    }
                }
                Some(None)
            }
            _ => None,
        }
    }
}

/// Checks what candle's reader does not: `general.alignment` must be a power of two (0
/// divides by zero inside candle), and every tensor's element count must fit in memory
/// arithmetic (a product of corrupted dimensions overflows). Walks the header with bounds
/// checks; anything else malformed is left for candle's reader to report.
fn precheck(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut c = Cur {
        b: bytes,
        pos: 0,
        wide: true,
    };
    let Some(_magic) = c.u32() else {
        return Ok(());
    };
    let Some(version) = c.u32() else {
        return Ok(());
    };
    c.wide = version != 1;
    let walk = |c: &mut Cur<'_>| -> Option<std::result::Result<(), String>> {
        let tensors = c.len()?;
        let kvs = c.len()?;
        for _ in 0..kvs {
            let key = c.string()?.to_vec();
            let t = c.u32()?;
            let v = c.value(t, 0)?;
            if key == b"general.alignment" {
                if let Some(a) = v {
                    if a <= 0 || (a as u128).count_ones() != 1 {
                        return Some(Err(format!(
                            "general.alignment is {a}; it must be a power of two"
                        )));
                    }
                }
            }
        }
        for _ in 0..tensors {
            let name = String::from_utf8_lossy(c.string()?).into_owned();
            let nd = c.u32()?;
            if nd > 8 {
                return None;
            }
            let mut elems: u64 = 1;
            for _ in 0..nd {
                let d = c.len()?;
                match elems.checked_mul(d) {
                    Some(e) if e <= bytes.len() as u64 * 8 => elems = e,
                    _ => {
                        return Some(Err(format!(
                            "tensor {name}: its dimensions ask for more elements than the file can hold"
                        )))
                    }
                }
            }
            c.u32()?; // dtype
            c.u64()?; // offset
        }
        Some(Ok(()))
    };
    walk(&mut c).unwrap_or(Ok(()))
}

/// Load a GGUF file: config, dequantized HF-named weights (converted to `dtype` on `device`),
/// tokenizer and chat template.
pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<GgufModel> {
    let (mmap, content) = read_content(path)?;
    let md = &content.metadata;
    let config = config_from_gguf(&content, path)?;
    let tokenizer = Tokenizer::from_gguf(md, path)?;

    let names: Vec<&String> = content.tensor_infos.keys().collect();
    // Block-format copies for the packed path's products (f32 CPU models only).
    let keep_compact = dtype == DType::F32 && device.is_cpu();
    type Loaded = Option<(String, Tensor, Option<CompactMatrix>)>;
    let loaded: Vec<Result<Loaded>> = names
        .par_iter()
        .map(|gname| {
            let Some(hf) = hf_name(gname) else {
                tracing::warn!("{}: ignoring GGUF tensor {gname}", path.display());
                return Ok(None);
            };
            let info = &content.tensor_infos[*gname];
            let q = info
                .read(
                    &mut std::io::Cursor::new(&mmap[..]),
                    content.tensor_data_offset,
                    &Device::Cpu,
                )
                .map_err(|e| bad(path, format!("tensor {gname}: {}", brief(&e))))?;
            let mut t = q.dequantize(&Device::Cpu).map_err(|e| {
                bad(
                    path,
                    format!("tensor {gname}: cannot dequantize: {}", brief(&e)),
                )
            })?;
            let mut heads = None;
            if config.arch == Arch::Llama {
                if gname.contains(".attn_q.") {
                    heads = Some(config.num_attention_heads);
                } else if gname.contains(".attn_k.") {
                    heads = Some(config.num_key_value_heads);
                }
            }
            if let Some(h) = heads {
                t = unpermute_qk(&t, h)
                    .map_err(|e| bad(path, format!("tensor {gname}: un-permute: {e}")))?;
            }
            let t = t.to_dtype(dtype)?.to_device(device)?;
            let linear = hf.ends_with("_proj.weight")
                || hf == "lm_head.weight"
                || hf == "model.embed_tokens.weight";
            let compact = if keep_compact && linear && t.rank() == 2 {
                let order = match heads {
                    Some(h) => Some(
                        row_order(t.dims()[0], h)
                            .map_err(|e| bad(path, format!("tensor {gname}: un-permute: {e}")))?,
                    ),
                    None => None,
                };
                CompactMatrix::from_qtensor(&q, order.as_deref(), &t)
            } else {
                None
            };
            Ok(Some((hf, t, compact)))
        })
        .collect();
    let mut weights = Weights::with_capacity(loaded.len());
    let mut compact = CompactWeights::default();
    for item in loaded {
        if let Some((name, t, c)) = item? {
            if let Some(c) = c {
                compact.0.insert(name.clone(), std::sync::Arc::new(c));
            }
            weights.insert(name, t);
        }
    }

    let chat_template = match md.get("tokenizer.chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let tok_str = |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id));
    let bos_token = tok_str(tokenizer.bos_token_id());
    let eos_token = tok_str(tokenizer.eos_token_ids().first().copied());
    Ok(GgufModel {
        config,
        weights,
        compact,
        tokenizer,
        chat_template,
        bos_token,
        eos_token,
    })
}

/// GGUF tensor name -> Hugging Face parameter name (`None` for tensors we do not use, such as
/// `rope_freqs.weight`).
pub fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let hf = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undo llama.cpp's q/k row permutation (GGUF -> HF order): rows viewed as
/// `[n_head, hd/2, 2, rest]` are transposed to `[n_head, 2, hd/2, rest]`. Works for weight
/// matrices `[out, in]` and bias vectors `[out]`.
pub fn unpermute_qk(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let out = dims[0];
    if n_head == 0 || !out.is_multiple_of(2 * n_head) {
        candle_core::bail!("{out} rows cannot be split into {n_head} heads of even size")
    }
    let half = out / n_head / 2;
    let rest: usize = dims[1..].iter().product();
    w.reshape((n_head, half, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// Source row of each output row of [`unpermute_qk`] for a `[rows, _]` matrix.
fn row_order(rows: usize, n_head: usize) -> candle_core::Result<Vec<usize>> {
    let idx: Vec<f32> = (0..rows).map(|r| r as f32).collect();
    let t = unpermute_qk(&Tensor::from_vec(idx, (rows, 1), &Device::Cpu)?, n_head)?;
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(|r| r as usize)
        .collect())
}

/// Build the [`Config`] from GGUF metadata (and the tensor table: tied embeddings, biases).
pub fn config_from_gguf(content: &Content, path: &Path) -> Result<Config> {
    let md = &content.metadata;
    let (arch_name, arch) = gguf_arch(md, path)?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let get_usize = |k: &str| -> Result<Option<usize>> {
        match md.get(&key(k)) {
            None => Ok(None),
            Some(v) => value_as_i64(v)
                .and_then(|x| usize::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| bad(path, format!("metadata {} is not a count: {v:?}", key(k)))),
        }
    };
    let need = |k: &str| -> Result<usize> {
        get_usize(k)?.ok_or_else(|| bad(path, format!("missing metadata key {}", key(k))))
    };
    let get_f64 = |k: &str| -> Option<f64> {
        match md.get(&key(k))? {
            Value::F32(x) => Some(*x as f64),
            Value::F64(x) => Some(*x),
            v => value_as_i64(v).map(|x| x as f64),
        }
    };

    let hidden_size = need("embedding_length")?;
    let num_hidden_layers = need("block_count")?;
    let intermediate_size = need("feed_forward_length")?;
    let num_attention_heads = need("attention.head_count")?;
    let num_key_value_heads = get_usize("attention.head_count_kv")?.unwrap_or(num_attention_heads);
    if num_attention_heads == 0 || num_key_value_heads == 0 {
        return Err(bad(path, "attention.head_count(_kv) is 0"));
    }
    let head_dim = match get_usize("attention.key_length")? {
        Some(d) => d,
        None => hidden_size / num_attention_heads,
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(bad(
            path,
            format!("attention.key_length (head dim) must be even and positive, got {head_dim}"),
        ));
    }
    if hidden_size == 0 || intermediate_size == 0 {
        return Err(bad(
            path,
            "embedding_length and feed_forward_length must be positive",
        ));
    }
    // Each block has several tensors: a block count beyond the tensor count is corrupt (and
    // would make every per-layer table enormous).
    if num_hidden_layers == 0 || num_hidden_layers > content.tensor_infos.len() {
        return Err(bad(
            path,
            format!(
                "block_count is {num_hidden_layers} but the file has {} tensors",
                content.tensor_infos.len()
            ),
        ));
    }
    let max_position_embeddings = get_usize("context_length")?.unwrap_or(2048);
    let rope_theta = get_f64("rope.freq_base").unwrap_or(10_000.0);
    let rms_norm_eps = get_f64("attention.layer_norm_rms_epsilon").unwrap_or(1e-6);

    let vocab_size = vocab_rows(content, path)?;
    let has = |name: &str| content.tensor_infos.contains_key(name);
    let tie_word_embeddings = !has("output.weight");
    let attention_bias = arch == Arch::Qwen2 || has("blk.0.attn_q.bias");
    let qk_norm = arch == Arch::Qwen3 || has("blk.0.attn_q_norm.weight");

    let rope_scaling = match md.get(&key("rope.scaling.type")) {
        Some(Value::String(t)) if t != "none" => Some(RopeScaling {
            rope_type: t.clone(),
            factor: get_f64("rope.scaling.factor").unwrap_or(1.0),
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: get_usize("rope.scaling.original_context_length")?,
        }),
        _ => None,
    };
    let tok_id = |k: &str| {
        md.get(k)
            .and_then(value_as_i64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let eos = tok_id("tokenizer.ggml.eos_token_id");
    Ok(Config {
        arch,
        vocab_size,
        hidden_size,
        intermediate_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rope_theta,
        rope_scaling,
        rms_norm_eps,
        tie_word_embeddings,
        attention_bias,
        qk_norm,
        max_position_embeddings,
        bos_token_id: tok_id("tokenizer.ggml.bos_token_id"),
        eos_token_ids: eos.into_iter().collect(),
        pad_token_id: tok_id("tokenizer.ggml.padding_token_id"),
    })
}

/// `general.architecture`: its name and the [`Arch`] it is.
fn gguf_arch(md: &HashMap<String, Value>, path: &Path) -> Result<(String, Arch)> {
    let arch_name = match md.get("general.architecture") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(bad(path, "missing metadata key general.architecture")),
    };
    let arch = match arch_name.as_str() {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        "qwen3" => Arch::Qwen3,
        other => {
            return Err(bad(
                path,
                format!(
                    "general.architecture: unsupported architecture {other:?} \
                     (supported: llama, qwen2, qwen3)"
                ),
            ));
        }
    };
    Ok((arch_name, arch))
}

/// The vocabulary size: the rows of `token_embd.weight` (a token list of another length is
/// logged, as padded GGUFs list filler tokens).
fn vocab_rows(content: &Content, path: &Path) -> Result<usize> {
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| bad(path, "missing tensor token_embd.weight"))?;
    // `Config::vocab_size` is the rows of the embedding (the model's vocabulary); the token
    // list normally has the same length (padded GGUFs list filler tokens).
    let vocab_size = embd.shape.dims()[0];
    if let Some(Value::Array(a)) = content.metadata.get("tokenizer.ggml.tokens") {
        if a.len() != vocab_size {
            tracing::warn!(
                "{}: {} tokens in tokenizer.ggml.tokens but token_embd.weight has {vocab_size} rows",
                path.display(),
                a.len()
            );
        }
    }
    Ok(vocab_size)
}

/// Metadata of a GGUF file (for tools that print it).
pub fn metadata(path: &Path) -> Result<HashMap<String, Value>> {
    Ok(read_content(path)?.1.metadata)
}
