//! Sampling for the loop: a role (tokenizer + chat template + an [`engine::Sampler`]) answers
//! prompts, with seeds derived from the run's master seed so every stage is reproducible and
//! resumable. The sampler is the in-process engine ([`Role::local`]) or remote servers
//! ([`Role::with_sampler`] over a `remote::OpenAiClient`); a role never looks at which.

use engine::{EngineKnobs, SamplingKnobs};

use crate::error::{Error, Result};

/// A model in one of the two roles, ready to sample.
pub struct Role<'a> {
    /// Tokenizer.
    pub tokenizer: &'a model::Tokenizer,
    /// Chat template (None: the reference's plain `system: …\nuser: …` prompt).
    pub template: Option<&'a model::ChatTemplate>,
    /// Where the samples come from (prompts are sent as token ids or as chat-templated text).
    pub sampler: Box<dyn engine::Sampler + 'a>,
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
    /// Per token of `token_ids`: written by a forced answer (the cue, closing braces), not
    /// sampled; empty when nothing was forced.
    pub forced: Vec<bool>,
}

/// Progress callback: (samples done, samples total).
pub type OnProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Derives a seed from the master seed and a path of integers (splitmix64 chain). Seeds are
/// kept below 2^31 so every OpenAI-compatible server accepts them (llama.cpp takes 32-bit
/// seeds, others signed 64-bit ones).
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
    x & 0x7FFF_FFFF
}

impl<'a> Role<'a> {
    /// `model` (the weights of `loaded`, or the live policy during training: its `Var`s are
    /// updated in place) on the in-process engine.
    pub fn local(
        model: &'a model::Model,
        loaded: &'a model::LoadedModel,
        engine: &EngineKnobs,
    ) -> Result<Self> {
        let cfg = engine.engine_config(loaded.eos_token_ids());
        // With `engine.policy_weights = "bf16"` the sampler rounds the f32 matrices now, after
        // the policy's last update (the role borrows the policy, so none runs meanwhile).
        let sampler = engine::LocalSampler::with_weights(
            model,
            &loaded.tokenizer,
            loaded.chat_template.clone(),
            cfg,
            engine.policy_weights,
        )
        .map_err(|e| Error::Stage(e.to_string()))?;
        Ok(Self::with_sampler(loaded, Box::new(sampler)))
    }

    /// The tokenizer and template of `loaded` with another sampler (remote servers).
    pub fn with_sampler(
        loaded: &'a model::LoadedModel,
        sampler: Box<dyn engine::Sampler + 'a>,
    ) -> Self {
        Role {
            tokenizer: &loaded.tokenizer,
            template: loaded.chat_template.as_ref(),
            sampler,
        }
    }

    /// Tokenizes a prompt text (special tokens in the text are recognised; nothing added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map_err(|e| Error::Stage(e.to_string()))
    }

    /// Samples `n` responses for each prompt text (sent as text: chat-templated already), with
    /// forced final answers when `force` is given (see `engine::force`); seeds as
    /// [`Role::sample`].
    pub fn sample_texts(
        &self,
        prompts: &[String],
        n: usize,
        sampling: &SamplingKnobs,
        force: Option<&engine::ForceAnswer>,
        seed: u64,
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<Sample>>> {
        let prompts: Vec<engine::Prompt> = prompts
            .iter()
            .map(|p| engine::Prompt::Text(p.clone()))
            .collect();
        self.run(prompts, n, sampling, force, seed, on_progress)
    }

    /// Samples `n` responses for each prompt. Prompt `i` uses seed `derive_seed(seed, [i])`;
    /// its sample `j` draws from the engine's stream `(that seed, j)`, so results do not
    /// depend on batching.
    pub fn sample(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        sampling: &SamplingKnobs,
        seed: u64,
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<Sample>>> {
        self.sample_with(prompts, n, sampling, None, seed, on_progress)
    }

    /// [`Role::sample`] with forced final answers (`force`; see `engine::force`): the same
    /// seeds, and a forced response continues its own RNG stream.
    pub fn sample_with(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        sampling: &SamplingKnobs,
        force: Option<&engine::ForceAnswer>,
        seed: u64,
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<Sample>>> {
        let prompts: Vec<engine::Prompt> = prompts
            .iter()
            .map(|p| engine::Prompt::Tokens(p.clone()))
            .collect();
        self.run(prompts, n, sampling, force, seed, on_progress)
    }

    fn run(
        &self,
        prompts: Vec<engine::Prompt>,
        n: usize,
        sampling: &SamplingKnobs,
        force: Option<&engine::ForceAnswer>,
        seed: u64,
        on_progress: OnProgress<'_>,
    ) -> Result<Vec<Vec<Sample>>> {
        if prompts.is_empty() || n == 0 {
            return Ok(vec![Vec::new(); prompts.len()]);
        }
        let requests: Vec<engine::TextRequest> = prompts
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| engine::TextRequest {
                prompt,
                params: sampling.params(n, derive_seed(seed, &[i as u64]), force),
            })
            .collect();
        let out = self
            .sampler
            .generate_with_progress(&requests, on_progress)
            .map_err(|e| Error::Stage(format!("generation: {e}")))?;
        Ok(out
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|c| Sample {
                        truncated: c.finish_reason == engine::FinishReason::Length,
                        text: c.text,
                        token_ids: c.token_ids.unwrap_or_default(),
                        forced: c.forced,
                    })
                    .collect()
            })
            .collect())
    }
}

/// The remote client of the frozen Solver, when `remote.solver_urls` is set.
pub fn solver_client(cfg: &crate::config::RemoteSection) -> Result<Option<remote::OpenAiClient>> {
    if cfg.solver_urls.is_empty() {
        return Ok(None);
    }
    let api_key = match cfg.api_key_env.as_str() {
        "" => None,
        var => match std::env::var(var) {
            Ok(k) if !k.is_empty() => Some(k),
            _ => {
                return Err(Error::Config(format!(
                    "remote.api_key_env: the environment variable {var} is not set"
                )))
            }
        },
    };
    let rc = remote::RemoteConfig {
        base_urls: cfg.solver_urls.clone(),
        model: cfg.model.clone(),
        api_key,
        max_concurrency: cfg.max_concurrency,
        timeout_s: cfg.timeout_s,
        retries: cfg.retries,
        reload_command: (!cfg.reload_command.is_empty()).then(|| cfg.reload_command.clone()),
        ..remote::RemoteConfig::default()
    };
    remote::OpenAiClient::new(rc)
        .map(Some)
        .map_err(|e| Error::Config(format!("remote: {e}")))
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
