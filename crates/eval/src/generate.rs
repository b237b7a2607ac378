//! The [`Generator`] abstraction ("prompts in, `n` completions per prompt out") and the
//! Solver prompt. The engine adapter in the binary implements it; tests use scripted fakes.

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The Solver's system prompt (R-Zero's Solver phase and evaluation).
pub const SOLVER_SYSTEM_PROMPT: &str =
    "Please reason step by step, and put your final answer within \\boxed{}.";

/// Sampling parameters of one `generate` call. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    /// Softmax temperature; 0 = greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling threshold (1.0 = off).
    pub top_p: f32,
    /// Top-k sampling (None = off).
    pub top_k: Option<usize>,
    /// Maximum number of generated tokens per completion.
    pub max_new_tokens: usize,
    /// Base seed; adapters derive one RNG stream per (prompt, sample) from it.
    pub seed: u64,
}

impl GenParams {
    /// Greedy decoding with the given token budget.
    pub fn greedy(max_new_tokens: usize) -> Self {
        GenParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: None,
            max_new_tokens,
            seed: 0,
        }
    }
}

/// Something that completes prompts: the inference engine, a server client, or a fake.
pub trait Generator {
    /// Returns, for each prompt, exactly `n` completions (the text generated after the
    /// prompt, without the prompt). Implementations report failures as
    /// [`Error::Generation`](crate::Error::Generation).
    fn generate(
        &mut self,
        prompts: &[String],
        n: usize,
        params: &GenParams,
    ) -> Result<Vec<Vec<String>>>;

    /// Turns a system prompt and a user message into the model's prompt text. The engine
    /// adapter renders the model's chat template; the default is [`plain_prompt`], for base
    /// models without a template.
    fn format_prompt(&self, system: &str, user: &str) -> Result<String> {
        Ok(plain_prompt(system, user))
    }
}

/// The prompt for models without a chat template: the system prompt, the question, and an
/// `Answer:` cue.
pub fn plain_prompt(system: &str, user: &str) -> String {
    format!("{system}\n\nQuestion: {user}\n\nAnswer:")
}

impl<G: Generator + ?Sized> Generator for &mut G {
    fn generate(
        &mut self,
        prompts: &[String],
        n: usize,
        params: &GenParams,
    ) -> Result<Vec<Vec<String>>> {
        (**self).generate(prompts, n, params)
    }
    fn format_prompt(&self, system: &str, user: &str) -> Result<String> {
        (**self).format_prompt(system, user)
    }
}
