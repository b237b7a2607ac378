//! Errors of the model crate.

use std::path::PathBuf;

/// Result with the model crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong when loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its contents are wrong (bad JSON, bad GGUF, missing key...).
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field where possible.
        msg: String,
    },
    /// A weight is missing or has the wrong shape.
    #[error("weight {name}: {msg}")]
    Weight {
        /// HF parameter name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The architecture is not one we implement.
    #[error("unsupported architecture {0:?} (supported: llama, qwen2, qwen3)")]
    UnknownArch(String),
    /// The input is longer than the model's context.
    #[error("input of {len} tokens exceeds the model's context of {max} tokens")]
    TooLong {
        /// Tokens given.
        len: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
    /// Bad argument from the caller (shapes, token ids out of range, ...).
    #[error("{0}")]
    Invalid(String),
    /// A model id could not be resolved through the hub cache.
    #[error("{0}")]
    Hub(String),
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Chat template failure.
    #[error("chat template: {0}")]
    Template(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<fsutil::Error> for Error {
    fn from(e: fsutil::Error) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
