//! GRPO on any set of question / answer pairs with the Solver reward (0.9 · accuracy by
//! the grader + 0.1 · format): R-Zero's Solver phase on its own, what `rzero grpo` runs.
//! Rollouts come from the one sampling seam ([`engine::Sampler`], here the in-process
//! [`engine::LocalSampler`] on the trainer's policy); training from `train::driver::run`.

use engine::{EngineKnobs, LocalSampler, Prompt, Sampler, SamplingKnobs, TextRequest};
use model::{ChatMessage, ChatTemplate, Model, Tokenizer};
use serde_json::{Map, Value};
use train::{ChaCha8Rng, Group, Response, RolloutBatch};

use crate::error::{Error, Result};
use crate::prompts::SOLVER_SYSTEM;

/// One training item: the Solver prompt's token ids and the reference answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QaItem {
    /// The chat-templated Solver prompt, tokenized.
    pub prompt: Vec<u32>,
    /// The reference answer.
    pub answer: String,
}

/// Items from JSON rows with `question` (string) and `answer` (string or number); `name`
/// (the file) and the 1-based row number name a bad row.
pub fn items_from_rows(
    rows: &[Map<String, Value>],
    name: &str,
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
) -> Result<Vec<QaItem>> {
    let mut items = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let q = row
            .get("question")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                Error::Stage(format!(
                    "{name}: item {}: missing string field `question`",
                    i + 1
                ))
            })?;
        let answer = match row.get("answer") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => {
                return Err(Error::Stage(format!(
                    "{name}: item {}: missing field `answer` (string or number)",
                    i + 1
                )))
            }
        };
        let text = template
            .render(
                &[ChatMessage::system(SOLVER_SYSTEM), ChatMessage::user(q)],
                true,
            )
            .map_err(|e| Error::Stage(e.to_string()))?;
        let prompt = tokenizer
            .encode(&text, false)
            .map_err(|e| Error::Stage(e.to_string()))?;
        items.push(QaItem { prompt, answer });
    }
    if items.is_empty() {
        return Err(Error::Stage(format!("{name}: no items")));
    }
    Ok(items)
}

/// The rollout of `rzero grpo`: each step samples `rollout_batch_size` items (seeded by
/// `data_seed` and the step) × `group_size` responses on the policy and rewards them with
/// the Solver reward.
pub struct SolverRollout<'a> {
    /// The training items.
    pub items: &'a [QaItem],
    /// The policy's tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// Ids that end a response.
    pub eos_token_ids: Vec<u32>,
    /// Responses per item (G).
    pub group_size: usize,
    /// Items per step.
    pub rollout_batch_size: usize,
    /// Sampling of the responses.
    pub sampling: SamplingKnobs,
    /// Seed of the data order.
    pub data_seed: u64,
}

fn engine_err(e: engine::Error) -> train::Error {
    train::Error::Invalid(format!("engine: {e}"))
}

impl train::Rollout for SolverRollout<'_> {
    fn rollout(
        &mut self,
        step: u64,
        policy: &Model,
        rng: &mut ChaCha8Rng,
    ) -> train::Result<RolloutBatch> {
        let batch: Vec<&QaItem> = train::driver::batch_indices(
            self.items.len(),
            self.rollout_batch_size,
            step,
            self.data_seed,
        )
        .into_iter()
        .map(|i| &self.items[i])
        .collect();
        let ecfg = EngineKnobs::default().engine_config(self.eos_token_ids.clone());
        let sampler = LocalSampler::new(policy, self.tokenizer, None, ecfg).map_err(engine_err)?;
        let reqs: Vec<TextRequest> = batch
            .iter()
            .map(|it| TextRequest {
                prompt: Prompt::Tokens(it.prompt.clone()),
                params: self
                    .sampling
                    .params(self.group_size, train::driver::next_seed(rng), None),
            })
            .collect();
        let outs = sampler.generate(&reqs).map_err(engine_err)?;
        let groups = outs
            .into_iter()
            .zip(&batch)
            .map(|(o, it)| Group {
                prompt: it.prompt.clone(),
                responses: o
                    .into_iter()
                    .map(|c| Response {
                        reward: reward::solver_reward(&c.text, &it.answer).total as f32,
                        ids: c.token_ids.unwrap_or_default(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        Ok(RolloutBatch {
            groups,
            metrics: Default::default(),
        })
    }
}
