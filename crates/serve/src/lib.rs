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
//! Sampling: the server holds an [`engine::Sampler`] built by the binary and uses nothing
//! else of the engine. Handlers parse and, when the sampler tokenizes in process
//! ([`engine::Sampler::tokenize`]), tokenize and check the prompts (on tokio's blocking
//! pool, after a byte cap), then queue a job; one sampling thread runs
//! [`engine::Sampler::serve`] over the queue. The local engine ([`engine::LocalSampler`])
//! takes new requests before every model step, so a request that arrives while others
//! generate joins their batch at the next step (continuous batching across requests), and a
//! request whose client disconnects, or that passes its deadline, is dropped from the running
//! batch at the next step and its KV cache freed. Any other sampler (e.g.
//! `remote::OpenAiClient`: `rzero serve` as a proxy in front of other servers) runs what is
//! queued in whole batches through [`engine::Sampler::generate`].
//!
//! Hardening: an API key (`Authorization: Bearer KEY`, as vLLM's `--api-key`) guards the
//! `/v1` routes, and a non-loopback address is refused without one unless `insecure` is
//! set; the body, the prompt text (before tokenizing), `n` × prompts, and `n` × prompts ×
//! `max_tokens` are capped (400/413); at most `max_queued_samples` completions wait or run
//! at once (429 with `Retry-After` beyond); every request has a deadline (504); `/health`
//! answers 503 once the engine thread is gone.
//! Text prompts are tokenized as is (no special tokens added), like the local engine.
//!
//! Files: this one (options, start and stop), `routes.rs` (router, API key, handlers),
//! `request.rs` (parsing and caps), `batch.rs` (the sampling thread's feed and the queue),
//! `error.rs` (OpenAI-style errors).

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
use engine::{
    ModelInfo, Prompt, SampleFeed, Sampler, SamplingParams, ServeEvent, TextCompletion, TextRequest,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use remote::{ChatMessage, Error, Result};

mod batch;
mod error;
mod request;
mod routes;

use batch::*;
use error::*;
use request::*;
use routes::*;

/// Most completions one request may ask for (`n` × prompts).
pub const MAX_SAMPLES_PER_REQUEST: usize = 1024;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model id clients name (`model` field); requests naming another model get 404.
    pub served_model_name: String,
    /// When the sampler is idle, how long it waits after the first request for others to
    /// join its first step (with the local engine, later requests join the running batch at
    /// any step).
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
    /// Sampler steps run (model steps of the local engine; batches of other samplers).
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

    /// `http://ADDR` — what [`remote::RemoteConfig::base_urls`] takes.
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

/// Most sequences the local engine of `rzero serve` decodes together by default.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 64;

/// Serves `sampler` on `addr` until Ctrl-C.
pub fn serve(sampler: Arc<dyn Sampler>, addr: SocketAddr, opts: ServeOptions) -> Result<()> {
    let (listener, state) = prepare(sampler, addr, opts)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        run(listener, state, shutdown).await
    })
}

/// Starts serving `sampler` on `addr` in background threads and returns once the socket is
/// bound (use port 0 for an ephemeral port; [`ServerHandle::addr`] tells which).
pub fn spawn(
    sampler: Arc<dyn Sampler>,
    addr: SocketAddr,
    opts: ServeOptions,
) -> Result<ServerHandle> {
    let (listener, state) = prepare(sampler, addr, opts)?;
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

/// Binds the socket and starts the sampling thread.
fn prepare(
    sampler: Arc<dyn Sampler>,
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
    let info = sampler.model_info();
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let window = opts.batch_window;
    let stats = Arc::new(ServerStats::default());
    let alive = Arc::new(AtomicBool::new(true));
    let (st2, alive2, sampler2) = (stats.clone(), alive.clone(), sampler.clone());
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
            engine_loop(&*sampler2, rx, window, &st2)
        })
        .map_err(Error::io("starting the engine thread"))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(AppState {
        name: opts.served_model_name,
        sampler,
        info,
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
        "serving `{}` on http://{}{}",
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
