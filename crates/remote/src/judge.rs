//! [`OpenAiJudge`]: the evaluation's LLM re-check ([`eval::judge`]) on an OpenAI-compatible
//! chat-completions server (OpenAI, vLLM, SGLang, llama.cpp, `rzero serve`).
//!
//! Each prompt is one `/v1/chat/completions` call with the system and user messages of
//! [`eval::judge::judge_prompt`], temperature [`eval::judge::JUDGE_TEMPERATURE`] (0.1, as the
//! reference's `results_recheck.py`), `n = 1`. Calls run concurrently and are retried with
//! backoff by [`OpenAiClient`]; a call that still fails fails the whole batch, so the
//! evaluation stops instead of counting it as "No" (the reference's `except: return "No"`
//! would silently pull the judged score down to the unjudged one).

use eval::judge::{Judge, JudgePrompt, JUDGE_TEMPERATURE};
use model::ChatMessage;

use crate::client::{OpenAiClient, RemoteConfig};
use crate::error::{Error, Result};
use crate::{SamplingParams, TextRequest};

/// Most tokens of one judge reply. The reference's judge answers "Yes" or "No"; the margin
/// leaves room for a short explanation or a reasoning model's preamble.
pub const JUDGE_MAX_TOKENS: usize = 512;

/// Where the judge is and who it is.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    /// Server root, e.g. `https://api.openai.com` (a trailing `/v1` is accepted).
    pub url: String,
    /// The judge model (the reference: `gpt-4o`).
    pub model: String,
    /// Bearer token, when the server needs one.
    pub api_key: Option<String>,
    /// Limit of one call, seconds (the reference: 20).
    pub timeout_s: f64,
    /// Most calls in flight.
    pub max_concurrency: usize,
}

impl JudgeConfig {
    /// `url` and `model` with the reference's limits (20 s per call) and 16 calls in flight.
    pub fn new(url: impl Into<String>, model: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key,
            timeout_s: 20.0,
            max_concurrency: 16,
        }
    }
}

/// An [`eval::Judge`] on an OpenAI-compatible chat-completions server.
pub struct OpenAiJudge {
    client: OpenAiClient,
    name: String,
}

impl OpenAiJudge {
    /// A judge for `cfg` (checked: the URL must be http(s), the model non-empty).
    pub fn new(cfg: &JudgeConfig) -> Result<Self> {
        let remote = RemoteConfig {
            base_urls: vec![cfg.url.clone()],
            model: cfg.model.clone(),
            api_key: cfg.api_key.clone().filter(|k| !k.is_empty()),
            max_concurrency: cfg.max_concurrency.max(1),
            timeout_s: cfg.timeout_s,
            chat: true,
            ..RemoteConfig::default()
        };
        let client = OpenAiClient::new(remote)
            .map_err(|e| Error::Config(format!("judge ({}): {e}", cfg.url)))?;
        Ok(Self {
            client,
            name: format!("{} @ {}", cfg.model, cfg.url.trim_end_matches('/')),
        })
    }
}

impl Judge for OpenAiJudge {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ask(&mut self, prompts: &[JudgePrompt]) -> eval::Result<Vec<String>> {
        let params = SamplingParams {
            n: 1,
            temperature: JUDGE_TEMPERATURE,
            max_new_tokens: JUDGE_MAX_TOKENS,
            ..SamplingParams::default()
        };
        let requests: Vec<TextRequest> = prompts
            .iter()
            .map(|p| {
                TextRequest::chat(
                    vec![
                        ChatMessage::new("system", &p.system),
                        ChatMessage::new("user", &p.user),
                    ],
                    params.clone(),
                )
            })
            .collect();
        let out = self
            .client
            .generate(&requests)
            .map_err(|e| eval::Error::Judge(format!("{}: {e}", self.name)))?;
        out.into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                if c.is_empty() {
                    Err(eval::Error::Judge(format!(
                        "{}: no reply to prompt {i}",
                        self.name
                    )))
                } else {
                    Ok(c.swap_remove(0).text)
                }
            })
            .collect()
    }
}
