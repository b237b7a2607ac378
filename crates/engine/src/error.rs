//! Errors of the engine crate.

/// Result with the engine's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request can never be served (empty or too-long prompt, bad parameter, does not fit
    /// the KV budget even alone).
    #[error("request {request_id}: {msg}")]
    InvalidRequest {
        /// The request's id.
        request_id: u64,
        /// What is wrong.
        msg: String,
    },
    /// The engine configuration is unusable.
    #[error("engine config: {0}")]
    Config(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] model::Error),
    /// A tensor operation failed (one line: [`model::error::brief`]).
    #[error("{}", model::error::brief(.0))]
    Candle(candle_core::Error),
    /// The tokenizer failed while decoding.
    #[error("decoding: {0}")]
    Decode(String),
    /// Non-finite logits (NaN) for a sequence.
    #[error("request {request_id} sample {index}: logits contain NaN")]
    NanLogits {
        /// The request's id.
        request_id: u64,
        /// The sample index.
        index: usize,
    },
    /// Generation was cancelled through the cancellation flag.
    #[error("generation cancelled")]
    Cancelled,
    /// Another [`Sampler`](crate::Sampler) failed (e.g. the HTTP client of remote servers);
    /// its error is kept as the source.
    #[error("{0}")]
    Sampler(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}
