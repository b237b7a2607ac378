//! The error type of the `eval` crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading benchmarks, evaluating or reporting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] fsutil::Error),
    /// A JSONL/JSON input is malformed: names the file, the line (1-based, 0 for a whole
    /// file) and what is wrong.
    #[error("{path}:{line}: {msg}")]
    Parse {
        /// The file (or benchmark name for embedded data).
        path: String,
        /// 1-based line number, 0 when the whole file is concerned.
        line: usize,
        /// What is wrong, naming the field.
        msg: String,
    },
    /// A benchmark name that is neither built in nor an existing file.
    #[error("unknown benchmark `{name}` (built in: {known}; or give a path to a .jsonl file with `question` and `answer`)")]
    UnknownBenchmark {
        /// The name or path asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// The generator failed or returned the wrong number of completions.
    #[error("generation failed: {0}")]
    Generation(String),
    /// An existing output folder was written with different options.
    #[error("{path}: {msg}")]
    Resume {
        /// The options file that disagrees.
        path: PathBuf,
        /// What differs.
        msg: String,
    },
    /// The judge model of the re-check failed or returned the wrong number of replies.
    #[error("judge failed: {0}")]
    Judge(String),
    /// Invalid options (e.g. zero samples for an audit).
    #[error("invalid options: {0}")]
    Options(String),
    /// A report template is missing, does not parse or fails to render (a bug of the
    /// report, not of its input).
    #[error("report template {name}: {source:#}")]
    Template {
        /// The template's file name (`page.html`).
        name: String,
        /// What minijinja says (with the template line).
        source: minijinja::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(fsutil::Error {
            path: path.into(),
            source,
        })
    }
}
