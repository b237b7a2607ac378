//! [`RemoteConfig`]: where and how to reach the servers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

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
    /// [`OpenAiClient::sync_to`](super::OpenAiClient::sync_to).
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
