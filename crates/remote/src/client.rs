//! [`OpenAiClient`]: rollouts on OpenAI-compatible servers (vLLM, SGLang, llama.cpp,
//! `rzero serve`).
//!
//! Each [`TextRequest`] is one HTTP call (`n` completions at once), or `n` calls of one
//! completion each when the server ignores `n` (llama.cpp): with `split_n`, or detected when
//! a server returns fewer choices than asked (the missing samples are then requested one by
//! one, and that server is split from then on). Sample `j` of a split request uses seed
//! `seed + j`.
//!
//! Calls go to the least busy server (at most `max_concurrency` in flight per server). A
//! call that fails with a connection error, a timeout, HTTP 408/429 or 5xx is retried with
//! exponential backoff (`backoff_ms`, doubled each time, at most 30 s), moving to the next
//! server when there are several; after `retries` retries the whole batch fails with
//! [`Error::Unavailable`] naming the server(s) and the last cause. Other 4xx answers fail at
//! once ([`Error::Rejected`]). The API is synchronous: the client owns a tokio runtime.
//!
//! Forced final answers (`params.force_answer`) work on any server: a completion without a
//! closed `\boxed{}` gets a second call whose prompt is prompt + completion + cue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

mod config;
mod parse;

pub use config::RemoteConfig;
use parse::parse_choices;

use crate::error::{chain, Error, Result};
use crate::http::{error_message, model_ids, root_url, snippet};
use crate::{OnProgress, Prompt, SamplingParams, TextCompletion, TextRequest};

struct Server {
    url: String,
    slots: Arc<Semaphore>,
    ignores_n: AtomicBool,
}

/// The OpenAI-compatible HTTP client (see the module docs).
pub struct OpenAiClient {
    cfg: RemoteConfig,
    http: reqwest::Client,
    servers: Vec<Server>,
    next: AtomicUsize,
    rt: tokio::runtime::Runtime,
}

/// Why one attempt failed.
enum Attempt {
    /// Worth retrying (connection, timeout, 5xx, 408, 429).
    Retry(String),
    /// Final.
    Fatal(Error),
}

impl OpenAiClient {
    /// A client for `cfg` (checked).
    pub fn new(cfg: RemoteConfig) -> Result<Self> {
        cfg.validate()?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(k) = &cfg.api_key {
            let v = reqwest::header::HeaderValue::from_str(&format!("Bearer {k}"))
                .map_err(|_| Error::Config("api_key contains invalid characters".into()))?;
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs_f64(cfg.timeout_s))
            .connect_timeout(Duration::from_secs_f64(cfg.timeout_s.min(10.0)))
            .pool_max_idle_per_host(cfg.max_concurrency)
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {}", chain(&e))))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("rzero-client")
            .build()
            .map_err(Error::io("starting the tokio runtime"))?;
        let servers = cfg
            .base_urls
            .iter()
            .map(|u| Server {
                url: root_url(u),
                slots: Arc::new(Semaphore::new(cfg.max_concurrency)),
                ignores_n: AtomicBool::new(cfg.split_n),
            })
            .collect();
        Ok(Self {
            cfg,
            http,
            servers,
            next: AtomicUsize::new(0),
            rt,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.cfg
    }

    /// Puts every server on the weights in `checkpoint` and makes requests use them:
    /// with `reload_command`, runs it and waits until each server lists
    /// `reload_model_name` (then the new model id); else with `lora_name`, (re)registers the
    /// folder as that adapter on each server (vLLM). Errors when neither is configured.
    pub fn sync_to(&mut self, checkpoint: &std::path::Path) -> Result<()> {
        let urls: Vec<String> = self.servers.iter().map(|s| s.url.clone()).collect();
        if let Some(cmd) = &self.cfg.reload_command {
            let name = self
                .cfg
                .reload_model_name
                .replace("{checkpoint}", &checkpoint.to_string_lossy());
            crate::sync::reload_command(
                cmd,
                checkpoint,
                &urls,
                &name,
                Duration::from_secs_f64(self.cfg.reload_timeout_s),
            )?;
            self.cfg.model = name;
            Ok(())
        } else if let Some(lora) = self.cfg.lora_name.clone() {
            for u in &urls {
                crate::sync::replace_lora_adapter(u, &lora, checkpoint)?;
            }
            self.cfg.model = lora;
            Ok(())
        } else {
            Err(Error::Config(
                "no weight sync configured: set reload_command or lora_name".into(),
            ))
        }
    }

    /// The model ids each server reports on `/v1/models`, in `base_urls` order.
    pub fn models(&self) -> Result<Vec<Vec<String>>> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            for s in &self.servers {
                out.push(
                    self.call(s, "GET", "/v1/models", None)
                        .await
                        .and_then(|v| {
                            model_ids(&v).ok_or_else(|| Error::BadResponse {
                                url: format!("{}/v1/models", s.url),
                                msg: "no `data` list of models".into(),
                            })
                        })?,
                );
            }
            Ok(out)
        })
    }

    /// Picks the server with the most free slots, round-robin among equals; `attempt`
    /// moves retries to the following servers.
    fn pick(&self, attempt: usize) -> &Server {
        let k = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Most free slots; among equals the first in rotation order.
        let best = (0..k)
            .map(|off| (start + off) % k)
            .enumerate()
            .max_by_key(|&(off, i)| (self.servers[i].slots.available_permits(), k - off))
            .map_or(0, |(_, i)| i);
        &self.servers[(best + attempt) % k]
    }

    /// One call with retries; `server` pins it to one server (model listing).
    async fn call(
        &self,
        server: &Server,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        self.with_retries(Some(server), method, path, body)
            .await
            .map(|(v, _)| v)
    }

    async fn with_retries<'s>(
        &'s self,
        pinned: Option<&'s Server>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(Value, &'s Server)> {
        let attempts = self.cfg.retries + 1;
        let mut tried: Vec<&str> = Vec::new();
        let mut last = String::new();
        for a in 0..attempts {
            if a > 0 {
                let ms = self
                    .cfg
                    .backoff_ms
                    .saturating_mul(1u64 << (a - 1).min(16))
                    .min(30_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let server = pinned.unwrap_or_else(|| self.pick(a));
            if !tried.contains(&server.url.as_str()) {
                tried.push(&server.url);
            }
            let _slot = server
                .slots
                .acquire()
                .await
                .map_err(|_| Error::Config("client shut down".into()))?;
            match self.once(server, method, path, body).await {
                Ok(v) => return Ok((v, server)),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(cause)) => {
                    tracing::warn!(
                        "{}{path}: attempt {}/{attempts} failed: {cause}",
                        server.url,
                        a + 1
                    );
                    last = cause;
                }
            }
        }
        Err(Error::Unavailable {
            url: tried.join(", "),
            attempts,
            cause: last,
        })
    }

    async fn once(
        &self,
        server: &Server,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, Attempt> {
        let url = format!("{}{path}", server.url);
        let req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        let req = match body {
            Some(b) => req.json(b),
            None => req,
        };
        let describe = |e: &reqwest::Error| {
            if e.is_timeout() {
                format!("timed out after {} s", self.cfg.timeout_s)
            } else {
                chain(e)
            }
        };
        let resp = req.send().await.map_err(|e| Attempt::Retry(describe(&e)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Attempt::Retry(describe(&e)))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Attempt::Fatal(Error::BadResponse {
                    url: url.clone(),
                    msg: format!("invalid JSON ({e}): {}", snippet(&text)),
                })
            });
        }
        let message = error_message(&text);
        let code = status.as_u16();
        if status.is_server_error() || code == 408 || code == 429 {
            Err(Attempt::Retry(format!("HTTP {code}: {message}")))
        } else {
            Err(Attempt::Fatal(Error::Rejected {
                url,
                status: code,
                message,
            }))
        }
    }

    /// The body of one call for `req` asking `n` samples with `seed`.
    fn body(
        &self,
        index: usize,
        req: &TextRequest,
        n: usize,
        seed: u64,
    ) -> Result<(String, Value)> {
        let p = &req.params;
        let mut b = Map::new();
        b.insert("model".into(), json!(self.cfg.model));
        let chat = match &req.prompt {
            Prompt::Chat(msgs) => {
                b.insert("messages".into(), json!(msgs));
                true
            }
            Prompt::Text(t) if self.cfg.chat => {
                b.insert("messages".into(), json!([{"role": "user", "content": t}]));
                true
            }
            Prompt::Text(t) => {
                b.insert("prompt".into(), json!(t));
                false
            }
            Prompt::Tokens(_) if self.cfg.chat => {
                return Err(Error::InvalidRequest {
                    index,
                    msg: "token-id prompts cannot be sent to the chat endpoint (chat = true)"
                        .into(),
                })
            }
            Prompt::Tokens(ids) => {
                b.insert("prompt".into(), json!(ids));
                false
            }
        };
        b.insert("n".into(), json!(n));
        b.insert("temperature".into(), json!(p.temperature));
        b.insert("top_p".into(), json!(p.top_p));
        if p.top_k > 0 {
            b.insert("top_k".into(), json!(p.top_k));
        }
        if p.min_p > 0.0 {
            b.insert("min_p".into(), json!(p.min_p));
        }
        b.insert("max_tokens".into(), json!(p.max_new_tokens));
        if !p.stop.is_empty() {
            b.insert("stop".into(), json!(p.stop));
        }
        if !p.stop_token_ids.is_empty() {
            b.insert("stop_token_ids".into(), json!(p.stop_token_ids));
        }
        if p.ignore_eos {
            b.insert("ignore_eos".into(), json!(true));
        }
        b.insert("seed".into(), json!(seed));
        if p.logprobs {
            if chat {
                b.insert("logprobs".into(), json!(true));
            } else {
                b.insert("logprobs".into(), json!(1));
            }
        }
        b.insert("stream".into(), json!(false));
        for (k, v) in &self.cfg.extra_body {
            b.insert(k.clone(), v.clone());
        }
        let path = if chat {
            "/v1/chat/completions"
        } else {
            "/v1/completions"
        };
        Ok((path.to_string(), Value::Object(b)))
    }

    /// All `n` completions of one request.
    async fn complete(&self, index: usize, req: &TextRequest) -> Result<Vec<TextCompletion>> {
        let n = req.params.n;
        let seed = req.params.seed;
        let mut got: Vec<TextCompletion> = Vec::with_capacity(n);
        let split = self
            .servers
            .iter()
            .all(|s| s.ignores_n.load(Ordering::Relaxed));
        if !split || n == 1 {
            let (path, body) = self.body(index, req, n, seed)?;
            let (v, server) = self.with_retries(None, "POST", &path, Some(&body)).await?;
            let url = format!("{}{path}", server.url);
            got = parse_choices(&url, &v, n, path.contains("chat"))?;
            if got.len() < n {
                tracing::info!(
                    "{}: returned {} of n = {n} completions; asking for the rest one by one",
                    server.url,
                    got.len()
                );
                server.ignores_n.store(true, Ordering::Relaxed);
            }
        }
        // The rest, one call per sample (seed + j), concurrently.
        let mut rest: FuturesUnordered<_> = (got.len()..n)
            .map(|j| async move {
                let (path, body) = self.body(index, req, 1, seed.wrapping_add(j as u64))?;
                let (v, server) = self.with_retries(None, "POST", &path, Some(&body)).await?;
                let url = format!("{}{path}", server.url);
                let mut c = parse_choices(&url, &v, 1, path.contains("chat"))?;
                if c.len() != 1 {
                    return Err(Error::BadResponse {
                        url,
                        msg: format!("expected 1 choice, got {}", c.len()),
                    });
                }
                Ok::<_, Error>((j, c.remove(0)))
            })
            .collect();
        let mut tail: Vec<Option<TextCompletion>> = vec![None; n - got.len()];
        let base = got.len();
        while let Some(r) = rest.next().await {
            let (j, c) = r?;
            tail[j - base] = Some(c);
        }
        got.extend(tail.into_iter().flatten());
        if let Some(f) = &req.params.force_answer {
            self.force_answers(index, req, f, &mut got).await?;
        }
        Ok(got)
    }

    /// Forced final answers on a server that knows nothing of them: each completion without
    /// a closed `\boxed{}` gets one more call, prompt + completion + cue, `max_tokens` the
    /// answer budget and no stop strings (seed + j for sample j); the answer is cut where the
    /// cue's braces balance (closed with `}` when they never do) and appended after the cue.
    /// The token ids and log-probs of a forced completion are dropped (the cue's tokens are
    /// the server's business); `forced_from` says where the cue starts in the text. Unlike
    /// the engine, the client also forces a completion that ended on a stop string (servers
    /// do not all say which stop ended a completion), and the answer draws from a new seed,
    /// not the completion's own RNG stream.
    async fn force_answers(
        &self,
        index: usize,
        req: &TextRequest,
        f: &engine::ForceAnswer,
        got: &mut [TextCompletion],
    ) -> Result<()> {
        let prompt = match &req.prompt {
            Prompt::Text(t) if !self.cfg.chat => t,
            _ => {
                return Err(Error::InvalidRequest {
                    index,
                    msg: "force_answer needs a text prompt on /v1/completions (chat = false)"
                        .into(),
                })
            }
        };
        let calls: Vec<(usize, TextRequest)> = got
            .iter()
            .enumerate()
            .filter(|(_, c)| !engine::force::has_closed_box(&c.text))
            .map(|(j, c)| {
                let params = SamplingParams {
                    n: 1,
                    max_new_tokens: f.max_tokens,
                    stop: Vec::new(),
                    stop_token_ids: Vec::new(),
                    seed: req.params.seed.wrapping_add(j as u64),
                    logprobs: false,
                    force_answer: None,
                    ..req.params.clone()
                };
                (
                    j,
                    TextRequest::text(format!("{prompt}{}{}", c.text, f.cue), params),
                )
            })
            .collect();
        let mut pending: FuturesUnordered<_> = calls
            .iter()
            .map(|(j, r)| async move {
                let (path, body) = self.body(index, r, 1, r.params.seed)?;
                let (v, server) = self.with_retries(None, "POST", &path, Some(&body)).await?;
                let url = format!("{}{path}", server.url);
                let mut c = parse_choices(&url, &v, 1, false)?;
                if c.len() != 1 {
                    return Err(Error::BadResponse {
                        url,
                        msg: format!("expected 1 choice, got {}", c.len()),
                    });
                }
                Ok::<_, Error>((*j, c.remove(0).text))
            })
            .collect();
        let mut answers = Vec::with_capacity(calls.len());
        while let Some(r) = pending.next().await {
            answers.push(r?);
        }
        for (j, answer) in answers {
            let c = &mut got[j];
            let (keep, closes) = engine::force::close_answer(&f.cue, &answer);
            c.forced_from = Some(c.text.len());
            c.text.push_str(&f.cue);
            c.text.push_str(&answer[..keep]);
            c.text.push_str(&"}".repeat(closes));
            c.token_ids = None;
            c.logprobs = None;
            c.forced = Vec::new();
        }
        Ok(())
    }
}

impl OpenAiClient {
    /// Completes every request `params.n` times (see [`engine::Sampler::generate`]), with
    /// this crate's errors.
    pub fn generate(&self, requests: &[TextRequest]) -> Result<Vec<Vec<TextCompletion>>> {
        self.generate_with_progress(requests, &mut |_, _| {})
    }

    /// [`OpenAiClient::generate`], reporting (samples done, samples total) as it goes.
    pub fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<TextCompletion>>> {
        for (i, r) in requests.iter().enumerate() {
            r.params
                .validate()
                .map_err(|msg| Error::InvalidRequest { index: i, msg })?;
        }
        let total: usize = requests.iter().map(|r| r.params.n).sum();
        self.rt.block_on(async {
            let mut pending: FuturesUnordered<_> = requests
                .iter()
                .enumerate()
                .map(|(i, r)| async move { (i, self.complete(i, r).await) })
                .collect();
            let mut out: Vec<Option<Vec<TextCompletion>>> = vec![None; requests.len()];
            let mut done = 0;
            while let Some((i, r)) = pending.next().await {
                // The first failure drops the other calls: no partial batch.
                let c = r?;
                done += c.len();
                out[i] = Some(c);
                on_progress(done, total);
            }
            Ok(out.into_iter().flatten().collect())
        })
    }
}

impl engine::Sampler for OpenAiClient {
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> engine::Result<Vec<Vec<TextCompletion>>> {
        OpenAiClient::generate_with_progress(self, requests, on_progress)
            .map_err(|e| engine::Error::Sampler(Box::new(e)))
    }
}
