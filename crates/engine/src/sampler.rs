//! [`Sampler`]: the one rollout seam. Prompts and sampling parameters in, `n` completions
//! per prompt out (text, token ids, log-probs, forced-answer mask). Two implementations:
//! [`LocalSampler`] (the batched [`Engine`] over a [`model::Model`] in this process) and
//! `remote::OpenAiClient` (OpenAI-compatible servers). The R-Zero loop, the dataset stage,
//! the Challenger reward and evaluation sample through it only.

use std::borrow::Cow;

use model::{ChatMessage, ChatTemplate, Model, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::params::{Completion, Event, FinishReason, Request, SamplingParams};

/// What to complete.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Prompt text, already chat-templated where needed; tokenized as is (no special tokens
    /// added), as the local engine does.
    Text(String),
    /// Prompt token ids (exact on any server that accepts token prompts: vLLM, `rzero serve`).
    Tokens(Vec<u32>),
    /// A chat, rendered with the model's chat template (by the server when remote).
    Chat(Vec<ChatMessage>),
}

/// One prompt to complete `params.n` times.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Sampling parameters (`n`, temperature, filters, limits, stops, seed, logprobs).
    pub params: SamplingParams,
}

impl TextRequest {
    /// A text prompt.
    pub fn text(prompt: impl Into<String>, params: SamplingParams) -> Self {
        Self {
            prompt: Prompt::Text(prompt.into()),
            params,
        }
    }

    /// A chat prompt.
    pub fn chat(messages: Vec<ChatMessage>, params: SamplingParams) -> Self {
        Self {
            prompt: Prompt::Chat(messages),
            params,
        }
    }
}

/// One completion.
#[derive(Debug, Clone, PartialEq)]
pub struct TextCompletion {
    /// Generated text (special tokens skipped), cut before a matched stop string.
    pub text: String,
    /// `Stop` (EOS, stop token or stop string) or `Length` (token limit).
    pub finish_reason: FinishReason,
    /// Generated token ids, when the sampler reports them (local engine, `rzero serve`,
    /// vLLM with `return_token_ids`).
    pub token_ids: Option<Vec<u32>>,
    /// Per-token log-probabilities (raw model distribution), when requested and reported.
    pub logprobs: Option<Vec<f32>>,
    /// Per token of `token_ids`: written by a forced answer (`params.force_answer`), not
    /// sampled. Empty when nothing was forced or the token ids are unknown.
    pub forced: Vec<bool>,
    /// Byte offset in `text` where the forced answer's cue starts; `None` when not forced.
    pub forced_from: Option<usize>,
}

/// Progress callback: (samples done, samples total).
pub type OnProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Where rollouts run. Synchronous: the R-Zero loop is.
pub trait Sampler: Send + Sync {
    /// Completes every request `params.n` times. The result has one entry per request, in
    /// order, each with `n` completions ordered by sample index. Any failure fails the whole
    /// batch (no partial results).
    fn generate(&self, requests: &[TextRequest]) -> Result<Vec<Vec<TextCompletion>>> {
        self.generate_with_progress(requests, &mut |_, _| {})
    }

    /// [`Sampler::generate`], reporting (samples done, samples total) as it goes.
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<TextCompletion>>>;
}

/// The in-process [`Engine`] over a borrowed model (the live policy during training: its
/// `Var`s are updated in place) and its tokenizer. Text prompts are tokenized as is (no
/// special tokens added); chat prompts are rendered with `template` (ChatML when `None`).
///
/// With [`PolicyWeights::Bf16`] the sampler samples from its own clone of `model` whose f32
/// weight matrices without a GGUF block copy get bf16 copies ([`Model::attach_bf16`]), made
/// when the sampler is built: build one per rollout, after the policy's update.
pub struct LocalSampler<'a> {
    engine: Engine<Cow<'a, Model>, &'a Tokenizer>,
    tokenizer: &'a Tokenizer,
    template: ChatTemplate,
}

/// How the in-process engine reads f32 weight matrices that have no GGUF block copy (a
/// trained policy, a model saved by a run): as they are, or rounded to bf16 once when the
/// sampler is built (half the bytes per decoding step; the products see the rounded
/// weights, so samples differ from the f32 ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyWeights {
    /// The f32 weights.
    #[default]
    F32,
    /// bf16 copies (rounded to nearest even, widened exactly in the product kernels).
    Bf16,
}

impl std::str::FromStr for PolicyWeights {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(PolicyWeights::F32),
            "bf16" => Ok(PolicyWeights::Bf16),
            o => Err(Error::Config(format!(
                "policy weights {o:?}: expected \"f32\" or \"bf16\""
            ))),
        }
    }
}

impl<'a> LocalSampler<'a> {
    /// A sampler over `model`. `cfg.eos_token_ids` should hold the model's EOS ids
    /// (`model::LoadedModel::eos_token_ids`).
    pub fn new(
        model: &'a Model,
        tokenizer: &'a Tokenizer,
        template: Option<ChatTemplate>,
        cfg: EngineConfig,
    ) -> Result<Self> {
        Self::with_weights(model, tokenizer, template, cfg, PolicyWeights::F32)
    }

    /// [`LocalSampler::new`] reading `model`'s uncovered f32 matrices as `weights` says.
    pub fn with_weights(
        model: &'a Model,
        tokenizer: &'a Tokenizer,
        template: Option<ChatTemplate>,
        cfg: EngineConfig,
        weights: PolicyWeights,
    ) -> Result<Self> {
        let model = match weights {
            PolicyWeights::F32 => Cow::Borrowed(model),
            PolicyWeights::Bf16 => {
                let mut m = model.clone();
                match m.attach_bf16() {
                    0 => Cow::Borrowed(model),
                    _ => Cow::Owned(m),
                }
            }
        };
        Ok(Self {
            engine: Engine::new(model, tokenizer, cfg)?,
            tokenizer,
            template: template.unwrap_or_else(ChatTemplate::chatml),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<Cow<'a, Model>, &'a Tokenizer> {
        &self.engine
    }

    /// Token ids of a prompt: text as is, chats rendered with the template.
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        prompt_ids(self.tokenizer, &self.template, prompt)
    }
}

/// Token ids of a prompt: text as is, chats rendered with `template`.
pub fn prompt_ids(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    prompt: &Prompt,
) -> Result<Vec<u32>> {
    Ok(match prompt {
        Prompt::Text(t) => tokenizer.encode(t, false)?,
        Prompt::Tokens(ids) => ids.clone(),
        Prompt::Chat(msgs) => tokenizer.encode(&template.render(msgs, true)?, false)?,
    })
}

impl Sampler for LocalSampler<'_> {
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<TextCompletion>>> {
        let mut reqs = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let ids = self
                .prompt_ids(&r.prompt)
                .map_err(|e| Error::InvalidRequest {
                    request_id: i as u64,
                    msg: e.to_string(),
                })?;
            reqs.push(Request {
                id: i as u64,
                prompt_ids: ids,
                params: r.params.clone(),
            });
        }
        let outputs = self.engine.generate(&reqs, |ev| {
            if let Event::Progress(p) = ev {
                on_progress(p.samples_done, p.samples_total);
            }
        })?;
        outputs
            .into_iter()
            .map(|o| {
                let mut c = o.completions;
                c.sort_by_key(|c| c.index);
                c.into_iter()
                    .map(|c| {
                        let forced_from = forced_from(self.tokenizer, &c)?;
                        Ok(TextCompletion {
                            text: c.text,
                            finish_reason: c.finish_reason,
                            token_ids: Some(c.token_ids),
                            logprobs: c.logprobs,
                            forced: c.forced,
                            forced_from,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect()
    }
}

/// Where the forced cue starts in the text of `c`: the length of the text before it.
pub fn forced_from(tokenizer: &Tokenizer, c: &Completion) -> Result<Option<usize>> {
    match c.forced.iter().position(|&f| f) {
        None => Ok(None),
        Some(at) => Ok(Some(tokenizer.decode(&c.token_ids[..at], true)?.len())),
    }
}

impl<S: Sampler + ?Sized> Sampler for &S {
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<TextCompletion>>> {
        (**self).generate_with_progress(requests, on_progress)
    }
}
