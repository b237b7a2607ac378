//! The routes: the router with its API-key check, and the handlers of `/v1/completions`,
//! `/v1/chat/completions`, `/v1/models` and `/health`.

use super::*;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(v1)
        .route("/health", get(health))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such route",
                None,
                "NotFoundError",
            )
        })
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// Checks `Authorization: Bearer KEY` when the server has a key (in constant time).
pub(crate) async fn auth(
    State(st): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    if let Some(key) = &st.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same_bytes(g.as_bytes(), key.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send `Authorization: Bearer KEY`",
                None,
                "AuthenticationError",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

pub(crate) struct AppState {
    pub(crate) name: String,
    /// Tokenizes prompts here when it can; its sampling runs on the sampling thread.
    pub(crate) sampler: Arc<dyn Sampler>,
    /// The model's context and vocabulary, when the sampler knows them.
    pub(crate) info: Option<ModelInfo>,
    pub(crate) created: u64,
    pub(crate) counter: AtomicU64,
    pub(crate) jobs: mpsc::UnboundedSender<Msg>,
    pub(crate) stats: Arc<ServerStats>,
    pub(crate) alive: Arc<AtomicBool>,
    pub(crate) api_key: Option<String>,
    pub(crate) max_queued_samples: usize,
    pub(crate) max_request_tokens: usize,
    pub(crate) max_prompt_bytes: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) request_timeout: Duration,
    /// Bounds the parse + tokenize tasks on the blocking pool.
    pub(crate) prep_slots: tokio::sync::Semaphore,
}

impl AppState {
    pub(crate) fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// The text of each generated token, when the sampler has the tokenizer and reported ids.
pub(crate) fn token_texts(st: &AppState, c: &TextCompletion) -> Option<Vec<String>> {
    c.token_ids
        .as_ref()?
        .iter()
        .map(|&t| st.sampler.token_text(t))
        .collect()
}

/// Token counts; a count the server does not know (a proxied text prompt) is null.
pub(crate) fn usage(prompt_lens: &[Option<usize>], outs: &[Vec<TextCompletion>]) -> Value {
    let prompt: Option<usize> = prompt_lens.iter().copied().sum();
    let completion: Option<usize> = outs
        .iter()
        .flatten()
        .map(|c| c.token_ids.as_ref().map(Vec::len))
        .sum();
    let total = prompt.zip(completion).map(|(p, c)| p + c);
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total})
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A body that could not be read (over the size limit, a broken upload) as a JSON error.
pub(crate) type Body = std::result::Result<Bytes, axum::extract::rejection::BytesRejection>;

pub(crate) fn body_bytes(body: Body) -> std::result::Result<Bytes, ApiError> {
    body.map_err(|r| ApiError::new(r.status(), r.body_text(), None, "invalid_request_error"))
}

pub(crate) async fn completions(State(st): State<Arc<AppState>>, body: Body) -> Response {
    let body = match body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match completions_inner(st, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses, checks and tokenizes a completions body (blocking work).
pub(crate) fn completions_prep(
    st: &AppState,
    body: &[u8],
) -> std::result::Result<(Vec<Prompt>, SamplingParams), ApiError> {
    let mut f = Fields::parse(body)?;
    check_model(st, &f.take("model")?)?;
    let prompt: Value = f
        .take("prompt")?
        .ok_or_else(|| ApiError::bad("missing field `prompt`", Some("prompt")))?;
    let logprobs: Option<u32> = f.take("logprobs")?;
    if f.take::<bool>("echo")? == Some(true) {
        return Err(ApiError::bad("echo is not supported", Some("echo")));
    }
    if f.take::<String>("suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad("suffix is not supported", Some("suffix")));
    }
    let sb = SamplingBody::take(&mut f)?;
    f.ignore_rest();
    let params = sampling(st, &sb, 16, logprobs.is_some())?;
    let text_bytes = match &prompt {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::len).sum(),
        _ => 0,
    };
    check_bytes(st, text_bytes, "prompt")?;
    let prompts = prompt_list(st, &prompt)?;
    check_caps(st, &prompts, &params)?;
    Ok((prompts, params))
}

pub(crate) async fn completions_inner(
    st: Arc<AppState>,
    body: Bytes,
) -> std::result::Result<Value, ApiError> {
    let st2 = st.clone();
    let (prompts, params) = off_worker(&st, move || completions_prep(&st2, &body)).await?;
    let st = &*st;
    let lens: Vec<Option<usize>> = prompts.iter().map(prompt_len).collect();
    let outs = submit(st, prompts, &params).await?;
    let mut choices = Vec::new();
    for (pi, o) in outs.iter().enumerate() {
        for (k, c) in o.iter().enumerate() {
            let logprobs = c.logprobs.as_ref().map(|lp| {
                let tokens = token_texts(st, c);
                let offsets: Option<Vec<usize>> = tokens.as_ref().map(|tokens| {
                    let mut offset = 0usize;
                    tokens
                        .iter()
                        .map(|t| {
                            let o = offset;
                            offset += t.len();
                            o
                        })
                        .collect()
                });
                json!({"tokens": tokens, "token_logprobs": lp, "top_logprobs": null, "text_offset": offsets})
            });
            choices.push(with_forced(
                json!({
                    "index": pi * params.n + k,
                    "text": c.text,
                    "finish_reason": c.finish_reason.as_str(),
                    "stop_reason": c.stop_string,
                    "logprobs": logprobs,
                    "token_ids": c.token_ids,
                }),
                c,
            ));
        }
    }
    Ok(json!({
        "id": format!("cmpl-{:x}", st.next()),
        "object": "text_completion",
        "created": now_s(),
        "model": st.name,
        "choices": choices,
        "usage": usage(&lens, &outs),
    }))
}

pub(crate) async fn chat_completions(State(st): State<Arc<AppState>>, body: Body) -> Response {
    let body = match body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match chat_inner(st, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses, checks, renders and tokenizes a chat body (blocking work).
pub(crate) fn chat_prep(
    st: &AppState,
    body: &[u8],
) -> std::result::Result<(Prompt, SamplingParams), ApiError> {
    let mut f = Fields::parse(body)?;
    check_model(st, &f.take("model")?)?;
    let msgs: Vec<ChatMessageBody> = f
        .take("messages")?
        .ok_or_else(|| ApiError::bad("missing field `messages`", Some("messages")))?;
    let max_completion_tokens: Option<usize> = f.take("max_completion_tokens")?;
    let logprobs: Option<bool> = f.take("logprobs")?;
    let top_logprobs: Option<u32> = f.take("top_logprobs")?;
    let mut s = SamplingBody::take(&mut f)?;
    f.ignore_rest();
    if msgs.is_empty() {
        return Err(ApiError::bad(
            "messages must not be empty",
            Some("messages"),
        ));
    }
    let msgs = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Ok(ChatMessage::new(
                m.role.clone(),
                message_text(i, &m.content)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, ApiError>>()?;
    let bytes = msgs
        .iter()
        .map(|m| m.content.len() + m.role.len())
        .fold(0usize, usize::saturating_add);
    check_bytes(st, bytes, "messages")?;
    // Rendered with the model's chat template and tokenized by the sampler when it can.
    let prompt = tokenized(st, Prompt::Chat(msgs), "messages")?;
    if s.max_tokens.is_none() {
        s.max_tokens = max_completion_tokens;
    }
    let default_max = match (st.info, prompt_len(&prompt)) {
        (Some(info), Some(len)) => info.context - len,
        _ => DEFAULT_CHAT_MAX_TOKENS,
    };
    let want_lp = logprobs == Some(true) || top_logprobs.is_some_and(|k| k > 0);
    let params = sampling(st, &s, default_max, want_lp)?;
    check_caps(st, std::slice::from_ref(&prompt), &params)?;
    Ok((prompt, params))
}

/// A chat's `max_tokens` when the request has none and the server does not know the context
/// (a proxy): the rest of the context otherwise.
pub(crate) const DEFAULT_CHAT_MAX_TOKENS: usize = 1024;

pub(crate) async fn chat_inner(
    st: Arc<AppState>,
    body: Bytes,
) -> std::result::Result<Value, ApiError> {
    let st2 = st.clone();
    let (prompt, params) = off_worker(&st, move || chat_prep(&st2, &body)).await?;
    let st = &*st;
    let lens = [prompt_len(&prompt)];
    let outs = submit(st, vec![prompt], &params).await?;
    let mut choices = Vec::new();
    for (k, c) in outs.iter().flatten().enumerate() {
        let logprobs = c.logprobs.as_ref().map(|lp| {
            let tokens = token_texts(st, c);
            let content: Vec<Value> = lp
                .iter()
                .enumerate()
                .map(|(j, &l)| {
                    let tok = tokens.as_ref().and_then(|t| t.get(j));
                    json!({"token": tok, "logprob": l, "bytes": tok.map(|t| t.as_bytes()), "top_logprobs": []})
                })
                .collect();
            json!({ "content": content })
        });
        choices.push(with_forced(
            json!({
                "index": k,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason.as_str(),
                "stop_reason": c.stop_string,
                "logprobs": logprobs,
                "token_ids": c.token_ids,
            }),
            c,
        ));
    }
    Ok(json!({
        "id": format!("chatcmpl-{:x}", st.next()),
        "object": "chat.completion",
        "created": now_s(),
        "model": st.name,
        "choices": choices,
        "usage": usage(&lens, &outs),
    }))
}

/// A choice with `forced` (per token of `token_ids`: written by the engine's forced answer)
/// when anything was forced.
pub(crate) fn with_forced(mut choice: Value, c: &TextCompletion) -> Value {
    if !c.forced.is_empty() {
        choice["forced"] = json!(c.forced);
    }
    choice
}

pub(crate) async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    // `root` is the served name: the model's path on this machine is nobody's business.
    Json(json!({
        "object": "list",
        "data": [{
            "id": st.name,
            "object": "model",
            "created": st.created,
            "owned_by": "rzero",
            "root": st.name,
            "max_model_len": st.info.map(|i| i.context),
        }]
    }))
}

pub(crate) async fn health(State(st): State<Arc<AppState>>) -> Response {
    if st.alive.load(Ordering::SeqCst) {
        StatusCode::OK.into_response()
    } else {
        unavailable("the sampling thread has stopped").into_response()
    }
}
