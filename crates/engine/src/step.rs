//! The small model interface the scheduler runs on, and its implementation for
//! [`model::Model`] (`forward_packed` over per-sequence [`model::KvCache`]s).
//!
//! Keeping the scheduler generic over [`StepModel`] lets the tests drive it with a fake
//! model whose logits depend on the whole token history, so cache copies, preemption and
//! recomputation are checked exactly.

use crate::error::Result;

/// One sequence's part of a model step: `tokens` are appended to `cache` (at positions
/// `cache_len..`), and the logits of the last of them come back.
pub struct StepItem<'a, C> {
    /// New tokens (at least one).
    pub tokens: &'a [u32],
    /// The sequence's cache.
    pub cache: &'a mut C,
}

/// What the engine needs from a model.
pub trait StepModel: Send + Sync {
    /// A per-sequence KV cache; `Clone` copies it (prefix sharing).
    type Cache: Clone + Send + Sync;
    /// An empty cache.
    fn new_cache(&self) -> Self::Cache;
    /// Tokens held by a cache.
    fn cache_len(&self, cache: &Self::Cache) -> usize;
    /// KV bytes one cached token costs (all layers, keys and values).
    fn kv_bytes_per_token(&self) -> usize;
    /// Width of a logits row.
    fn vocab_size(&self) -> usize;
    /// Longest sequence (prompt + generated) the model can take.
    fn max_positions(&self) -> usize;
    /// Runs one packed step; returns the row-major `[items.len(), vocab_size]` logits of each
    /// item's last new token.
    fn step(&self, items: &mut [StepItem<'_, Self::Cache>]) -> Result<Vec<f32>>;
}

/// `StepModel` for references, `Arc`s and `Cow`s of one, forwarding every method.
macro_rules! forward_step_model {
    ($([$($bounds:tt)*] $ptr:ty),*) => {$(
        impl<$($bounds)*> StepModel for $ptr {
            type Cache = T::Cache;
            fn new_cache(&self) -> Self::Cache {
                (**self).new_cache()
            }
            fn cache_len(&self, cache: &Self::Cache) -> usize {
                (**self).cache_len(cache)
            }
            fn kv_bytes_per_token(&self) -> usize {
                (**self).kv_bytes_per_token()
            }
            fn vocab_size(&self) -> usize {
                (**self).vocab_size()
            }
            fn max_positions(&self) -> usize {
                (**self).max_positions()
            }
            fn step(&self, items: &mut [StepItem<'_, Self::Cache>]) -> Result<Vec<f32>> {
                (**self).step(items)
            }
        }
    )*};
}
forward_step_model!(
    [T: StepModel + ?Sized] &T,
    [T: StepModel + ?Sized] std::sync::Arc<T>,
    ['a, T: StepModel + Clone] std::borrow::Cow<'a, T>
);

impl crate::stop::Detokenize for model::tokenizer::Tokenizer {
    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        Ok(model::tokenizer::Tokenizer::decode(
            self,
            ids,
            skip_special,
        )?)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(model::tokenizer::Tokenizer::encode(self, text, false)?)
    }
}

impl StepModel for model::Model {
    type Cache = model::KvCache;

    fn new_cache(&self) -> model::KvCache {
        model::Model::new_cache(self)
    }

    fn cache_len(&self, cache: &model::KvCache) -> usize {
        cache.len()
    }

    fn kv_bytes_per_token(&self) -> usize {
        model::Model::kv_bytes_per_token(self)
    }

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    fn max_positions(&self) -> usize {
        self.config().max_position_embeddings
    }

    fn step(&self, items: &mut [StepItem<'_, model::KvCache>]) -> Result<Vec<f32>> {
        let mut seqs: Vec<model::SeqInput<'_>> = items
            .iter_mut()
            .map(|it| model::SeqInput {
                tokens: it.tokens,
                cache: &mut *it.cache,
            })
            .collect();
        let logits = self.forward_packed(&mut seqs)?;
        Ok(logits
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }
}
