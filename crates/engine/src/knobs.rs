//! The engine's user-facing knobs as a run configuration holds them: [`SamplingKnobs`] (a
//! stage's sampling) and [`EngineKnobs`] (the scheduler's limits and the forced-answer
//! option). `rzero`'s run configuration embeds both, so their `///` field docs are the keys'
//! documentation (`rzero config` prints them through the `JsonSchema` derive). Each turns
//! into the engine's own types in one place: [`SamplingKnobs::params`],
//! [`EngineKnobs::engine_config`], [`EngineKnobs::force_answer`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EngineConfig, ForceAnswer, PolicyWeights, SamplingParams};

/// Sampling parameters of one generation stage. Floats are f64 so that a config file prints
/// them as written (`top_p = 0.99`); the engine samples with their f32 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingKnobs {
    /// Sampling temperature (0 = greedy).
    pub temperature: f64,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f64,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Maximum new tokens per response.
    pub max_new_tokens: usize,
}

impl SamplingKnobs {
    /// The parameters of a request for `n` completions drawn from `seed`, with forced final
    /// answers when `force` is set; every other parameter keeps [`SamplingParams::default`].
    pub fn params(&self, n: usize, seed: u64, force: Option<&ForceAnswer>) -> SamplingParams {
        SamplingParams {
            n,
            temperature: self.temperature as f32,
            top_p: self.top_p as f32,
            top_k: self.top_k,
            max_new_tokens: self.max_new_tokens,
            seed,
            force_answer: force.cloned(),
            ..SamplingParams::default()
        }
    }

    /// Checks the ranges (temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let t = self.temperature;
        if t.is_nan()
            || t < 0.0
            || !(self.top_p > 0.0 && self.top_p <= 1.0)
            || self.max_new_tokens == 0
        {
            return Err("need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1".into());
        }
        Ok(())
    }
}

/// Engine limits shared by every generation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineKnobs {
    /// Sequences decoded together.
    pub max_batch_size: usize,
    /// KV-cache budget in bytes (0 = automatic).
    pub max_kv_bytes: u64,
    /// Forced final answers (where a stage turns them on): the cue appended to a Solver
    /// response that ends without a closed `\boxed{}`; it must leave a brace open.
    #[serde(default = "default_force_cue")]
    pub force_answer_cue: String,
    /// Forced final answers: most tokens the model writes after the cue; then `}` is
    /// appended for it.
    #[serde(default = "default_force_tokens")]
    pub force_answer_tokens: usize,
    /// "f32" or "bf16": sample from f32 matrices without a GGUF block copy (a trained
    /// policy) as they are, or rounded to bf16 once per rollout (faster; not in the reference).
    #[serde(default)]
    #[schemars(with = "String")]
    pub policy_weights: PolicyWeights,
}

fn default_force_cue() -> String {
    crate::force::DEFAULT_CUE.into()
}

fn default_force_tokens() -> usize {
    crate::force::DEFAULT_MAX_TOKENS
}

/// [`EngineConfig::default`]'s batch, an automatic KV budget, the default forced-answer cue
/// and budget, f32 weights.
impl Default for EngineKnobs {
    fn default() -> Self {
        Self {
            max_batch_size: EngineConfig::default().max_batch_size,
            max_kv_bytes: 0,
            force_answer_cue: default_force_cue(),
            force_answer_tokens: default_force_tokens(),
            policy_weights: PolicyWeights::F32,
        }
    }
}

impl EngineKnobs {
    /// The engine's configuration for a model that ends sequences at `eos_token_ids`;
    /// `max_kv_bytes = 0` keeps [`EngineConfig::default`]'s budget.
    pub fn engine_config(&self, eos_token_ids: Vec<u32>) -> EngineConfig {
        let mut cfg = EngineConfig {
            max_batch_size: self.max_batch_size,
            eos_token_ids,
            ..EngineConfig::default()
        };
        if self.max_kv_bytes > 0 {
            cfg.max_kv_bytes = self.max_kv_bytes as usize;
        }
        cfg
    }

    /// The forced-answer option when `on` (this cue and budget).
    pub fn force_answer(&self, on: bool) -> Option<ForceAnswer> {
        on.then(|| ForceAnswer {
            cue: self.force_answer_cue.clone(),
            max_tokens: self.force_answer_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_knobs_make_the_request_params_and_check_ranges() {
        let k = SamplingKnobs {
            temperature: 0.6,
            top_p: 0.99,
            top_k: 40,
            max_new_tokens: 48,
        };
        let force = ForceAnswer::default();
        let p = k.params(4, 9, Some(&force));
        let want = SamplingParams {
            n: 4,
            temperature: 0.6,
            top_p: 0.99,
            top_k: 40,
            max_new_tokens: 48,
            seed: 9,
            force_answer: Some(force),
            ..SamplingParams::default()
        };
        assert_eq!(p, want);
        assert_eq!(k.params(1, 0, None).force_answer, None);
        assert!(k.validate().is_ok());
        for bad in [
            SamplingKnobs {
                top_p: 0.0,
                ..k.clone()
            },
            SamplingKnobs {
                top_p: 1.5,
                ..k.clone()
            },
            SamplingKnobs {
                temperature: -1.0,
                ..k.clone()
            },
            SamplingKnobs {
                temperature: f64::NAN,
                ..k.clone()
            },
            SamplingKnobs {
                max_new_tokens: 0,
                ..k.clone()
            },
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains("0 < top_p <= 1"), "{bad:?}: {e}");
        }
        // the config file keeps the f64 as written
        let text = serde_json::to_string(&k).unwrap();
        assert!(text.contains("\"top_p\":0.99,"), "{text}");
    }

    #[test]
    fn engine_knobs_zero_kv_bytes_is_the_default_budget() {
        let k = EngineKnobs {
            max_batch_size: 7,
            ..EngineKnobs::default()
        };
        let c = k.engine_config(vec![2, 3]);
        assert_eq!((c.max_batch_size, c.eos_token_ids.clone()), (7, vec![2, 3]));
        assert_eq!(c.max_kv_bytes, EngineConfig::default().max_kv_bytes);
        assert_eq!(c.prefill_chunk, EngineConfig::default().prefill_chunk);
        let k = EngineKnobs {
            max_kv_bytes: 1 << 20,
            ..k
        };
        assert_eq!(k.engine_config(Vec::new()).max_kv_bytes, 1 << 20);
        assert_eq!(k.force_answer(false), None);
        assert_eq!(k.force_answer(true), Some(ForceAnswer::default()));
        // a file written before the forced-answer and weight keys existed
        let old: EngineKnobs =
            serde_json::from_str(r#"{"max_batch_size": 7, "max_kv_bytes": 1048576}"#).unwrap();
        assert_eq!(old, k);
        assert!(serde_json::from_str::<EngineKnobs>(r#"{"max_batch": 7}"#).is_err());
    }
}
