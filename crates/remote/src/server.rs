//! `rzero serve`: the batched engine behind an OpenAI-compatible HTTP API (axum on tokio).
//!
//! Routes: `POST /v1/completions` (prompt: string, list of strings, token ids or list of
//! token-id lists), `POST /v1/chat/completions` (messages rendered with the model's chat
//! template), `GET /v1/models`, `GET /health`. Sampling fields: `n`, `temperature`,
//! `top_p`, `top_k`, `min_p`, `max_tokens` (`max_completion_tokens` in chat), `stop`
//! (string or list), `seed`, `logprobs`, vLLM's `stop_token_ids` and `ignore_eos`, and
//! rzero's `force_answer` (`true` or `{"cue", "max_tokens"}`: forced final answers, see
//! [`engine::force`]). Every choice also carries `token_ids` (the generated ids), as vLLM's
//! `return_token_ids` does, and with forced tokens `forced` (one bool per token id).
//! Streaming, `echo`, `suffix` and penalties are refused with a 400 that names the
//! field; unknown fields are ignored (as vLLM does).
//!
//! Batching: handlers parse and tokenize (on tokio's blocking pool, after a byte cap), then
//! queue a job; one engine thread runs [`engine::Engine::run`], which takes new requests
//! before every model step, so a request that arrives while others generate joins their
//! batch at the next step (continuous batching across requests). A request whose client
//! disconnects, or that passes its deadline, is dropped from the running batch at the next
//! step and its KV cache freed.
//!
//! Hardening: an API key (`Authorization: Bearer KEY`, as vLLM's `--api-key`) guards the
//! `/v1` routes, and a non-loopback address is refused without one unless `insecure` is
//! set; the body, the prompt text (before tokenizing), `n` × prompts, and `n` × prompts ×
//! `max_tokens` are capped (400/413); at most `max_queued_samples` completions wait or run
//! at once (429 with `Retry-After` beyond); every request has a deadline (504); `/health`
//! answers 503 once the engine thread is gone.
//! Text prompts are tokenized as is (no special tokens added), like the local engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{Engine, EngineConfig, Event, Feed, RequestOutput, SamplingParams};
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
    /// When the engine is idle, how long it waits after the first request for others to
    /// join its first step (later requests join the running batch at any step).
    pub batch_window: Duration,
    /// Required `Authorization: Bearer` key of the `/v1` routes (None = open).
    pub api_key: Option<String>,
    /// Allow binding a non-loopback address without an API key.
    pub insecure: bool,
    /// Most completions queued or generating at once (`n` × prompts summed over requests);
    /// a request beyond it is answered 429.
    pub max_queued_samples: usize,
    /// Most generated tokens one request may ask for: `n` × Σ over its prompts of
    /// `max_tokens` (capped by the context).
    pub max_request_tokens: usize,
    /// Most bytes of prompt text (or chat message text) per request, checked before
    /// tokenizing (413 beyond).
    pub max_prompt_bytes: usize,
    /// Most bytes of a request body (413 beyond).
    pub max_body_bytes: usize,
    /// A request not answered within this time is cancelled and answered 504.
    pub request_timeout: Duration,
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
            api_key: None,
            insecure: false,
            max_queued_samples: 4096,
            max_request_tokens: 1 << 18,
            max_prompt_bytes: 256 << 10,
            max_body_bytes: 4 << 20,
            request_timeout: Duration::from_secs(600),
        }
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Engine steps run.
    pub steps: AtomicU64,
    /// Most sequences in one engine step so far.
    pub peak_running: AtomicU64,
    /// Requests (prompts) generated.
    pub requests: AtomicU64,
    /// Completions generated.
    pub completions: AtomicU64,
    /// Requests (prompts) dropped because their client went away or their deadline passed.
    pub cancelled: AtomicU64,
    /// Requests answered 429 (queue full).
    pub rejected: AtomicU64,
    /// Completions queued or generating now.
    pub queued_samples: AtomicUsize,
}

/// A running server (see [`spawn`]).
pub struct ServerHandle {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    jobs: Option<mpsc::UnboundedSender<Msg>>,
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

    /// Makes the engine thread panic, as a model failure would (tests of `/health`).
    #[doc(hidden)]
    pub fn crash_engine_for_tests(&self) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(Msg::Crash);
        }
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
    let (listener, state) = prepare(loaded, addr, opts)?;
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
    let (listener, state) = prepare(loaded, addr, opts)?;
    let stats = state.stats.clone();
    let jobs = Some(state.jobs.clone());
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
        jobs,
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
) -> Result<(std::net::TcpListener, Arc<AppState>)> {
    let api_key = opts.api_key.clone().filter(|k| !k.is_empty());
    if api_key.is_none() && !addr.ip().is_loopback() && !opts.insecure {
        return Err(Error::Server(format!(
            "refusing to serve on {addr} without an API key: anyone who can reach it could \
             use it; set one (--api-key or RZERO_API_KEY), bind 127.0.0.1, or pass --insecure"
        )));
    }
    if opts.max_queued_samples == 0 || opts.max_request_tokens == 0 || opts.max_prompt_bytes == 0 {
        return Err(Error::Server(
            "max_queued_samples, max_request_tokens and max_prompt_bytes must be at least 1".into(),
        ));
    }
    let listener =
        std::net::TcpListener::bind(addr).map_err(Error::io(format!("binding {addr}")))?;
    listener
        .set_nonblocking(true)
        .map_err(Error::io("configuring the socket"))?;
    let model = loaded.model()?;
    let tokenizer = Arc::new(loaded.tokenizer.clone());
    let mut cfg = opts.engine.clone();
    if cfg.eos_token_ids.is_empty() {
        cfg.eos_token_ids = loaded.eos_token_ids();
    }
    let ctx = model.config().max_position_embeddings;
    let vocab = model.config().vocab_size;
    let engine = Engine::new(model, tokenizer.clone(), cfg)?;
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let window = opts.batch_window;
    let stats = Arc::new(ServerStats::default());
    let alive = Arc::new(AtomicBool::new(true));
    let (st2, alive2) = (stats.clone(), alive.clone());
    std::thread::Builder::new()
        .name("rzero-engine".into())
        .spawn(move || {
            // Cleared when the thread ends, also by a panic: `/health` then says 503.
            struct Alive(Arc<AtomicBool>);
            impl Drop for Alive {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::SeqCst);
                }
            }
            let _alive = Alive(alive2);
            engine_loop(engine, rx, window, &st2)
        })
        .map_err(Error::io("starting the engine thread"))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(AppState {
        name: opts.served_model_name,
        tokenizer,
        template: loaded.chat_template_or_chatml(),
        ctx,
        vocab,
        created,
        counter: AtomicU64::new(0),
        jobs: tx,
        stats,
        alive,
        api_key,
        max_queued_samples: opts.max_queued_samples,
        max_request_tokens: opts.max_request_tokens,
        max_prompt_bytes: opts.max_prompt_bytes,
        max_body_bytes: opts.max_body_bytes,
        request_timeout: opts.request_timeout,
        prep_slots: tokio::sync::Semaphore::new(cpus),
    });
    tracing::info!(
        "serving {} as `{}` on http://{}{}",
        loaded.source.display(),
        state.name,
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        if state.api_key.is_some() {
            " (API key required)"
        } else {
            ""
        }
    );
    Ok((listener, state))
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
async fn auth(
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
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

struct AppState {
    name: String,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    ctx: usize,
    vocab: usize,
    created: u64,
    counter: AtomicU64,
    jobs: mpsc::UnboundedSender<Msg>,
    stats: Arc<ServerStats>,
    alive: Arc<AtomicBool>,
    api_key: Option<String>,
    max_queued_samples: usize,
    max_request_tokens: usize,
    max_prompt_bytes: usize,
    max_body_bytes: usize,
    request_timeout: Duration,
    /// Bounds the parse + tokenize tasks on the blocking pool.
    prep_slots: tokio::sync::Semaphore,
}

impl AppState {
    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

type Reply = std::result::Result<Vec<RequestOutput>, ApiError>;

/// Requests of one HTTP call, answered together.
struct Job {
    requests: Vec<engine::Request>,
    reply: oneshot::Sender<Reply>,
}

/// What the handlers send the engine thread.
enum Msg {
    Job(Job),
    /// Test hook: the engine thread panics.
    Crash,
}

/// A job the engine thread is working on.
struct Pending {
    /// `None` once answered (an error): its other requests are then dropped.
    reply: Option<oneshot::Sender<Reply>>,
    outs: Vec<Option<RequestOutput>>,
    left: usize,
}

/// The engine's [`Feed`]: jobs from the handlers in, answers out.
struct ServerFeed<'a> {
    rx: &'a mut mpsc::UnboundedReceiver<Msg>,
    window: Duration,
    stats: &'a ServerStats,
    jobs: HashMap<u64, Pending>,
    /// Engine arrival index -> (job, position in the job).
    seqs: HashMap<usize, (u64, usize)>,
    next_seq: usize,
    next_job: u64,
}

impl ServerFeed<'_> {
    fn take(&mut self, msg: Msg, out: &mut Vec<engine::Request>) {
        let job = match msg {
            Msg::Job(j) => j,
            Msg::Crash => panic!("engine thread crashed on purpose (test hook)"),
        };
        if job.reply.is_closed() {
            return; // the client went away while queued
        }
        let id = self.next_job;
        self.next_job += 1;
        let k = job.requests.len();
        for (i, r) in job.requests.into_iter().enumerate() {
            self.seqs.insert(self.next_seq, (id, i));
            self.next_seq += 1;
            out.push(r);
        }
        self.jobs.insert(
            id,
            Pending {
                reply: Some(job.reply),
                outs: (0..k).map(|_| None).collect(),
                left: k,
            },
        );
    }

    /// Forgets request `seq`; drops its job when it was the last.
    fn forget(&mut self, seq: usize) -> Option<(u64, usize)> {
        let (id, i) = self.seqs.remove(&seq)?;
        if let Some(p) = self.jobs.get_mut(&id) {
            p.left -= 1;
            if p.left == 0 && p.reply.is_none() {
                self.jobs.remove(&id);
            }
        }
        Some((id, i))
    }

    /// Answers every job with `err` (the engine run failed).
    fn fail_all(&mut self, err: impl Fn() -> ApiError) {
        for (_, p) in self.jobs.drain() {
            if let Some(r) = p.reply {
                let _ = r.send(Err(err()));
            }
        }
        self.seqs.clear();
    }
}

impl Feed for ServerFeed<'_> {
    fn poll(&mut self, idle: bool) -> Option<Vec<engine::Request>> {
        let mut out = Vec::new();
        if idle {
            let first = self.rx.blocking_recv()?;
            self.take(first, &mut out);
            if !self.window.is_zero() {
                std::thread::sleep(self.window);
            }
        }
        loop {
            match self.rx.try_recv() {
                Ok(m) => self.take(m, &mut out),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if out.is_empty() && idle {
                        return None;
                    }
                    break;
                }
            }
        }
        Some(out)
    }

    fn is_cancelled(&mut self, seq: usize) -> bool {
        let Some(&(id, _)) = self.seqs.get(&seq) else {
            return true;
        };
        let gone = match self.jobs.get(&id) {
            None => true,
            Some(p) => match &p.reply {
                None => true,
                Some(r) if r.is_closed() => {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Some(_) => false,
            },
        };
        if gone {
            self.forget(seq);
        }
        gone
    }

    fn finished(&mut self, seq: usize, output: engine::Result<RequestOutput>) {
        let Some(&(id, i)) = self.seqs.get(&seq) else {
            return;
        };
        let Some(p) = self.jobs.get_mut(&id) else {
            self.seqs.remove(&seq);
            return;
        };
        match output {
            Ok(o) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                p.outs[i] = Some(o);
                if p.left == 1 {
                    if let Some(r) = p.reply.take() {
                        let outs = std::mem::take(&mut p.outs)
                            .into_iter()
                            .map(|o| o.expect("every request of the job finished"))
                            .collect();
                        let _ = r.send(Ok(outs));
                    }
                }
            }
            Err(e) => {
                let msg = match e {
                    engine::Error::InvalidRequest { msg, .. } => msg,
                    other => other.to_string(),
                };
                if let Some(r) = p.reply.take() {
                    let _ = r.send(Err(ApiError::bad(msg, None)));
                }
            }
        }
        self.forget(seq);
    }
}

/// The engine thread: runs the engine on the jobs as they come; a failed run answers its
/// jobs with a 500 and the engine goes on with the next ones.
fn engine_loop(
    engine: Engine<Model, Arc<Tokenizer>>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    window: Duration,
    stats: &ServerStats,
) {
    loop {
        let mut feed = ServerFeed {
            rx: &mut rx,
            window,
            stats,
            jobs: HashMap::new(),
            seqs: HashMap::new(),
            next_seq: 0,
            next_job: 0,
        };
        let result = engine.run(&mut feed, |ev| match ev {
            Event::Progress(p) => {
                stats.steps.fetch_add(1, Ordering::Relaxed);
                stats
                    .peak_running
                    .fetch_max(p.running as u64, Ordering::Relaxed);
            }
            Event::Completion(_) => {
                stats.completions.fetch_add(1, Ordering::Relaxed);
            }
        });
        match result {
            Ok(()) => return, // every handle is gone: the server has stopped
            Err(e) => {
                tracing::error!("generation failed: {e}");
                feed.fail_all(|| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("generation failed: {e}"),
                        None,
                        "InternalServerError",
                    )
                });
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
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
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
    /// rzero's forced final answers: `true` (the default cue and budget) or
    /// `{"cue": "...", "max_tokens": K}`.
    force_answer: Option<Value>,
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
            force_answer: f.take("force_answer")?,
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
fn force_answer(v: &Option<Value>) -> std::result::Result<Option<engine::ForceAnswer>, ApiError> {
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

/// Checks the per-request caps: completions (`n` × prompts) and generated tokens.
fn check_caps(
    st: &AppState,
    prompts: &[Vec<u32>],
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
            params
                .n
                .saturating_mul(params.max_new_tokens.min(st.ctx.saturating_sub(p.len())))
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
fn check_bytes(st: &AppState, bytes: usize, param: &str) -> std::result::Result<(), ApiError> {
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

/// Runs `f` (parsing, templating, tokenizing) on the blocking pool, a few at a time, so the
/// async workers stay free for other connections and `/health`.
async fn off_worker<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let _slot = st
        .prep_slots
        .acquire()
        .await
        .map_err(|_| unavailable("the server is shutting down"))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("preparing the request failed: {e}"),
            None,
            "InternalServerError",
        )
    })?
}

fn unavailable(msg: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        msg,
        None,
        "ServiceUnavailableError",
    )
}

/// Completions held in the queue by one request; released when dropped.
struct Reservation<'a> {
    stats: &'a ServerStats,
    samples: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.stats
            .queued_samples
            .fetch_sub(self.samples, Ordering::SeqCst);
    }
}

/// Queues the requests and waits for the engine thread's answer, within the deadline. When
/// this future is dropped (the client disconnected) or the deadline passes, the reply
/// channel closes and the engine drops the requests at its next step.
async fn submit(
    st: &AppState,
    prompts: Vec<Vec<u32>>,
    params: &SamplingParams,
) -> std::result::Result<Vec<RequestOutput>, ApiError> {
    let samples = prompts.len() * params.n;
    let q = &st.stats.queued_samples;
    let mut cur = q.load(Ordering::SeqCst);
    loop {
        if cur + samples > st.max_queued_samples {
            st.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the server is busy ({cur} completions queued or running, limit {}); retry later",
                    st.max_queued_samples
                ),
                None,
                "RateLimitError",
            ));
        }
        match q.compare_exchange_weak(cur, cur + samples, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    let _held = Reservation {
        stats: &st.stats,
        samples,
    };
    let requests = prompts
        .into_iter()
        .map(|ids| engine::Request {
            id: 0,
            prompt_ids: ids,
            params: params.clone(),
        })
        .collect();
    let (reply, rx) = oneshot::channel();
    st.jobs
        .send(Msg::Job(Job { requests, reply }))
        .map_err(|_| unavailable("the engine is not running"))?;
    match tokio::time::timeout(st.request_timeout, rx).await {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request did not finish within the server's deadline of {} s; it was cancelled",
                st.request_timeout.as_secs_f64()
            ),
            None,
            "TimeoutError",
        )),
        Ok(Err(_)) => Err(unavailable("the engine is not running")),
        Ok(Ok(r)) => r,
    }
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

/// A body that could not be read (over the size limit, a broken upload) as a JSON error.
type Body = std::result::Result<Bytes, axum::extract::rejection::BytesRejection>;

fn body_bytes(body: Body) -> std::result::Result<Bytes, ApiError> {
    body.map_err(|r| ApiError::new(r.status(), r.body_text(), None, "invalid_request_error"))
}

async fn completions(State(st): State<Arc<AppState>>, body: Body) -> Response {
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
fn completions_prep(
    st: &AppState,
    body: &[u8],
) -> std::result::Result<(Vec<Vec<u32>>, SamplingParams), ApiError> {
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

async fn completions_inner(st: Arc<AppState>, body: Bytes) -> std::result::Result<Value, ApiError> {
    let st2 = st.clone();
    let (prompts, params) = off_worker(&st, move || completions_prep(&st2, &body)).await?;
    let st = &*st;
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
            choices.push(with_forced(
                json!({
                    "index": pi * params.n + c.index,
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
        "usage": usage(&outs),
    }))
}

async fn chat_completions(State(st): State<Arc<AppState>>, body: Body) -> Response {
    let body = match body_bytes(body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match chat_inner(st, body).await {
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

/// Parses, checks, renders and tokenizes a chat body (blocking work).
fn chat_prep(
    st: &AppState,
    body: &[u8],
) -> std::result::Result<(Vec<u32>, SamplingParams), ApiError> {
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
    let text = st
        .template
        .render(&msgs, true)
        .map_err(|e| ApiError::bad(format!("chat template: {e}"), Some("messages")))?;
    check_bytes(st, text.len(), "messages")?;
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
    check_caps(st, std::slice::from_ref(&ids), &params)?;
    Ok((ids, params))
}

async fn chat_inner(st: Arc<AppState>, body: Bytes) -> std::result::Result<Value, ApiError> {
    let st2 = st.clone();
    let (ids, params) = off_worker(&st, move || chat_prep(&st2, &body)).await?;
    let st = &*st;
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
        choices.push(with_forced(
            json!({
                "index": c.index,
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
        "usage": usage(&outs),
    }))
}

/// A choice with `forced` (per token of `token_ids`: written by the engine's forced answer)
/// when anything was forced.
fn with_forced(mut choice: Value, c: &engine::Completion) -> Value {
    if !c.forced.is_empty() {
        choice["forced"] = json!(c.forced);
    }
    choice
}

async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    // `root` is the served name: the model's path on this machine is nobody's business.
    Json(json!({
        "object": "list",
        "data": [{
            "id": st.name,
            "object": "model",
            "created": st.created,
            "owned_by": "rzero",
            "root": st.name,
            "max_model_len": st.ctx,
        }]
    }))
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    if st.alive.load(Ordering::SeqCst) {
        StatusCode::OK.into_response()
    } else {
        unavailable("the engine thread has stopped").into_response()
    }
}
