//! Request parsing: JSON fields, sampling parameters, prompts and the caps on them.

use super::*;

/// A JSON object body whose fields are taken one by one, so every error names its field.
pub(crate) struct Fields(pub(crate) Map<String, Value>);

impl Fields {
    pub(crate) fn parse(body: &[u8]) -> std::result::Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Self(m)),
            Ok(_) => Err(ApiError::bad("the body must be a JSON object", None)),
            Err(e) => Err(ApiError::bad(format!("invalid JSON body: {e}"), None)),
        }
    }

    /// The field `name` (absent or null: `None`).
    pub(crate) fn take<T: DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> std::result::Result<Option<T>, ApiError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| ApiError::bad(format!("field `{name}`: {e}"), Some(name))),
        }
    }

    /// Logs the fields nobody took (ignored, as vLLM does).
    pub(crate) fn ignore_rest(self) {
        if !self.0.is_empty() {
            let keys: Vec<&str> = self.0.keys().map(String::as_str).collect();
            tracing::debug!("ignoring request fields {keys:?}");
        }
    }
}

/// Sampling fields shared by both endpoints.
#[derive(Debug)]
pub(crate) struct SamplingBody {
    pub(crate) n: Option<usize>,
    pub(crate) best_of: Option<usize>,
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) top_k: Option<i64>,
    pub(crate) min_p: Option<f32>,
    pub(crate) max_tokens: Option<usize>,
    pub(crate) stop: Option<Value>,
    pub(crate) seed: Option<i64>,
    pub(crate) stream: Option<bool>,
    pub(crate) stop_token_ids: Option<Vec<u32>>,
    pub(crate) ignore_eos: Option<bool>,
    pub(crate) presence_penalty: Option<f32>,
    pub(crate) frequency_penalty: Option<f32>,
    pub(crate) repetition_penalty: Option<f32>,
    /// rzero's forced final answers: `true` (the default cue and budget) or
    /// `{"cue": "...", "max_tokens": K}`.
    pub(crate) force_answer: Option<Value>,
}

impl SamplingBody {
    pub(crate) fn take(f: &mut Fields) -> std::result::Result<Self, ApiError> {
        Ok(Self {
            n: f.take("n")?,
            best_of: f.take("best_of")?,
            temperature: f.take("temperature")?,
            top_p: f.take("top_p")?,
            top_k: f.take("top_k")?,
            min_p: f.take("min_p")?,
            max_tokens: f.take("max_tokens")?,
            stop: f.take("stop")?,
            seed: f.take("seed")?,
            stream: f.take("stream")?,
            stop_token_ids: f.take("stop_token_ids")?,
            ignore_eos: f.take("ignore_eos")?,
            presence_penalty: f.take("presence_penalty")?,
            frequency_penalty: f.take("frequency_penalty")?,
            repetition_penalty: f.take("repetition_penalty")?,
            force_answer: f.take("force_answer")?,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatMessageBody {
    pub(crate) role: String,
    pub(crate) content: Option<Value>,
}

pub(crate) fn check_model(
    st: &AppState,
    model: &Option<String>,
) -> std::result::Result<(), ApiError> {
    match model {
        Some(m) if m != &st.name => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "the model `{m}` does not exist; this server serves `{}`",
                st.name
            ),
            Some("model"),
            "NotFoundError",
        )),
        _ => Ok(()),
    }
}

/// Sampling parameters of a request; `default_max` is used without `max_tokens`.
pub(crate) fn sampling(
    st: &AppState,
    s: &SamplingBody,
    default_max: usize,
    logprobs: bool,
) -> std::result::Result<SamplingParams, ApiError> {
    if s.stream == Some(true) {
        return Err(ApiError::bad(
            "streaming is not supported by rzero serve; send `stream: false`",
            Some("stream"),
        ));
    }
    let n = s.n.unwrap_or(1);
    if n == 0 || n > MAX_SAMPLES_PER_REQUEST {
        return Err(ApiError::bad(
            format!("n must be in 1..={MAX_SAMPLES_PER_REQUEST}, got {n}"),
            Some("n"),
        ));
    }
    if let Some(b) = s.best_of {
        if b != n {
            return Err(ApiError::bad(
                "best_of is not supported (only best_of == n)",
                Some("best_of"),
            ));
        }
    }
    for (name, v, neutral) in [
        ("presence_penalty", s.presence_penalty, 0.0),
        ("frequency_penalty", s.frequency_penalty, 0.0),
        ("repetition_penalty", s.repetition_penalty, 1.0),
    ] {
        if v.is_some_and(|v| v != neutral) {
            return Err(ApiError::bad(
                format!("{name} is not supported (only {neutral})"),
                Some(name),
            ));
        }
    }
    let stop = match &s.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(x)) => vec![x.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::bad("stop must be a string or a list of strings", Some("stop"))
            })?,
        Some(_) => {
            return Err(ApiError::bad(
                "stop must be a string or a list of strings",
                Some("stop"),
            ))
        }
    };
    if let Some(info) = st.info {
        if let Some(bad) = s
            .stop_token_ids
            .iter()
            .flatten()
            .find(|&&t| t as usize >= info.vocab_size)
        {
            return Err(ApiError::bad(
                format!("stop token id {bad} >= vocabulary size {}", info.vocab_size),
                Some("stop_token_ids"),
            ));
        }
    }
    let seed = match s.seed {
        Some(x) => x as u64,
        // 63 bits: a proxy passes it on, and servers (this one too) take a signed 64-bit seed.
        None => random_seed(st.next()) & i64::MAX as u64,
    };
    let p = SamplingParams {
        n,
        temperature: s.temperature.unwrap_or(1.0),
        top_p: s.top_p.unwrap_or(1.0),
        top_k: s.top_k.map_or(0, |k| k.max(0) as usize),
        min_p: s.min_p.unwrap_or(0.0),
        max_new_tokens: s.max_tokens.unwrap_or(default_max),
        stop,
        stop_token_ids: s.stop_token_ids.clone().unwrap_or_default(),
        ignore_eos: s.ignore_eos.unwrap_or(false),
        seed,
        logprobs,
        force_answer: force_answer(&s.force_answer)?,
    };
    p.validate().map_err(|msg| {
        let field = msg.split_whitespace().next().unwrap_or("");
        let param = match field {
            "max_new_tokens" => "max_tokens",
            "stop" => "stop",
            f => f,
        };
        let msg = msg.replacen("max_new_tokens", "max_tokens", 1);
        ApiError::bad(msg, Some(param))
    })?;
    Ok(p)
}

/// The `force_answer` field: absent, `null` or `false` = off; `true` = the defaults; an
/// object sets `cue` and/or `max_tokens`.
pub(crate) fn force_answer(
    v: &Option<Value>,
) -> std::result::Result<Option<engine::ForceAnswer>, ApiError> {
    let bad = |m: String| ApiError::bad(m, Some("force_answer"));
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(engine::ForceAnswer::default())),
        Some(o @ Value::Object(_)) => serde_json::from_value(o.clone())
            .map(Some)
            .map_err(|e| bad(format!("force_answer: {e}"))),
        Some(_) => Err(bad(
            "force_answer must be true, false or {\"cue\": ..., \"max_tokens\": ...}".into(),
        )),
    }
}

pub(crate) fn random_seed(counter: u64) -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = t ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks one prompt's ids against the model (when the sampler knows it).
pub(crate) fn check_prompt(
    st: &AppState,
    ids: &[u32],
    param: &str,
) -> std::result::Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::bad("the prompt is empty", Some(param)));
    }
    let Some(info) = st.info else {
        return Ok(());
    };
    if ids.len() >= info.context {
        return Err(ApiError::bad(
            format!(
                "the prompt has {} tokens; the model's context is {} tokens",
                ids.len(),
                info.context
            ),
            Some(param),
        ));
    }
    if let Some(t) = ids.iter().find(|&&t| t as usize >= info.vocab_size) {
        return Err(ApiError::bad(
            format!("prompt token id {t} >= vocabulary size {}", info.vocab_size),
            Some(param),
        ));
    }
    Ok(())
}

/// A prompt as the sampler will get it: token ids, checked, when the sampler tokenizes in
/// this process; else as sent (token ids checked as far as the server knows the model).
pub(crate) fn tokenized(
    st: &AppState,
    prompt: Prompt,
    param: &str,
) -> std::result::Result<Prompt, ApiError> {
    let ids = match prompt {
        Prompt::Tokens(ids) => ids,
        p => match st.sampler.tokenize(&p) {
            Some(Ok(ids)) => ids,
            Some(Err(e)) => {
                let what = if param == "prompt" { "prompt" } else { "chat" };
                return Err(ApiError::bad(
                    format!("tokenizing the {what}: {e}"),
                    Some(param),
                ));
            }
            None if matches!(&p, Prompt::Text(t) if t.is_empty()) => {
                return Err(ApiError::bad("the prompt is empty", Some(param)))
            }
            None => return Ok(p),
        },
    };
    check_prompt(st, &ids, param)?;
    Ok(Prompt::Tokens(ids))
}

/// Prompt length in tokens, when known (token prompts).
pub(crate) fn prompt_len(p: &Prompt) -> Option<usize> {
    match p {
        Prompt::Tokens(ids) => Some(ids.len()),
        _ => None,
    }
}

pub(crate) fn prompt_list(st: &AppState, v: &Value) -> std::result::Result<Vec<Prompt>, ApiError> {
    const SHAPE: &str =
        "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids";
    let text = |s: &str| Prompt::Text(s.to_string());
    let ids = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|x| x.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    let prompts: Vec<Prompt> = match v {
        Value::String(s) => vec![text(s)],
        Value::Array(a) if a.is_empty() => return Err(ApiError::bad(SHAPE, Some("prompt"))),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .map(|s| text(s.as_str().unwrap_or_default()))
            .collect(),
        Value::Array(a) if a.iter().all(Value::is_number) => {
            vec![Prompt::Tokens(
                ids(a).ok_or_else(|| ApiError::bad(SHAPE, Some("prompt")))?,
            )]
        }
        Value::Array(a) if a.iter().all(Value::is_array) => a
            .iter()
            .map(|x| {
                x.as_array()
                    .and_then(|x| ids(x))
                    .map(Prompt::Tokens)
                    .ok_or_else(|| ApiError::bad(SHAPE, Some("prompt")))
            })
            .collect::<std::result::Result<_, _>>()?,
        _ => return Err(ApiError::bad(SHAPE, Some("prompt"))),
    };
    prompts
        .into_iter()
        .map(|p| tokenized(st, p, "prompt"))
        .collect()
}

/// Checks the per-request caps: completions (`n` × prompts) and generated tokens (capped by
/// the context when the server knows it and the prompt's length).
pub(crate) fn check_caps(
    st: &AppState,
    prompts: &[Prompt],
    params: &SamplingParams,
) -> std::result::Result<(), ApiError> {
    if prompts.len().saturating_mul(params.n) > MAX_SAMPLES_PER_REQUEST {
        return Err(ApiError::bad(
            format!("at most {MAX_SAMPLES_PER_REQUEST} completions per request (prompts × n)"),
            Some("n"),
        ));
    }
    let tokens: usize = prompts
        .iter()
        .map(|p| {
            let room = match (st.info, prompt_len(p)) {
                (Some(info), Some(len)) => info.context.saturating_sub(len),
                _ => usize::MAX,
            };
            params.n.saturating_mul(params.max_new_tokens.min(room))
        })
        .fold(0usize, usize::saturating_add);
    if tokens > st.max_request_tokens {
        return Err(ApiError::bad(
            format!(
                "the request asks for up to {tokens} generated tokens (n × prompts × max_tokens); \
                 this server allows {} per request",
                st.max_request_tokens
            ),
            Some("max_tokens"),
        ));
    }
    Ok(())
}

/// Rejects prompt text over the byte cap, before any tokenizing.
pub(crate) fn check_bytes(
    st: &AppState,
    bytes: usize,
    param: &str,
) -> std::result::Result<(), ApiError> {
    if bytes > st.max_prompt_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the prompt text has {bytes} bytes; this server takes at most {}",
                st.max_prompt_bytes
            ),
            Some(param),
            "invalid_request_error",
        ));
    }
    Ok(())
}

pub(crate) fn message_text(
    i: usize,
    content: &Option<Value>,
) -> std::result::Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut s = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => s.push_str(t),
                    _ => {
                        return Err(ApiError::bad(
                            "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                            Some(&param),
                        ))
                    }
                }
            }
            Ok(s)
        }
        Some(_) => Err(ApiError::bad(
            "content must be a string or a list of text parts",
            Some(&param),
        )),
    }
}
