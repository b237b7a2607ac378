//! `rzero serve`: a model behind an OpenAI-compatible HTTP API (`/v1/completions`,
//! `/v1/chat/completions`, `/v1/models`, `/health`), so any OpenAI client, and rzero on
//! other machines (`[remote]` rollouts), can sample from it. Concurrent requests are batched
//! into the engine. With `--upstream URL` it serves no model of its own but fronts other
//! OpenAI-compatible servers (a proxy: one key, caps and queue in front of them). Runs until
//! Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::{EngineConfig, LocalSampler, Sampler};
use model::LoadOptions;

/// Arguments of `rzero serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a Hugging Face folder, a .gguf file, a hub id, or `smollm2`. With --upstream:
    /// the model name the upstream servers serve.
    #[arg(long)]
    pub model: String,
    /// Serve no model here: send the requests to these OpenAI-compatible servers (base
    /// URLs, e.g. http://gpu1:8000; repeat the flag for several). Their key, if any, comes
    /// from RZERO_UPSTREAM_API_KEY.
    #[arg(long)]
    pub upstream: Vec<String>,
    /// Address to listen on. Another address than loopback (e.g. 0.0.0.0 to accept other
    /// machines) needs an API key, or --insecure.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The model id clients send (`model` field); defaults to the --model argument.
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = rzero_serve::DEFAULT_MAX_BATCH_SIZE)]
    pub max_batch_size: usize,
    /// Milliseconds an idle engine waits after a request for others to join its first
    /// step (requests arriving later join the running batch at its next step).
    #[arg(long, default_value_t = 3)]
    pub batch_window_ms: u64,
    /// Key clients must send as `Authorization: Bearer KEY` on /v1 routes. Prefer the
    /// RZERO_API_KEY environment variable (command lines are visible to other users).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Serve a non-loopback address without an API key.
    #[arg(long)]
    pub insecure: bool,
    /// Most completions queued or generating at once; more are answered 429.
    #[arg(long, default_value_t = 4096)]
    pub max_queued_samples: usize,
    /// Most tokens one request may ask to generate (n × prompts × max_tokens).
    #[arg(long, default_value_t = 1 << 18)]
    pub max_request_tokens: usize,
    /// Most bytes of prompt text per request, checked before tokenizing.
    #[arg(long, default_value_t = 256 << 10)]
    pub max_prompt_bytes: usize,
    /// Seconds after which an unfinished request is cancelled and answered 504.
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout_s: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("RZERO_API_KEY").ok())
        .filter(|k| !k.is_empty());
    if api_key.is_none() && !addr.ip().is_loopback() && !args.insecure {
        anyhow::bail!(
            "refusing to serve on {addr} without an API key: set RZERO_API_KEY (or --api-key), \
             bind 127.0.0.1, or pass --insecure"
        );
    }
    let request_timeout = Duration::try_from_secs_f64(args.request_timeout_s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| {
            format!(
                "--request-timeout-s must be a positive number of seconds, got {}",
                args.request_timeout_s
            )
        })?;
    let sampler = sampler(&args)?;
    let opts = rzero_serve::ServeOptions {
        served_model_name: args.served_model_name.unwrap_or_else(|| args.model.clone()),
        batch_window: Duration::from_millis(args.batch_window_ms),
        api_key,
        insecure: args.insecure,
        max_queued_samples: args.max_queued_samples,
        max_request_tokens: args.max_request_tokens,
        max_prompt_bytes: args.max_prompt_bytes,
        request_timeout,
        ..rzero_serve::ServeOptions::default()
    };
    eprintln!(
        "rzero serve: `{}` on http://{addr} (Ctrl-C to stop)",
        opts.served_model_name
    );
    rzero_serve::serve(sampler, addr, opts).with_context(|| format!("serving on {addr}"))
}

/// The sampler behind the server: the local engine over --model, or a client of the
/// --upstream servers.
fn sampler(args: &Args) -> anyhow::Result<Arc<dyn Sampler>> {
    if !args.upstream.is_empty() {
        let cfg = remote::RemoteConfig {
            base_urls: args.upstream.clone(),
            model: args.model.clone(),
            api_key: std::env::var("RZERO_UPSTREAM_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            ..remote::RemoteConfig::default()
        };
        let client = remote::OpenAiClient::new(cfg).context("--upstream")?;
        return Ok(Arc::new(client));
    }
    let spec = super::resolve_model(&args.model)?;
    let loaded = model::load(&spec, &LoadOptions::default())
        .with_context(|| format!("loading model {spec}"))?;
    let cfg = EngineConfig {
        max_batch_size: args.max_batch_size,
        ..EngineConfig::default()
    };
    let sampler = LocalSampler::from_loaded(&loaded, cfg)
        .with_context(|| format!("starting the engine on {spec}"))?;
    Ok(Arc::new(sampler))
}
