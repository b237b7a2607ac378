//! `rzero serve`: a model behind an OpenAI-compatible HTTP API (`/v1/completions`,
//! `/v1/chat/completions`, `/v1/models`, `/health`), so any OpenAI client, and rzero on
//! other machines (`[remote]` rollouts), can sample from it. Concurrent requests are batched
//! into the engine. Runs until Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use model::LoadOptions;

/// Arguments of `rzero serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: a Hugging Face folder, a .gguf file, a hub id, or `smollm2`.
    #[arg(long)]
    pub model: String,
    /// Address to listen on (use 0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The model id clients send (`model` field); defaults to the --model argument.
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 64)]
    pub max_batch_size: usize,
    /// Milliseconds the engine waits after a request for others to join its batch.
    #[arg(long, default_value_t = 3)]
    pub batch_window_ms: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec = super::resolve_model(&args.model)?;
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let loaded = model::load(&spec, &LoadOptions::default())
        .with_context(|| format!("loading model {spec}"))?;
    let mut opts = remote::ServeOptions {
        served_model_name: args.served_model_name.unwrap_or_else(|| args.model.clone()),
        batch_window: Duration::from_millis(args.batch_window_ms),
        ..remote::ServeOptions::default()
    };
    opts.engine.max_batch_size = args.max_batch_size;
    eprintln!(
        "rzero serve: `{}` on http://{addr} (Ctrl-C to stop)",
        opts.served_model_name
    );
    remote::serve(&loaded, addr, opts).with_context(|| format!("serving on {addr}"))
}
