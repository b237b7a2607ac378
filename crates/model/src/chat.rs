//! Chat templates: Hugging Face Jinja templates rendered with `minijinja`.
//!
//! Rendering follows transformers' `apply_chat_template`: `trim_blocks` and `lstrip_blocks` on,
//! `loopcontrols` available, Python string methods (`.strip()`, `.startswith()`, `.split()`...)
//! through `minijinja-contrib`'s pycompat, a `raise_exception(msg)` function, and the variables
//! `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`), the fallback for models
/// without a template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const NAME: &str = "chat_template";

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    source: String,
    bos: Option<String>,
    eos: Option<String>,
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

fn raise_exception(msg: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        msg,
    ))
}

impl ChatTemplate {
    /// Compile a Jinja template. `bos` / `eos` are the token strings exposed as `bos_token` /
    /// `eos_token`.
    pub fn new(
        source: impl Into<String>,
        bos: Option<String>,
        eos: Option<String>,
    ) -> Result<Self> {
        let source = source.into();
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, source.clone())
            .map_err(|e| Error::Template(format!("cannot compile: {e:#}")))?;
        Ok(Self {
            source,
            bos,
            eos,
            env,
        })
    }

    /// The ChatML template with `<|im_end|>` as EOS.
    pub fn chatml() -> Self {
        Self::new(CHATML_TEMPLATE, None, Some("<|im_end|>".into()))
            .expect("the built-in ChatML template compiles")
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `bos_token` as given to the template.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos.as_deref()
    }

    /// `eos_token` as given to the template.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos.as_deref()
    }

    /// Render `msgs`; with `add_generation_prompt` the assistant header is appended.
    pub fn render(&self, msgs: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::Template(format!("{e:#}")))?;
        let ctx = minijinja::context! {
            messages => msgs,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_deref().unwrap_or(""),
            eos_token => self.eos.as_deref().unwrap_or(""),
        };
        tmpl.render(ctx)
            .map_err(|e| Error::Template(format!("render: {e:#}")))
    }
}
