//! The configuration section, with secrets redacted.

use super::Run;
use crate::error::Result;

/// `text` (TOML) with every secret-looking value replaced by `"<redacted>"`: the value of a
/// key whose name says key/token/secret/password (but not the name of an environment
/// variable, `*_env`), and any string that looks like a credential (`sk-…`, `hf_…`,
/// `Bearer …`, `ghp_…`, `AKIA…`).
pub fn redact_secrets(text: &str) -> String {
    fn secret_key(k: &str) -> bool {
        let k = k.trim().trim_matches('"').to_ascii_lowercase();
        let words: Vec<&str> = k.split(['_', '-', '.', ' ']).collect();
        words.last() != Some(&"env")
            && words.iter().any(|w| {
                [
                    "key",
                    "apikey",
                    "token",
                    "secret",
                    "password",
                    "passwd",
                    "credentials",
                    "auth",
                ]
                .contains(w)
            })
    }
    fn secret_value(v: &str) -> bool {
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        let long_word = |rest: &str| {
            rest.len() >= 8
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        [
            "sk-",
            "hf_",
            "ghp_",
            "gho_",
            "github_pat_",
            "xox",
            "AKIA",
            "glpat-",
        ]
        .iter()
        .any(|p| v.strip_prefix(p).is_some_and(long_word))
            || v.strip_prefix("Bearer ")
                .is_some_and(|r| !r.trim().is_empty())
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let end = &line[body.len()..];
        if let Some((k, v)) = body.split_once('=') {
            let v_trim = v.trim();
            let string = v_trim.starts_with(['"', '\'']);
            let empty = v_trim == "\"\"" || v_trim == "''";
            if !body.trim_start().starts_with('#')
                && string
                && !empty
                && (secret_key(k) || secret_value(v))
            {
                out.push_str(k);
                out.push_str("= \"<redacted>\"");
                out.push_str(end);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

pub(super) fn section_config(run: &Run) -> Result<String> {
    let config = run.config.as_deref().map(redact_secrets);
    super::html("config.html", minijinja::context! { config })
}
