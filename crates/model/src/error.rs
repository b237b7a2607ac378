//! Errors of the model crate.

use std::path::PathBuf;

/// Result with the model crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong when loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] fsutil::Error),
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
    /// A tensor operation failed (the message is [`brief`]: no backtrace).
    #[error("{}", brief(.0))]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

/// A candle error in one line: a captured backtrace (candle attaches one to its errors when
/// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` is set, and prints it in the message) is dropped,
/// a context is joined with `: `, and of anything else that spans lines the first line is
/// kept.
pub fn brief(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => brief(inner),
        E::Context { inner, context } => format!("{context}: {}", brief(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), brief(inner)),
        other => other
            .to_string()
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_errors_lose_their_backtrace() {
        let bt = |inner: candle_core::Error| candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let e = bt(candle_core::Error::Msg(
            "no CUDA-capable device is detected".into(),
        ));
        assert!(
            e.to_string().lines().count() > 1,
            "candle's own message: {e}"
        );
        assert_eq!(brief(&e), "no CUDA-capable device is detected");
        let e = Error::from(bt(candle_core::Error::Msg("cannot open".into())));
        assert_eq!(e.to_string(), "cannot open");
        let e = bt(candle_core::Error::Msg("shape mismatch".into())).context("loading q_proj");
        assert_eq!(brief(&e), "loading q_proj: shape mismatch");
        let e = candle_core::Error::Msg("first line\nsecond line".into()).with_path("/m/x");
        assert_eq!(brief(&e), "/m/x: first line");
    }
}
