//! The three ways of taking an answer from a response ([`ExtractMode`]): the boxed answer,
//! boxed with fallbacks ([`crate::extract`]), and free text ([`crate::free`]).

use crate::extract::{extract_answer, extract_boxed, ExtractOptions};
use crate::free::extract_free;

/// How an answer is taken from a response: the modes of `rzero grade --extract` and of
/// evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtractMode {
    /// The last `\boxed{}` only, as the reference's reward (the default).
    #[default]
    Boxed,
    /// `\boxed{}`, else "Final Answer:", "the answer is", a choice letter
    /// ([`ExtractOptions::all`]).
    Fallbacks,
    /// Free text: [`extract_free`](crate::extract_free).
    Free,
}

impl ExtractMode {
    /// The answer of `text` under this mode.
    pub fn extract(self, text: &str) -> Option<String> {
        match self {
            ExtractMode::Boxed => extract_boxed(text),
            ExtractMode::Fallbacks => extract_answer(text, &ExtractOptions::all()),
            ExtractMode::Free => extract_free(text),
        }
    }

    /// The mode's name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ExtractMode::Boxed => "boxed",
            ExtractMode::Fallbacks => "fallbacks",
            ExtractMode::Free => "free",
        }
    }
}

impl std::fmt::Display for ExtractMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ExtractMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "boxed" => Ok(ExtractMode::Boxed),
            "fallbacks" => Ok(ExtractMode::Fallbacks),
            "free" => Ok(ExtractMode::Free),
            other => Err(crate::Error::UnknownMode(other.to_string())),
        }
    }
}
