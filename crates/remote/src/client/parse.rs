//! Reading the completions of an OpenAI-compatible response body.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::snippet;
use crate::{FinishReason, TextCompletion};

/// The completions in a response body, ordered by `index`.
pub(super) fn parse_choices(
    url: &str,
    v: &Value,
    n: usize,
    chat: bool,
) -> Result<Vec<TextCompletion>> {
    let bad = |msg: String| Error::BadResponse {
        url: url.to_string(),
        msg,
    };
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("no `choices` list: {}", snippet(&v.to_string()))))?;
    if choices.len() > n {
        return Err(bad(format!("{} choices for n = {n}", choices.len())));
    }
    let mut out: Vec<(usize, TextCompletion)> = Vec::with_capacity(choices.len());
    for (k, c) in choices.iter().enumerate() {
        let index = c
            .get("index")
            .and_then(Value::as_u64)
            .map_or(k, |i| i as usize);
        let text = if chat {
            c.pointer("/message/content").and_then(Value::as_str)
        } else {
            c.get("text").and_then(Value::as_str)
        }
        .ok_or_else(|| bad(format!("choice {k} has no text")))?
        .to_string();
        let finish_reason = match c.get("finish_reason").and_then(Value::as_str) {
            Some("length") => FinishReason::Length,
            Some("stop") | Some("eos") => FinishReason::Stop,
            other => {
                return Err(bad(format!(
                    "choice {k}: finish_reason {other:?} (expected \"stop\" or \"length\")"
                )))
            }
        };
        let token_ids = c
            .get("token_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
                    .collect::<Option<Vec<u32>>>()
                    .ok_or_else(|| bad(format!("choice {k}: token_ids are not token ids")))
            })
            .transpose()?;
        let lp = c.get("logprobs").filter(|l| !l.is_null());
        let logprobs = lp
            .map(|l| {
                let list: Option<Vec<Option<f64>>> = if chat {
                    l.get("content").and_then(Value::as_array).map(|a| {
                        a.iter()
                            .map(|e| e.get("logprob").and_then(Value::as_f64))
                            .collect()
                    })
                } else {
                    l.get("token_logprobs")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(Value::as_f64).collect())
                };
                list.and_then(|x| x.into_iter().map(|x| x.map(|x| x as f32)).collect())
                    .ok_or_else(|| bad(format!("choice {k}: unreadable logprobs")))
            })
            .transpose()?;
        out.push((
            index,
            TextCompletion {
                text,
                finish_reason,
                token_ids,
                logprobs,
                forced: Vec::new(),
                forced_from: None,
                // vLLM's `stop_reason`: the stop string, or a stop token id (not kept).
                stop_string: c
                    .get("stop_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        ));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, c)| c).collect())
}
