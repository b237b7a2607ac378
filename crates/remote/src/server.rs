//! `rzero serve`: the batched engine behind an OpenAI-compatible HTTP API (axum on tokio).
//!
//! Routes: `POST /v1/completions` (prompt: string, list of strings, token ids or list of
//! token-id lists), `POST /v1/chat/completions` (messages rendered with the model's chat
//! template), `GET /v1/models`, `GET /health`. Sampling fields: `n`, `temperature`,
//! `top_p`, `top_k`, `min_p`, `max_tokens` (`max_completion_tokens` in chat), `stop`
//! (string or list), `seed`, `logprobs`, and vLLM's `stop_token_ids` and `ignore_eos`.
//! Every choice also carries `token_ids` (the generated ids), as vLLM's `return_token_ids`
//! does. Streaming, `echo`, `suffix` and penalties are refused with a 400 that names the
//! field; unknown fields are ignored (as vLLM does).
//!
//! Batching: handlers parse and tokenize, then queue a job; one engine thread waits for the
//! first job, lets `batch_window` pass (and keeps gathering while requests keep arriving, up
//! to a full batch or 10 windows) so that concurrent requests join it, and runs all pending
//! jobs in one [`engine::Engine::generate`] call (continuous batching inside it).
//! Text prompts are tokenized as is (no special tokens added), like the local engine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{Engine, EngineConfig, RequestOutput, SamplingParams};
use model::{ChatMessage, ChatTemplate, LoadedModel, Model, Tokenizer};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Most completions one request may ask for (`n` × prompts).
pub const MAX_SAMPLES_PER_REQUEST: usize = 1024;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model id clients name (`model` field); requests naming another model get 404.
    pub served_model_name: String,
    /// Engine limits. Empty `eos_token_ids` are filled from the model.
    pub engine: EngineConfig,
    /// How long the engine thread waits after the first pending request for others to join
    /// its batch.
    pub batch_window: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            served_model_name: "rzero".into(),
            engine: EngineConfig {
                max_batch_size: 64,
                ..EngineConfig::default()
            },
            batch_window: Duration::from_millis(3),
        }
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Engine batches run.
    pub batches: AtomicU64,
    /// Requests (prompts) generated.
    pub requests: AtomicU64,
    /// Completions generated.
    pub completions: AtomicU64,
}

/// A running server (see [`spawn`]).
pub struct ServerHandle {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// The bound address (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Batches, requests and completions so far.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// `http://ADDR` — what [`crate::RemoteConfig::base_urls`] takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::Server("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Serves `loaded` on `addr` until Ctrl-C.
pub fn serve(loaded: &LoadedModel, addr: SocketAddr, opts: ServeOptions) -> Result<()> {
    let (listener, state, _) = prepare(loaded, addr, opts)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        run(listener, state, shutdown).await
    })
}

/// Starts serving `loaded` on `addr` in background threads and returns once the socket is
/// bound (use port 0 for an ephemeral port; [`ServerHandle::addr`] tells which).
pub fn spawn(loaded: &LoadedModel, addr: SocketAddr, opts: ServeOptions) -> Result<ServerHandle> {
    let (listener, state, stats) = prepare(loaded, addr, opts)?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("rzero-serve".into())
        .spawn(move || {
            let rt = runtime()?;
            rt.block_on(run(listener, state, async {
                let _ = stopped.await;
            }))
        })
        .map_err(Error::io("starting the server thread"))?;
    Ok(ServerHandle {
        addr,
        stats,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rzero-http")
        .build()
        .map_err(Error::io("starting the tokio runtime"))
}

/// Binds the socket, builds the model and starts the engine thread.
fn prepare(
    loaded: &LoadedModel,
    addr: SocketAddr,
    opts: ServeOptions,
) -> Result<(std::net::TcpListener, Arc<AppState>, Arc<ServerStats>)> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(Error::io(format!("binding {addr}")))?;
    listener
        .set_nonblocking(true)
        .map_err(Error::io("configuring the socket"))?;
    let model = loaded.model()?;
    let tokenizer = Arc::new(loaded.tokenizer.clone());
    let mut cfg = opts.engine.clone();
    if cfg.eos_token_ids.is_empty() {
        cfg.eos_token_ids = crate::local::eos_ids(loaded);
    }
    let ctx = model.config().max_position_embeddings;
    let vocab = model.config().vocab_size;
    let engine = Engine::new(model, tokenizer.clone(), cfg)?;
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let window = opts.batch_window;
    let stats = Arc::new(ServerStats::default());
    let st2 = stats.clone();
    std::thread::Builder::new()
        .name("rzero-engine".into())
        .spawn(move || engine_loop(engine, rx, window, &st2))
        .map_err(Error::io("starting the engine thread"))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let state = Arc::new(AppState {
        name: opts.served_model_name,
        source: loaded.source.display().to_string(),
        tokenizer,
        template: loaded.chat_template_or_chatml(),
        ctx,
        vocab,
        created,
        counter: AtomicU64::new(0),
        jobs: tx,
    });
    tracing::info!(
        "serving {} as `{}` on http://{}",
        state.source,
        state.name,
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    Ok((listener, state, stats))
}

async fn run(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(Error::io("registering the socket"))?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Server(e.to_string()))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such route",
                None,
                "NotFoundError",
            )
        })
        .with_state(state)
}

struct AppState {
    name: String,
    source: String,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    ctx: usize,
    vocab: usize,
    created: u64,
    counter: AtomicU64,
    jobs: mpsc::UnboundedSender<Job>,
}

impl AppState {
    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// Requests of one HTTP call, answered together.
struct Job {
    requests: Vec<engine::Request>,
    reply: oneshot::Sender<std::result::Result<Vec<RequestOutput>, ApiError>>,
}

/// The engine thread: gathers the pending jobs into one batch, runs it, answers each job.
fn engine_loop(
    engine: Engine<Model, Arc<Tokenizer>>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    window: Duration,
    stats: &ServerStats,
) {
    let max_batch = engine.config().max_batch_size;
    while let Some(first) = rx.blocking_recv() {
        // Wait `window`, then keep gathering while requests keep arriving (each 1 ms step
        // brings new ones), until the batch is full or 10 windows have passed: clients
        // answered by the previous batch come back within a few ms and join this one.
        let started = Instant::now();
        let samples = |jobs: &[Job]| -> usize {
            jobs.iter()
                .flat_map(|j| &j.requests)
                .map(|r| r.params.n)
                .sum()
        };
        let mut jobs = vec![first];
        if !window.is_zero() {
            std::thread::sleep(window);
            loop {
                let before = jobs.len();
                while let Ok(j) = rx.try_recv() {
                    jobs.push(j);
                }
                if jobs.len() == before
                    || samples(&jobs) >= max_batch
                    || started.elapsed() >= window * 10
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        let mut live = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.reply.is_closed() {
                continue; // the client went away
            }
            match job.requests.iter().try_for_each(|r| engine.validate(r)) {
                Ok(()) => live.push(job),
                Err(e) => {
                    let msg = match e {
                        engine::Error::InvalidRequest { msg, .. } => msg,
                        other => other.to_string(),
                    };
                    let _ = job.reply.send(Err(ApiError::bad(msg, None)));
                }
            }
        }
        let mut reqs = Vec::new();
        for job in &live {
            for r in &job.requests {
                let mut r = r.clone();
                r.id = reqs.len() as u64;
                reqs.push(r);
            }
        }
        if reqs.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = engine.generate(&reqs, |_| {});
        tracing::debug!(
            jobs = live.len(),
            requests = reqs.len(),
            secs = started.elapsed().as_secs_f64(),
            "batch done"
        );
        stats.batches.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(outs) => {
                stats
                    .requests
                    .fetch_add(outs.len() as u64, Ordering::Relaxed);
                let k: usize = outs.iter().map(|o| o.completions.len()).sum();
                stats.completions.fetch_add(k as u64, Ordering::Relaxed);
                let mut it = outs.into_iter();
                for job in live {
                    let mine: Vec<RequestOutput> = it.by_ref().take(job.requests.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!("generation failed: {e}");
                for job in live {
                    let _ = job.reply.send(Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("generation failed: {e}"),
                        None,
                        "InternalServerError",
                    )));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors

/// An OpenAI-style error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<String>,
    kind: &'static str,
}

impl ApiError {
    fn new(
        status: StatusCode,
        message: impl Into<String>,
        param: Option<&str>,
        kind: &'static str,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            param: param.map(str::to_string),
            kind,
        }
    }

    fn bad(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            message,
            param,
            "invalid_request_error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.status.as_u16(),
            }
        });
        (self.status, Json(body)).into_response()
    }
}

/// A JSON object body whose fields are taken one by one, so every error names its field.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(body: &[u8]) -> std::result::Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Self(m)),
            Ok(_) => Err(ApiError::bad("the body must be a JSON object", None)),
            Err(e) => Err(ApiError::bad(format!("invalid JSON body: {e}"), None)),
        }
    }

    /// The field `name` (absent or null: `None`).
    fn take<T: DeserializeOwned>(
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
    fn ignore_rest(self) {
        if !self.0.is_empty() {
            let keys: Vec<&str> = self.0.keys().map(String::as_str).collect();
            tracing::debug!("ignoring request fields {keys:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies

/// Sampling fields shared by both endpoints.
#[derive(Debug)]
struct SamplingBody {
    n: Option<usize>,
    best_of: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    min_p: Option<f32>,
    max_tokens: Option<usize>,
    stop: Option<Value>,
    seed: Option<i64>,
    stream: Option<bool>,
    stop_token_ids: Option<Vec<u32>>,
    ignore_eos: Option<bool>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    repetition_penalty: Option<f32>,
}

impl SamplingBody {
    fn take(f: &mut Fields) -> std::result::Result<Self, ApiError> {
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
        })
    }
}

#[derive(Debug, Deserialize)]
struct ChatMessageBody {
    role: String,
    content: Option<Value>,
}

fn check_model(st: &AppState, model: &Option<String>) -> std::result::Result<(), ApiError> {
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
fn sampling(
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
    if let Some(bad) = s
        .stop_token_ids
        .iter()
        .flatten()
        .find(|&&t| t as usize >= st.vocab)
    {
        return Err(ApiError::bad(
            format!("stop token id {bad} >= vocabulary size {}", st.vocab),
            Some("stop_token_ids"),
        ));
    }
    let seed = match s.seed {
        Some(x) => x as u64,
        None => random_seed(st.next()),
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

fn random_seed(counter: u64) -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = t ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Checks one prompt's ids against the model.
fn check_prompt(st: &AppState, ids: &[u32], param: &str) -> std::result::Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::bad("the prompt is empty", Some(param)));
    }
    if ids.len() >= st.ctx {
        return Err(ApiError::bad(
            format!(
                "the prompt has {} tokens; the model's context is {} tokens",
                ids.len(),
                st.ctx
            ),
            Some(param),
        ));
    }
    if let Some(t) = ids.iter().find(|&&t| t as usize >= st.vocab) {
        return Err(ApiError::bad(
            format!("prompt token id {t} >= vocabulary size {}", st.vocab),
            Some(param),
        ));
    }
    Ok(())
}

fn prompt_list(st: &AppState, v: &Value) -> std::result::Result<Vec<Vec<u32>>, ApiError> {
    const SHAPE: &str =
        "prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids";
    let encode = |s: &str| {
        st.tokenizer
            .encode(s, false)
            .map_err(|e| ApiError::bad(format!("tokenizing the prompt: {e}"), Some("prompt")))
    };
    let ids = |a: &[Value]| -> Option<Vec<u32>> {
        a.iter()
            .map(|x| x.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    let prompts = match v {
        Value::String(s) => vec![encode(s)?],
        Value::Array(a) if a.is_empty() => return Err(ApiError::bad(SHAPE, Some("prompt"))),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .map(|s| encode(s.as_str().unwrap_or_default()))
            .collect::<std::result::Result<_, _>>()?,
        Value::Array(a) if a.iter().all(Value::is_number) => {
            vec![ids(a).ok_or_else(|| ApiError::bad(SHAPE, Some("prompt")))?]
        }
        Value::Array(a) if a.iter().all(Value::is_array) => a
            .iter()
            .map(|x| {
                x.as_array()
                    .and_then(|x| ids(x))
                    .ok_or_else(|| ApiError::bad(SHAPE, Some("prompt")))
            })
            .collect::<std::result::Result<_, _>>()?,
        _ => return Err(ApiError::bad(SHAPE, Some("prompt"))),
    };
    for p in &prompts {
        check_prompt(st, p, "prompt")?;
    }
    Ok(prompts)
}

/// Queues the requests and waits for the engine thread's answer.
async fn submit(
    st: &AppState,
    prompts: Vec<Vec<u32>>,
    params: &SamplingParams,
) -> std::result::Result<Vec<RequestOutput>, ApiError> {
    if prompts.len() * params.n > MAX_SAMPLES_PER_REQUEST {
        return Err(ApiError::bad(
            format!("at most {MAX_SAMPLES_PER_REQUEST} completions per request (prompts × n)"),
            Some("n"),
        ));
    }
    let requests = prompts
        .into_iter()
        .map(|ids| engine::Request {
            id: 0,
            prompt_ids: ids,
            params: params.clone(),
        })
        .collect();
    let (reply, rx) = oneshot::channel();
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine is not running",
            None,
            "ServiceUnavailableError",
        )
    };
    st.jobs
        .send(Job { requests, reply })
        .map_err(|_| unavailable())?;
    rx.await.map_err(|_| unavailable())?
}

fn token_text(st: &AppState, id: u32) -> String {
    st.tokenizer.decode(&[id], false).unwrap_or_default()
}

fn usage(outs: &[RequestOutput]) -> Value {
    let prompt: usize = outs.iter().map(|o| o.prompt_len).sum();
    let completion: usize = outs
        .iter()
        .flat_map(|o| &o.completions)
        .map(|c| c.token_ids.len())
        .sum();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn completions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match completions_inner(&st, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn completions_inner(st: &AppState, body: &[u8]) -> std::result::Result<Value, ApiError> {
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
    let prompts = prompt_list(st, &prompt)?;
    let outs = submit(st, prompts, &params).await?;
    let mut choices = Vec::new();
    for (pi, o) in outs.iter().enumerate() {
        for c in &o.completions {
            let logprobs = c.logprobs.as_ref().map(|lp| {
                let tokens: Vec<String> = c.token_ids.iter().map(|&t| token_text(st, t)).collect();
                let mut offset = 0usize;
                let offsets: Vec<usize> = tokens
                    .iter()
                    .map(|t| {
                        let o = offset;
                        offset += t.len();
                        o
                    })
                    .collect();
                json!({"tokens": tokens, "token_logprobs": lp, "top_logprobs": null, "text_offset": offsets})
            });
            choices.push(json!({
                "index": pi * params.n + c.index,
                "text": c.text,
                "finish_reason": c.finish_reason.as_str(),
                "stop_reason": c.stop_string,
                "logprobs": logprobs,
                "token_ids": c.token_ids,
            }));
        }
    }
    Ok(json!({
        "id": format!("cmpl-{:x}", st.next()),
        "object": "text_completion",
        "created": now_s(),
        "model": st.name,
        "choices": choices,
        "usage": usage(&outs),
    }))
}

async fn chat_completions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match chat_inner(&st, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn message_text(i: usize, content: &Option<Value>) -> std::result::Result<String, ApiError> {
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

async fn chat_inner(st: &AppState, body: &[u8]) -> std::result::Result<Value, ApiError> {
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
    let text = st
        .template
        .render(&msgs, true)
        .map_err(|e| ApiError::bad(format!("chat template: {e}"), Some("messages")))?;
    let ids = st
        .tokenizer
        .encode(&text, false)
        .map_err(|e| ApiError::bad(format!("tokenizing the chat: {e}"), Some("messages")))?;
    check_prompt(st, &ids, "messages")?;
    if s.max_tokens.is_none() {
        s.max_tokens = max_completion_tokens;
    }
    let default_max = st.ctx - ids.len();
    let want_lp = logprobs == Some(true) || top_logprobs.is_some_and(|k| k > 0);
    let params = sampling(st, &s, default_max, want_lp)?;
    let outs = submit(st, vec![ids], &params).await?;
    let mut choices = Vec::new();
    for c in outs.iter().flat_map(|o| &o.completions) {
        let logprobs = c.logprobs.as_ref().map(|lp| {
            let content: Vec<Value> = c
                .token_ids
                .iter()
                .zip(lp)
                .map(|(&t, &l)| {
                    let tok = token_text(st, t);
                    json!({"token": tok, "logprob": l, "bytes": tok.as_bytes(), "top_logprobs": []})
                })
                .collect();
            json!({ "content": content })
        });
        choices.push(json!({
            "index": c.index,
            "message": {"role": "assistant", "content": c.text},
            "finish_reason": c.finish_reason.as_str(),
            "stop_reason": c.stop_string,
            "logprobs": logprobs,
            "token_ids": c.token_ids,
        }));
    }
    Ok(json!({
        "id": format!("chatcmpl-{:x}", st.next()),
        "object": "chat.completion",
        "created": now_s(),
        "model": st.name,
        "choices": choices,
        "usage": usage(&outs),
    }))
}

async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": st.name,
            "object": "model",
            "created": st.created,
            "owned_by": "rzero",
            "root": st.source,
            "max_model_len": st.ctx,
        }]
    }))
}

async fn health() -> StatusCode {
    StatusCode::OK
}
