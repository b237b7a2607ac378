//! Errors of the remote crate.

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong while sampling, serving or syncing weights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server kept failing (connection refused or dropped, 5xx, timeout) through every
    /// retry: it is considered down.
    #[error("{url}: server unavailable after {attempts} attempts: {cause}")]
    Unavailable {
        /// The base URL(s) tried.
        url: String,
        /// Attempts made (1 + retries).
        attempts: usize,
        /// The last failure.
        cause: String,
    },
    /// The server refused the request (a 4xx other than 408/429): retrying cannot help.
    #[error("{url}: request rejected with HTTP {status}: {message}")]
    Rejected {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The server answered 200 with something that is not a valid completion.
    #[error("{url}: unexpected response: {msg}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A request cannot be sent (bad parameter, chat prompt without a template, ...).
    #[error("request {index}: {msg}")]
    InvalidRequest {
        /// Position of the request in the batch.
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// A configuration value is unusable.
    #[error("remote config: {0}")]
    Config(String),
    /// The local engine failed.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The model (tokenizer, chat template) failed.
    #[error(transparent)]
    Model(#[from] model::Error),
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("server: {0}")]
    Server(String),
    /// Keeping a server on the current weights failed.
    #[error("weight sync: {0}")]
    Sync(String),
}

impl Error {
    /// `map_err` adapter: an I/O error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// The message of an error and all its sources, `a: b: c` (reqwest and hyper keep the useful
/// part, such as "connection closed before message completed", in the sources).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
