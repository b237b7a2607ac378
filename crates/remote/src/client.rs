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
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use crate::error::{chain, Error, Result};
use crate::{
    FinishReason, OnProgress, Prompt, RolloutBackend, SamplingParams, TextCompletion, TextRequest,
};

/// Where and how to reach the servers (e.g. a `[remote.solver]` TOML table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Server roots, e.g. `http://10.0.0.5:8000` (a trailing `/v1` is accepted).
    pub base_urls: Vec<String>,
    /// The model id sent in every request (vLLM's `--served-model-name`, or a LoRA adapter
    /// name after [`crate::sync::load_lora_adapter`]).
    pub model: String,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Most requests in flight per server.
    pub max_concurrency: usize,
    /// Limit for one HTTP call, in seconds (a long generation must fit).
    pub timeout_s: f64,
    /// Retries of a failed call (so `1 + retries` attempts).
    pub retries: usize,
    /// First backoff between attempts, in milliseconds (doubles each retry).
    pub backoff_ms: u64,
    /// Use `/v1/chat/completions`: text prompts are sent as one user message and the
    /// server applies its chat template. Chat prompts always use it.
    pub chat: bool,
    /// Always ask for one completion per call (servers that ignore `n`).
    pub split_n: bool,
    /// Extra fields merged into every request body (server-specific knobs, e.g.
    /// `{"repeat_penalty": 1.0}` for llama.cpp or `{"return_token_ids": true}` for vLLM).
    pub extra_body: Map<String, Value>,
    /// Weight sync (b): a shell command that restarts or reloads every server with a
    /// checkpoint folder (`{checkpoint}` is replaced by the shell-quoted path); see
    /// [`OpenAiClient::sync_to`].
    pub reload_command: Option<String>,
    /// The model id the servers report after a reload (`{checkpoint}`: the checkpoint path,
    /// which is what `vllm serve {checkpoint}` reports). Requests use it afterwards.
    pub reload_model_name: String,
    /// Limit for the reload command plus the wait for `/v1/models`, in seconds.
    pub reload_timeout_s: f64,
    /// Weight sync (a): register checkpoints as this LoRA adapter (vLLM); requests then use
    /// it as `model`. Used when `reload_command` is unset.
    pub lora_name: Option<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            base_urls: Vec::new(),
            model: String::new(),
            api_key: None,
            max_concurrency: 64,
            timeout_s: 600.0,
            retries: 3,
            backoff_ms: 500,
            chat: false,
            split_n: false,
            extra_body: Map::new(),
            reload_command: None,
            reload_model_name: "{checkpoint}".into(),
            reload_timeout_s: 900.0,
            lora_name: None,
        }
    }
}

impl RemoteConfig {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<()> {
        if self.base_urls.is_empty() {
            return Err(Error::Config(
                "base_urls must list at least one server".into(),
            ));
        }
        for u in &self.base_urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "base_urls: {u:?} must start with http:// or https://"
                )));
            }
        }
        if self.model.is_empty() {
            return Err(Error::Config("model must name the served model".into()));
        }
        if self.max_concurrency == 0 {
            return Err(Error::Config("max_concurrency must be at least 1".into()));
        }
        if let Some(c) = &self.reload_command {
            if !c.contains("{checkpoint}") {
                return Err(Error::Config(
                    "reload_command must contain the {checkpoint} placeholder".into(),
                ));
            }
        }
        for (name, t) in [
            ("reload_timeout_s", self.reload_timeout_s),
            ("timeout_s", self.timeout_s),
        ] {
            // `Duration::from_secs_f64` panics on values it cannot hold (1e300).
            if !(t > 0.0 && Duration::try_from_secs_f64(t).is_ok()) {
                return Err(Error::Config(format!(
                    "{name} must be a positive number of seconds that fits a duration, got {t}"
                )));
            }
        }
        Ok(())
    }
}

/// Normalises a base URL: no trailing `/` or `/v1`.
pub(crate) fn root_url(u: &str) -> String {
    let u = u.trim_end_matches('/');
    u.strip_suffix("/v1").unwrap_or(u).to_string()
}

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

    /// Changes the model id sent in requests.
    pub fn set_model(&mut self, model: impl Into<String>) {
        self.cfg.model = model.into();
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
    /// the server's business); `forced_from` says where the cue starts in the text.
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

impl RolloutBackend for OpenAiClient {
    fn generate_with_progress(
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

/// The completions in a response body, ordered by `index`.
fn parse_choices(url: &str, v: &Value, n: usize, chat: bool) -> Result<Vec<TextCompletion>> {
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
            },
        ));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

pub(crate) fn model_ids(v: &Value) -> Option<Vec<String>> {
    v.get("data")?
        .as_array()?
        .iter()
        .map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The message of an error body (`{"error": {"message"}}`, `{"detail"}`, or the text).
pub(crate) fn error_message(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        for p in ["/error/message", "/message", "/detail", "/error"] {
            if let Some(s) = v.pointer(p).and_then(Value::as_str) {
                return s.to_string();
            }
        }
    }
    snippet(text)
}

pub(crate) fn snippet(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "(empty body)".into();
    }
    let mut s: String = t.chars().take(300).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    s
}
