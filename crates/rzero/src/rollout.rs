//! Sampling for the loop: a role (model + tokenizer + chat template) answers prompts through
//! the batched engine, with seeds derived from the run's master seed so every stage is
//! reproducible and resumable.

use crate::config::{EngineSection, Sampling};
use crate::error::{Error, Result};

/// A model in one of the two roles, ready to sample.
pub struct Role<'a> {
    /// The weights (the live policy during training: its `Var`s are updated in place).
    pub model: &'a model::Model,
    /// Tokenizer.
    pub tokenizer: &'a model::Tokenizer,
    /// Chat template (None: the reference's plain `system: …\nuser: …` prompt).
    pub template: Option<&'a model::ChatTemplate>,
    /// Ids that end a response.
    pub eos_token_ids: Vec<u32>,
}

/// One sampled response.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Decoded text (special tokens skipped).
    pub text: String,
    /// Generated token ids (the stop token included when it ended the response).
    pub token_ids: Vec<u32>,
    /// Whether the response hit the token limit.
    pub truncated: bool,
}

/// Progress callback: (samples done, samples total).
pub type OnProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Derives a seed from the master seed and a path of integers (splitmix64 chain).
pub fn derive_seed(seed: u64, path: &[u64]) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in path {
        x = x
            .wrapping_add(p.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = z ^ (z >> 31);
    }
    x
}

impl Role<'_> {
    /// Tokenizes a prompt text (special tokens in the text are recognised; nothing added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map_err(|e| Error::Stage(e.to_string()))
    }

    /// Samples `n` responses for each prompt. Prompt `i` uses seed `derive_seed(seed, [i])`;
    /// its sample `j` draws from the engine's stream `(that seed, j)`, so results do not
    /// depend on batching.
    pub fn sample(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        sampling: &Sampling,
        seed: u64,
        engine: &EngineSection,
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<Sample>>> {
        if prompts.is_empty() || n == 0 {
            return Ok(vec![Vec::new(); prompts.len()]);
        }
        let params = |i: usize| engine::SamplingParams {
            n,
            temperature: sampling.temperature as f32,
            top_p: sampling.top_p as f32,
            top_k: sampling.top_k,
            min_p: 0.0,
            max_new_tokens: sampling.max_new_tokens,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            seed: derive_seed(seed, &[i as u64]),
            logprobs: false,
        };
        let requests: Vec<engine::Request> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| engine::Request {
                id: i as u64,
                prompt_ids: p.clone(),
                params: params(i),
            })
            .collect();
        let mut cfg = engine::EngineConfig {
            max_batch_size: engine.max_batch_size,
            eos_token_ids: self.eos_token_ids.clone(),
            ..engine::EngineConfig::default()
        };
        if engine.max_kv_bytes > 0 {
            cfg.max_kv_bytes = engine.max_kv_bytes as usize;
        }
        let eng = engine::Engine::new(self.model, self.tokenizer, cfg)
            .map_err(|e| Error::Stage(e.to_string()))?;
        let outputs = eng
            .generate(&requests, |ev| {
                if let engine::Event::Progress(p) = ev {
                    on_progress(p.samples_done, p.samples_total);
                }
            })
            .map_err(|e| Error::Stage(format!("generation: {e}")))?;
        Ok(outputs
            .into_iter()
            .map(|o| {
                let mut c = o.completions;
                c.sort_by_key(|c| c.index);
                c.into_iter()
                    .map(|c| Sample {
                        truncated: c.finish_reason == engine::FinishReason::Length,
                        text: c.text,
                        token_ids: c.token_ids,
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_and_repeat() {
        let a = derive_seed(1, &[1, 2, 3]);
        assert_eq!(a, derive_seed(1, &[1, 2, 3]));
        assert_ne!(a, derive_seed(1, &[1, 2, 4]));
        assert_ne!(a, derive_seed(2, &[1, 2, 3]));
        assert_ne!(derive_seed(1, &[0, 1]), derive_seed(1, &[1, 0]));
    }
}
