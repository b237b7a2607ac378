//! The sampler the server tests serve: the in-process engine over a loaded model, as
//! `rzero serve --model` builds it.

use std::sync::Arc;

use engine::{EngineConfig, LocalSampler, Sampler};

/// [`LocalSampler`] owning `loaded`'s model, batching up to `rzero serve`'s default.
pub fn local(loaded: &model::LoadedModel) -> Arc<dyn Sampler> {
    let cfg = EngineConfig {
        max_batch_size: rzero_serve::DEFAULT_MAX_BATCH_SIZE,
        ..EngineConfig::default()
    };
    Arc::new(LocalSampler::from_loaded(loaded, cfg).expect("a sampler over the model"))
}
