//! Errors of the R-Zero loop.

use std::path::PathBuf;

/// Result with the loop's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration (names the key).
    #[error("config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A run-directory file is malformed.
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The run directory was started with a different configuration.
    #[error("{0}")]
    Mismatch(String),
    /// Training diverged (NaN/inf loss).
    #[error("{0}")]
    Diverged(String),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Failure in a lower crate.
    #[error("{0}")]
    Stage(String),
}

impl From<fsutil::Error> for Error {
    fn from(e: fsutil::Error) -> Self {
        Error::Io {
            path: e.path,
            source: e.source,
        }
    }
}
