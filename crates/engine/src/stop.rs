//! Incremental detokenisation and stop-string matching.
//!
//! Decoding the whole completion after every token would cost O(n²) over a 4,096-token
//! answer, so, as vLLM does, only a short window of ids is decoded per step: the text of
//! `ids[prefix..read]` is subtracted from the text of `ids[prefix..]`, and nothing is
//! emitted while the tail is an incomplete UTF-8 sequence (ends in U+FFFD). Stop strings are
//! searched only in the part of the text that the new piece can have completed.

use crate::error::Result;

/// Decodes token ids to text (implemented for `model::Tokenizer`, and by test fakes).
pub trait Detokenize: Send + Sync {
    /// The text of `ids`, skipping special tokens when asked.
    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String>;

    /// The ids of `text` (no special tokens added): the forced-answer cue
    /// ([`crate::ForceAnswer`]). Decoders that cannot encode refuse forced answers.
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Err(crate::Error::Decode(format!(
            "this tokenizer cannot encode {text:?} (needed for force_answer)"
        )))
    }
}

impl<T: Detokenize + ?Sized> Detokenize for &T {
    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        (**self).decode(ids, skip_special)
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        (**self).encode(text)
    }
}

impl<T: Detokenize + Clone> Detokenize for std::borrow::Cow<'_, T> {
    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        (**self).decode(ids, skip_special)
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        (**self).encode(text)
    }
}

impl<T: Detokenize + ?Sized> Detokenize for std::sync::Arc<T> {
    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        (**self).decode(ids, skip_special)
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        (**self).encode(text)
    }
}

/// The running text of one completion and its stop-string state.
#[derive(Debug, Clone, Default)]
pub struct StopState {
    prefix: usize,
    read: usize,
    /// Text emitted so far (special tokens skipped).
    pub text: String,
}

impl StopState {
    /// Extends the text with the tokens `ids[..]` (the whole completion so far, whose last
    /// element is new) and returns the byte offset and the stop string of the earliest
    /// match that the new text completed, if any.
    pub fn push<D: Detokenize + ?Sized>(
        &mut self,
        tok: &D,
        ids: &[u32],
        stops: &[String],
    ) -> Result<Option<(usize, usize)>> {
        let prefix_text = tok.decode(&ids[self.prefix..self.read], true)?;
        let new_text = tok.decode(&ids[self.prefix..], true)?;
        if new_text.len() <= prefix_text.len() || new_text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let delta = match new_text.get(prefix_text.len()..) {
            Some(d) if new_text.starts_with(&prefix_text) => d,
            // A tokenizer whose decoding is not prefix-stable: fall back to the whole window.
            _ => return Ok(None),
        };
        let before = self.text.len();
        self.text.push_str(delta);
        self.prefix = self.read;
        self.read = ids.len();
        Ok(find_stop(&self.text, before, stops))
    }
}

/// The earliest stop-string match that ends after byte `new_from` of `text`:
/// `(byte offset, index in stops)`.
pub fn find_stop(text: &str, new_from: usize, stops: &[String]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for (si, s) in stops.iter().enumerate() {
        // A match completed by the new text starts at or after new_from - (len - 1).
        let mut start = new_from.saturating_sub(s.len().saturating_sub(1));
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        if let Some(pos) = text[start..].find(s.as_str()) {
            let at = start + pos;
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, si));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each id is one byte of a UTF-8 text; id 0 is a special token decoding to "".
    struct Bytes;
    impl Detokenize for Bytes {
        fn decode(&self, ids: &[u32], _skip: bool) -> Result<String> {
            let b: Vec<u8> = ids.iter().filter(|&&i| i != 0).map(|&i| i as u8).collect();
            Ok(String::from_utf8_lossy(&b).into_owned())
        }
    }

    fn run(text: &str, stops: &[&str]) -> (String, Option<(usize, usize)>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut ids = vec![];
        let mut st = StopState::default();
        for b in text.bytes() {
            ids.push(b as u32);
            if let Some(m) = st.push(&Bytes, &ids, &stops).unwrap() {
                return (st.text[..m.0].to_string(), Some(m));
            }
        }
        (st.text, None)
    }

    #[test]
    fn incremental_text_equals_full_decode_with_multibyte_chars() {
        let s = "π ≈ 3.14, ∑ 😀 done";
        let (t, m) = run(s, &[]);
        assert_eq!(t, s);
        assert!(m.is_none());
    }

    #[test]
    fn stop_string_cuts_text_before_match() {
        let (t, m) = run("The answer is 42.\nUser: next", &["\nUser:", "zzz"]);
        assert_eq!(t, "The answer is 42.");
        assert_eq!(m.map(|x| x.1), Some(0));
    }

    #[test]
    fn earliest_of_several_stops_wins_and_spans_pieces() {
        let (t, m) = run("abc END xyz STOP", &["STOP", "END"]);
        assert_eq!(t, "abc ");
        assert_eq!(m.map(|x| x.1), Some(1));
        // A multibyte stop string split across tokens.
        let (t, _) = run("x ≈ y", &["≈"]);
        assert_eq!(t, "x ");
    }

    #[test]
    fn special_tokens_are_skipped() {
        let mut st = StopState::default();
        let ids = [b'a' as u32, 0, b'b' as u32];
        for k in 1..=3 {
            st.push(&Bytes, &ids[..k], &[]).unwrap();
        }
        assert_eq!(st.text, "ab");
    }
}
