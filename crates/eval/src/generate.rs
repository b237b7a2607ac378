//! The [`Generator`] abstraction ("prompts in, `n` completions per prompt out") and the
//! Solver prompt (defined here once: training and evaluation use it). `eval` links no model
//! code (a dependency rule), so this is the thin view of `engine::Sampler` evaluation needs;
//! `rzero::evaluate::SamplerGenerator` implements it over the sampler; tests use fakes.

use serde::{Deserialize, Serialize};

use crate::bench::{Item, Kind};
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

/// Something that completes prompts: `engine::Sampler` through
/// `rzero::evaluate::SamplerGenerator`, or a fake.
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

    /// Renders a single user message (no system message) with the model's chat template, as
    /// `tokenizer.apply_chat_template([{"role": "user", ...}], add_generation_prompt=True)`
    /// does in R-Zero's general-domain scripts; `None` when the model has no template (the
    /// default), and the caller then builds the reference's `"user: "` prompt.
    fn format_user_prompt(&self, user: &str) -> Result<Option<String>> {
        let _ = user;
        Ok(None)
    }
}

/// The prompt of `item` on a benchmark of `kind`: the Solver prompt for math; for the
/// general-domain sets the reference's user message (`eval_mmlupro.py`, `eval_supergpqa.py`,
/// `eval_bbeh.py`), or, for models without a chat template, the reference's
/// `"user: " + query + instruction` (the scripts use the letter-only instruction there).
pub fn prompt_for(gen: &dyn Generator, kind: Kind, item: &Item) -> Result<String> {
    use grade::{bbeh, mmlu_pro};
    let (query, instruction) = match kind {
        Kind::Math => return gen.format_prompt(SOLVER_SYSTEM_PROMPT, &item.question),
        Kind::MmluPro => (
            mmlu_pro::query(&item.question, &item.options),
            mmlu_pro::INSTRUCTION,
        ),
        Kind::SuperGpqa => (
            mmlu_pro::query(&item.question, &item.options),
            mmlu_pro::INSTRUCTION_LETTER,
        ),
        Kind::Bbeh => (bbeh::query(&item.question), bbeh::INSTRUCTION),
    };
    match gen.format_user_prompt(&format!("{query}{instruction}"))? {
        Some(p) => Ok(p),
        None => Ok(format!("user: {query}{}", mmlu_pro::INSTRUCTION_LETTER)),
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
    fn format_user_prompt(&self, user: &str) -> Result<Option<String>> {
        (**self).format_user_prompt(user)
    }
}
