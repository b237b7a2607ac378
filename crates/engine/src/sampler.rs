//! [`Sampler`]: the one rollout seam. Prompts and sampling parameters in, `n` completions
//! per prompt out (text, token ids, log-probs, forced-answer mask). Two implementations:
//! [`LocalSampler`] (the batched [`Engine`] over a [`model::Model`] in this process) and
//! `remote::OpenAiClient` (OpenAI-compatible servers). The R-Zero loop, the dataset stage,
//! the Challenger reward, evaluation and `rzero serve` sample through it only.
//!
//! A server also needs requests that arrive while others run: [`Sampler::serve`] runs a
//! [`SampleFeed`] (requests in as they arrive, cancellations, answers out). The local engine
//! batches them continuously; other samplers default to whole batches through
//! [`Sampler::generate`] (`serve.rs`).

use std::borrow::Cow;

use model::{ChatMessage, ChatTemplate, LoadedModel, Model, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::params::{Completion, Event, FinishReason, Request, RequestOutput, SamplingParams};
use crate::step::StepModel;

mod serve;

pub use serve::{ModelInfo, SampleFeed, ServeEvent};

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
    /// The stop string that ended it, when the sampler reports it (the local engine; servers
    /// that return vLLM's `stop_reason` as a string).
    pub stop_string: Option<String>,
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

    /// Runs the requests of `feed` as they arrive until it closes (a server's sampling
    /// thread), reporting steps and finished completions to `on_event`. Requests are numbered
    /// by arrival (`seq`, from 0); each is answered once through [`SampleFeed::finished`],
    /// unless the feed cancels it first. An `Err` return abandons the requests not yet
    /// answered: the caller answers them.
    ///
    /// The default takes what is queued, drops what the feed cancelled, and runs it through
    /// [`Sampler::generate`] as one batch (one [`ServeEvent::Step`] per batch; requests that
    /// arrive meanwhile wait for the next batch; a failed batch is retried one request at a
    /// time, so a request's error is its own). [`LocalSampler`] batches continuously: a
    /// request joins the running batch at the next model step and a cancelled one is dropped
    /// mid-generation.
    fn serve(&self, feed: &mut dyn SampleFeed, on_event: &mut dyn FnMut(ServeEvent)) -> Result<()> {
        serve::in_batches(self, feed, on_event)
    }

    /// The model's context length and vocabulary size, when this sampler knows them (a
    /// server checks prompts against them before queueing). `None` by default.
    fn model_info(&self) -> Option<ModelInfo> {
        None
    }

    /// The token ids of `prompt`, when this sampler tokenizes in this process (a server then
    /// tokenizes on its own threads, checks the ids and sends [`Prompt::Tokens`]). `None` by
    /// default: prompts are sent as they are.
    fn tokenize(&self, _prompt: &Prompt) -> Option<Result<Vec<u32>>> {
        None
    }

    /// The text of one token (as log-prob listings show it), when this sampler has the
    /// tokenizer. `None` by default.
    fn token_text(&self, _id: u32) -> Option<String> {
        None
    }
}

/// The in-process [`Engine`] over a borrowed model (the live policy during training: its
/// `Var`s are updated in place) and its tokenizer. Text prompts are tokenized as is (no
/// special tokens added); chat prompts are rendered with `template` (ChatML when `None`).
///
/// With [`PolicyWeights::Bf16`] the sampler samples from its own clone of `model` whose f32
/// weight matrices without a GGUF block copy get bf16 copies ([`Model::attach_bf16`]), made
/// when the sampler is built: build one per rollout, after the policy's update.
pub struct LocalSampler<'a> {
    engine: Engine<Cow<'a, Model>, Cow<'a, Tokenizer>>,
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
            engine: Engine::new(model, Cow::Borrowed(tokenizer), cfg)?,
            template: template.unwrap_or_else(ChatTemplate::chatml),
        })
    }

    /// A sampler that owns its model, built from `loaded` (with its chat template, ChatML
    /// when it has none), for a server's thread. Empty `cfg.eos_token_ids` are filled with
    /// the model's EOS ids.
    pub fn from_loaded(
        loaded: &LoadedModel,
        mut cfg: EngineConfig,
    ) -> Result<LocalSampler<'static>> {
        if cfg.eos_token_ids.is_empty() {
            cfg.eos_token_ids = loaded.eos_token_ids();
        }
        Ok(LocalSampler {
            engine: Engine::new(
                Cow::Owned(loaded.model()?),
                Cow::Owned(loaded.tokenizer.clone()),
                cfg,
            )?,
            template: loaded.chat_template_or_chatml(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<Cow<'a, Model>, Cow<'a, Tokenizer>> {
        &self.engine
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        self.engine.detok()
    }

    /// Token ids of a prompt: text as is, chats rendered with the template.
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        prompt_ids(self.tokenizer(), &self.template, prompt)
    }

    /// The completions of one engine output, ordered by sample index.
    fn texts(&self, o: RequestOutput) -> Result<Vec<TextCompletion>> {
        let mut c = o.completions;
        c.sort_by_key(|c| c.index);
        c.into_iter()
            .map(|c| {
                let forced_from = forced_from(self.tokenizer(), &c)?;
                Ok(TextCompletion {
                    text: c.text,
                    finish_reason: c.finish_reason,
                    token_ids: Some(c.token_ids),
                    logprobs: c.logprobs,
                    forced: c.forced,
                    forced_from,
                    stop_string: c.stop_string,
                })
            })
            .collect()
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
        outputs.into_iter().map(|o| self.texts(o)).collect()
    }

    fn serve(&self, feed: &mut dyn SampleFeed, on_event: &mut dyn FnMut(ServeEvent)) -> Result<()> {
        serve::continuously(self, feed, on_event)
    }

    fn model_info(&self) -> Option<ModelInfo> {
        let m = self.engine.model();
        Some(ModelInfo {
            context: m.max_positions(),
            vocab_size: m.vocab_size(),
        })
    }

    fn tokenize(&self, prompt: &Prompt) -> Option<Result<Vec<u32>>> {
        Some(self.prompt_ids(prompt))
    }

    fn token_text(&self, id: u32) -> Option<String> {
        Some(self.tokenizer().decode(&[id], false).unwrap_or_default())
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

    fn serve(&self, feed: &mut dyn SampleFeed, on_event: &mut dyn FnMut(ServeEvent)) -> Result<()> {
        (**self).serve(feed, on_event)
    }

    fn model_info(&self) -> Option<ModelInfo> {
        (**self).model_info()
    }

    fn tokenize(&self, prompt: &Prompt) -> Option<Result<Vec<u32>>> {
        (**self).tokenize(prompt)
    }

    fn token_text(&self, id: u32) -> Option<String> {
        (**self).token_text(id)
    }
}
