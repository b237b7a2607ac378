//! Tokenizer: a thin wrapper over the `tokenizers` crate plus the model's special ids.
//!
//! Two sources:
//! - [`Tokenizer::from_file`]: a Hugging Face `tokenizer.json`.
//! - [`Tokenizer::from_gguf`]: the `tokenizer.ggml.*` metadata of a GGUF file (`gpt2` byte-level
//!   BPE). The tokenizer is rebuilt in the layout of the model's own `tokenizer.json`: for
//!   SmolLM2 (`pre = smollm`) that is `Sequence[Digits(individual_digits), ByteLevel]`, for
//!   Qwen2 / Llama 3 a `Split` regex followed by `ByteLevel(use_regex=false)`. CONTROL tokens
//!   (token type 3) become special added tokens, so they stay whole in text.
//!
//! The special ids (BOS, EOS list, PAD) are not part of `tokenizer.json`; the loader fills them
//! in from `tokenizer_config.json`, `generation_config.json`, `config.json` or GGUF metadata.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use serde_json::json;

use crate::error::{Error, Result};

/// GGUF token type of a CONTROL token (`<|im_start|>` and friends).
const GGUF_TOKEN_CONTROL: i64 = 3;
/// GGUF token type of a USER_DEFINED token (added, but not special).
const GGUF_TOKEN_USER_DEFINED: i64 = 4;

/// Qwen2 / Qwen2.5 / Qwen3 pre-tokenizer split pattern (from their `tokenizer.json`).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3 pre-tokenizer split pattern (numbers in groups of up to 3).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A text tokenizer with the model's special token ids.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Vec<u32>,
    pad: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .finish()
    }
}

impl Tokenizer {
    /// Wrap an existing `tokenizers::Tokenizer` (no special ids set).
    pub fn new(inner: tokenizers::Tokenizer) -> Self {
        Self {
            inner,
            bos: None,
            eos: Vec::new(),
            pad: None,
        }
    }

    /// Read a Hugging Face `tokenizer.json`. Special ids are left unset; see
    /// [`Tokenizer::set_special_ids`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(fsutil::at(path))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            msg: format!("not a valid tokenizer.json: {e}"),
        })?;
        Ok(Self::new(inner))
    }

    /// Build the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    /// `origin` is the GGUF path, used in error messages.
    pub fn from_gguf(metadata: &HashMap<String, Value>, origin: &Path) -> Result<Self> {
        let bad = |msg: String| Error::BadFile {
            path: origin.to_path_buf(),
            msg,
        };
        let model = md_str(metadata, "tokenizer.ggml.model").unwrap_or("gpt2");
        if model != "gpt2" {
            return Err(bad(format!(
                "tokenizer.ggml.model = {model:?} is not supported (only byte-level BPE, \"gpt2\")"
            )));
        }
        let tokens = md_array(metadata, "tokenizer.ggml.tokens")
            .ok_or_else(|| bad("missing metadata key tokenizer.ggml.tokens".into()))?;
        let merges = md_array(metadata, "tokenizer.ggml.merges").unwrap_or(&[]);
        let types = md_array(metadata, "tokenizer.ggml.token_type");
        let pre = md_str(metadata, "tokenizer.ggml.pre").unwrap_or("default");

        let mut vocab = serde_json::Map::with_capacity(tokens.len());
        let mut added = Vec::new();
        for (id, tok) in tokens.iter().enumerate() {
            let Value::String(tok) = tok else {
                return Err(bad(format!("tokenizer.ggml.tokens[{id}] is not a string")));
            };
            if vocab.contains_key(tok) {
                tracing::warn!("{}: duplicate token {tok:?} at id {id}", origin.display());
            } else {
                vocab.insert(tok.clone(), json!(id));
            }
            let ty = types
                .and_then(|t| t.get(id))
                .and_then(value_as_i64)
                .unwrap_or(1);
            if ty == GGUF_TOKEN_CONTROL || ty == GGUF_TOKEN_USER_DEFINED {
                added.push(json!({
                    "id": id,
                    "content": tok,
                    "single_word": false,
                    "lstrip": false,
                    "rstrip": false,
                    "normalized": ty != GGUF_TOKEN_CONTROL,
                    "special": ty == GGUF_TOKEN_CONTROL,
                }));
            }
        }
        let mut merge_pairs = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let Value::String(m) = m else {
                return Err(bad(format!("tokenizer.ggml.merges[{i}] is not a string")));
            };
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| bad(format!("tokenizer.ggml.merges[{i}] = {m:?} has no space")))?;
            merge_pairs.push(json!([a, b]));
        }

        let pre_tokenizer = gguf_pre_tokenizer(pre, origin);

        let bos = md_u32(metadata, "tokenizer.ggml.bos_token_id");
        let eos = md_u32(metadata, "tokenizer.ggml.eos_token_id");
        let pad = md_u32(metadata, "tokenizer.ggml.padding_token_id");
        let add_bos = matches!(
            metadata.get("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        );
        let post_processor = match (add_bos, bos) {
            (true, Some(bos_id)) => {
                let bos_tok = tokens
                    .get(bos_id as usize)
                    .and_then(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .ok_or_else(|| bad(format!("bos_token_id {bos_id} is out of range")))?;
                json!({
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": bos_tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": bos_tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {bos_tok.clone(): {"id": bos_tok, "ids": [bos_id], "tokens": [bos_tok]}}
                })
            }
            _ => {
                json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
            }
        };
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null, // byte-level BPE covers every byte
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merge_pairs,
            }
        });
        let text = serde_json::to_string(&doc).map_err(|e| bad(format!("tokenizer: {e}")))?;
        let inner = tokenizers::Tokenizer::from_bytes(text.as_bytes()).map_err(|e| {
            bad(format!(
                "cannot build the tokenizer from tokenizer.ggml.*: {e}"
            ))
        })?;
        let mut t = Self::new(inner);
        t.set_special_ids(bos, eos.into_iter().collect(), pad.or(eos));
        Ok(t)
    }

    /// Set the special ids (BOS, the EOS list, PAD).
    pub fn set_special_ids(&mut self, bos: Option<u32>, eos: Vec<u32>, pad: Option<u32>) {
        self.bos = bos;
        self.eos = eos;
        self.pad = pad;
    }

    /// Encode text. Special tokens written in the text (`<|im_start|>`) are always kept whole;
    /// `add_special` adds what the post-processor adds (a BOS for some models).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| Error::Tokenizer(format!("encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The byte-level token strings of `text` (`Ġ` = space), as `tokenizers` reports them.
    pub fn encode_tokens(&self, text: &str, add_special: bool) -> Result<Vec<String>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| Error::Tokenizer(format!("encode: {e}")))?;
        Ok(enc.get_tokens().to_vec())
    }

    /// Decode ids to text; `skip_special` drops special tokens. Ids past the tokenizer's
    /// vocabulary decode to nothing, as in transformers: models often pad their embedding
    /// matrix beyond the tokenizer (Qwen: 151,936 rows for 151,665 tokens) and sampling can
    /// land there.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let vocab = self.vocab_size();
        let known: Vec<u32>;
        let ids = if ids.iter().any(|&id| id as usize >= vocab) {
            known = ids
                .iter()
                .copied()
                .filter(|&id| (id as usize) < vocab)
                .collect();
            &known[..]
        } else {
            ids
        };
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| Error::Tokenizer(format!("decode: {e}")))
    }

    /// EOS ids (generation stops at any of them). May be empty.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos
    }

    /// BOS id, if the model has one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    /// PAD id, if the model has one.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token string (byte-level form, or an added token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether `id` is a special added token (skipped by `decode(.., true)`).
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    }

    /// The wrapped `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The tokenizer as `tokenizer.json` text.
    pub fn to_json_string(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(|e| Error::Tokenizer(format!("serialize: {e}")))
    }

    /// Write `tokenizer.json` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let text = self.to_json_string()?;
        Ok(fsutil::write_atomic(path.as_ref(), text.as_bytes())?)
    }
}

/// The pre-tokenizer (tokenizer.json form) of a GGUF's `tokenizer.ggml.pre`: plain GPT-2
/// byte-level splitting for unknown names (with a warning naming `origin`).
fn gguf_pre_tokenizer(pre: &str, origin: &Path) -> serde_json::Value {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    match pre {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            split(QWEN2_PATTERN), byte_level(false)]}),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            split(LLAMA3_PATTERN), byte_level(false)]}),
        "gpt2" | "default" => byte_level(true),
        other => {
            tracing::warn!(
                "{}: tokenizer.ggml.pre = {other:?} is not known; using plain GPT-2 byte-level splitting",
                origin.display()
            );
            byte_level(true)
        }
    }
}

fn md_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    match md.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn md_array<'a>(md: &'a HashMap<String, Value>, key: &str) -> Option<&'a [Value]> {
    match md.get(key) {
        Some(Value::Array(a)) => Some(a.as_slice()),
        _ => None,
    }
}

fn md_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key)
        .and_then(value_as_i64)
        .and_then(|v| u32::try_from(v).ok())
}

/// Any GGUF integer value as i64.
pub(crate) fn value_as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => *x as i64,
        Value::I8(x) => *x as i64,
        Value::U16(x) => *x as i64,
        Value::I16(x) => *x as i64,
        Value::U32(x) => *x as i64,
        Value::I32(x) => *x as i64,
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}
