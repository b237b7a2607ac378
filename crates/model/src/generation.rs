//! The model's generation defaults (`generation_config.json`), read by loading and written
//! by saving.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Generation defaults of the model (`generation_config.json`, merged with the special ids of
/// `config.json` and `tokenizer_config.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// BOS id.
    pub bos_token_id: Option<u32>,
    /// EOS ids: generation stops at any of them.
    pub eos_token_ids: Vec<u32>,
    /// PAD id.
    pub pad_token_id: Option<u32>,
    /// Default sampling temperature.
    pub temperature: Option<f64>,
    /// Default nucleus threshold.
    pub top_p: Option<f64>,
    /// Default top-k.
    pub top_k: Option<usize>,
    /// Whether the model samples by default.
    pub do_sample: Option<bool>,
}

impl GenerationConfig {
    /// Parse a `generation_config.json` object (`eos_token_id` may be a number or a list).
    pub fn from_hf_value(v: &Value, origin: &Path) -> Result<Self> {
        let obj = v.as_object().ok_or_else(|| Error::BadFile {
            path: origin.to_path_buf(),
            msg: "must be a JSON object".into(),
        })?;
        let bad = |k: &str, v: &Value| Error::BadFile {
            path: origin.to_path_buf(),
            msg: format!("key `{k}` has an invalid value {v}"),
        };
        let id = |k: &str| -> Result<Option<u32>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .map(Some)
                    .ok_or_else(|| bad(k, v)),
            }
        };
        let eos_token_ids = match obj.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| bad("eos_token_id", x))
                })
                .collect::<Result<_>>()?,
            Some(v) => vec![v
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| bad("eos_token_id", v))?],
        };
        let f = |k: &str| -> Result<Option<f64>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(k, v)),
            }
        };
        Ok(Self {
            bos_token_id: id("bos_token_id")?,
            eos_token_ids,
            pad_token_id: id("pad_token_id")?,
            temperature: f("temperature")?,
            top_p: f("top_p")?,
            top_k: match obj.get("top_k") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| bad("top_k", v))? as usize),
            },
            do_sample: match obj.get("do_sample") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_bool().ok_or_else(|| bad("do_sample", v))?),
            },
        })
    }

    /// The `generation_config.json` object transformers reads.
    pub fn to_hf_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(b) = self.bos_token_id {
            m.insert("bos_token_id".into(), b.into());
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                m.insert("eos_token_id".into(), (*one).into());
            }
            many => {
                m.insert("eos_token_id".into(), many.into());
            }
        }
        if let Some(p) = self.pad_token_id {
            m.insert("pad_token_id".into(), p.into());
        }
        if let Some(x) = self.do_sample {
            m.insert("do_sample".into(), x.into());
        }
        if let Some(x) = self.temperature {
            m.insert("temperature".into(), x.into());
        }
        if let Some(x) = self.top_p {
            m.insert("top_p".into(), x.into());
        }
        if let Some(x) = self.top_k {
            m.insert("top_k".into(), x.into());
        }
        Value::Object(m)
    }
}
