//! Small helpers of the HTTP client and the weight sync: base URLs, model lists, error
//! bodies.

use serde_json::Value;

/// Normalises a base URL: no trailing `/` or `/v1`.
pub(crate) fn root_url(u: &str) -> String {
    let u = u.trim_end_matches('/');
    u.strip_suffix("/v1").unwrap_or(u).to_string()
}

pub(crate) fn model_ids(v: &Value) -> Option<Vec<String>> {
    v.get("data")?
        .as_array()?
        .iter()
        .map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The message of an error body (`{"error": {"message"}}`, `{"detail"}`, or the text).
pub(crate) fn error_message(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        for p in ["/error/message", "/message", "/detail", "/error"] {
            if let Some(s) = v.pointer(p).and_then(Value::as_str) {
                return s.to_string();
            }
        }
    }
    snippet(text)
}

pub(crate) fn snippet(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "(empty body)".into();
    }
    let mut s: String = t.chars().take(300).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    s
}
