//! Errors of the train crate.

use std::path::PathBuf;

/// Result with the train crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong while training or checkpointing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] fsutil::Error),
    /// A file exists but its contents are wrong (bad JSON, missing tensor, wrong shape...).
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field or tensor.
        msg: String,
    },
    /// Bad input from the caller (empty group, mismatched lengths, bad configuration...).
    #[error("{0}")]
    Invalid(String),
    /// Training diverged: a non-finite loss or reward. The last checkpoint is the last good
    /// state.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Error from the model crate.
    #[error(transparent)]
    Model(#[from] model::Error),
    /// A tensor operation failed (one line: [`model::error::brief`]).
    #[error("{}", model::error::brief(.0))]
    Candle(candle_core::Error),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(fsutil::Error {
            path: path.into(),
            source,
        })
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}
