//! Keeping inference servers on the current weights after a training phase.
//!
//! - (a) LoRA adapters: [`load_lora_adapter`] / [`unload_lora_adapter`] call vLLM's
//!   `POST /v1/load_lora_adapter` / `/v1/unload_lora_adapter` (the server must run with
//!   `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`); requests then name the
//!   adapter as their `model`. llama.cpp's `llama-server` only re-weights adapters loaded at
//!   start (`--lora FILE`; its `POST /lora-adapters` only changes their scales): use (b).
//! - (b) A user command that restarts or reloads the server with a checkpoint folder:
//!   [`reload_command`] runs it (`{checkpoint}` replaced by the shell-quoted folder), then
//!   polls every server's `/v1/models` until the expected model id is listed.
//!
//! rzero's trainer trains full weights by default, so (b) is the general path; (a) applies
//! when the trainer writes PEFT adapters.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{chain, Error, Result};
use crate::http::{error_message, model_ids, root_url, snippet};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the tokio runtime"))
}

fn http(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Sync(format!("building the HTTP client: {}", chain(&e))))
}

/// POSTs `body` to `url`; any non-2xx answer is an error naming the URL and the message.
fn post(url: &str, body: &Value, timeout: Duration) -> Result<Value> {
    runtime()?.block_on(async {
        let resp = http(timeout)?
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| Error::Sync(format!("{url}: {}", chain(&e))))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Error::Sync(format!("{url}: {}", chain(&e))))?;
        if !status.is_success() {
            return Err(Error::Sync(format!(
                "{url}: HTTP {}: {}",
                status.as_u16(),
                error_message(&text)
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
}

/// Registers a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`,
/// readable by the server) under `name` on a vLLM server. Requests then use
/// `model = name`. vLLM refuses a name that is already loaded: unload it first
/// ([`replace_lora_adapter`] does both).
pub fn load_lora_adapter(base_url: &str, name: &str, path: &Path) -> Result<()> {
    let url = format!("{}/v1/load_lora_adapter", root_url(base_url));
    post(
        &url,
        &json!({"lora_name": name, "lora_path": path.to_string_lossy()}),
        Duration::from_secs(300),
    )?;
    tracing::info!(
        "{url}: loaded LoRA adapter `{name}` from {}",
        path.display()
    );
    Ok(())
}

/// Unregisters the adapter `name` from a vLLM server.
pub fn unload_lora_adapter(base_url: &str, name: &str) -> Result<()> {
    let url = format!("{}/v1/unload_lora_adapter", root_url(base_url));
    post(&url, &json!({"lora_name": name}), Duration::from_secs(60))?;
    Ok(())
}

/// Unloads `name` if loaded (a failure to unload is ignored), then loads `path` under it.
pub fn replace_lora_adapter(base_url: &str, name: &str, path: &Path) -> Result<()> {
    if let Err(e) = unload_lora_adapter(base_url, name) {
        tracing::debug!("unloading `{name}` before reloading it: {e}");
    }
    load_lora_adapter(base_url, name, path)
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the user's reload command with `{checkpoint}` replaced by the (shell-quoted)
/// checkpoint folder, then waits until every server in `base_urls` lists
/// `expected_model_name` on `/v1/models`. `timeout` bounds the command and the wait together.
///
/// The command runs with `sh -c` and must return (start a server with `nohup … &` or through
/// a service manager); a non-zero exit fails with its stderr.
pub fn reload_command(
    cmd_template: &str,
    checkpoint_dir: &Path,
    base_urls: &[String],
    expected_model_name: &str,
    timeout: Duration,
) -> Result<()> {
    if !cmd_template.contains("{checkpoint}") {
        return Err(Error::Sync(format!(
            "the reload command {cmd_template:?} has no {{checkpoint}} placeholder"
        )));
    }
    let ck = checkpoint_dir.to_string_lossy();
    let cmd = cmd_template.replace("{checkpoint}", &shell_quote(&ck));
    let started = Instant::now();
    tracing::info!("reloading servers: {cmd}");
    // stderr goes to a file, not a pipe: a server started in the background (`nohup … &`)
    // inherits it and would keep a pipe open forever.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let err_path = std::env::temp_dir().join(format!(
        "rzero-reload-{}-{}.stderr",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let err_file = std::fs::File::create(&err_path)
        .map_err(Error::io(format!("creating {}", err_path.display())))?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .map_err(Error::io(format!("running the reload command {cmd:?}")))?;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(Error::io("waiting for the reload command"))?
        {
            break st;
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&err_path);
            return Err(Error::Sync(format!(
                "the reload command {cmd:?} did not finish within {:.0} s",
                timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    if !status.success() {
        return Err(Error::Sync(format!(
            "the reload command {cmd:?} failed ({status}): {}",
            snippet(&err)
        )));
    }
    for u in base_urls {
        wait_for_model(
            u,
            expected_model_name,
            timeout.saturating_sub(started.elapsed()),
        )?;
    }
    Ok(())
}

/// Polls `base_url`'s `/v1/models` (every 250 ms) until it lists `name`; the error names
/// the URL and what it last saw.
pub fn wait_for_model(base_url: &str, name: &str, timeout: Duration) -> Result<()> {
    let url = format!("{}/v1/models", root_url(base_url));
    let started = Instant::now();
    runtime()?.block_on(async {
        let client = http(Duration::from_secs(5))?;
        loop {
            let last = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(v) => match model_ids(&v) {
                        Some(ids) if ids.iter().any(|i| i == name) => return Ok(()),
                        Some(ids) => format!("it lists {ids:?}"),
                        None => format!("unexpected body {}", snippet(&v.to_string())),
                    },
                    Err(e) => chain(&e),
                },
                Ok(r) => format!("HTTP {}", r.status().as_u16()),
                Err(e) => chain(&e),
            };
            if started.elapsed() >= timeout {
                return Err(Error::Sync(format!(
                    "{url}: model `{name}` not listed after {:.1} s ({last})",
                    timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}
