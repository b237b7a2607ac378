//! [`LocalBackend`]: rollouts on the in-process batched engine.

use engine::{Engine, EngineConfig, Event};
use model::{ChatTemplate, Model, Tokenizer};

use crate::error::{Error, Result};
use crate::{OnProgress, Prompt, RolloutBackend, TextCompletion, TextRequest};

/// The in-process [`Engine`] over a borrowed model (the live policy during training) and its
/// tokenizer. Text prompts are tokenized as is (no special tokens added); chat prompts are
/// rendered with `template` (ChatML when `None`).
pub struct LocalBackend<'a> {
    engine: Engine<&'a Model, &'a Tokenizer>,
    tokenizer: &'a Tokenizer,
    template: ChatTemplate,
}

impl<'a> LocalBackend<'a> {
    /// A backend over `model`. `cfg.eos_token_ids` should hold the model's EOS ids
    /// (see [`eos_ids`]).
    pub fn new(
        model: &'a Model,
        tokenizer: &'a Tokenizer,
        template: Option<ChatTemplate>,
        cfg: EngineConfig,
    ) -> Result<Self> {
        Ok(Self {
            engine: Engine::new(model, tokenizer, cfg)?,
            tokenizer,
            template: template.unwrap_or_else(ChatTemplate::chatml),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<&'a Model, &'a Tokenizer> {
        &self.engine
    }
}

/// The EOS ids of a loaded model: its generation config's, then the tokenizer's.
pub fn eos_ids(loaded: &model::LoadedModel) -> Vec<u32> {
    loaded.eos_token_ids()
}

/// Token ids of a prompt: text as is, chats rendered with `template`.
pub(crate) fn prompt_ids(
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

impl RolloutBackend for LocalBackend<'_> {
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<TextCompletion>>> {
        let mut reqs = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let ids = prompt_ids(self.tokenizer, &self.template, &r.prompt).map_err(|e| {
                Error::InvalidRequest {
                    index: i,
                    msg: e.to_string(),
                }
            })?;
            let req = engine::Request {
                id: i as u64,
                prompt_ids: ids,
                params: r.params.clone(),
            };
            self.engine
                .validate(&req)
                .map_err(|e| Error::InvalidRequest {
                    index: i,
                    msg: e.to_string(),
                })?;
            reqs.push(req);
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
pub(crate) fn forced_from(tokenizer: &Tokenizer, c: &engine::Completion) -> Result<Option<usize>> {
    match c.forced.iter().position(|&f| f) {
        None => Ok(None),
        Some(at) => Ok(Some(tokenizer.decode(&c.token_ids[..at], true)?.len())),
    }
}
