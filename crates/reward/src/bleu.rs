//! Sentence BLEU, bit-for-bit as NLTK 3.9.1 computes
//! `sentence_bleu([reference], hypothesis, smoothing_function=SmoothingFunction().method1)`
//! with the default weights (0.25, 0.25, 0.25, 0.25).
//!
//! # Which side is which
//! BLEU is asymmetric: the brevity penalty uses the hypothesis length and the clipped
//! n-gram precision counts the hypothesis's n-grams. R-Zero
//! (`examples/reward_function/caller_penalty.py`, `_bleu_distance_matrix`) computes, for
//! every pair `i < j` of a batch, `sentence_bleu([s[j].split()], s[i].split(), ...)`: the
//! EARLIER question is the hypothesis and the LATER one the only reference, and it mirrors
//! the value into `dist[j][i]`. [`crate::distance`] does the same.
//!
//! # Exactness
//! - Tokens are Python's `str.split()`: runs of any character for which `str.isspace()`
//!   holds ([`is_py_whitespace`]; this adds U+001C..U+001F to Rust's whitespace set).
//! - For n = 1..4: `num_n` = Σ over hypothesis n-grams of min(count in hypothesis, count in
//!   reference); `den_n` = max(1, number of hypothesis n-grams).
//! - `num_1 == 0` gives exactly 0.
//! - method1: `p_n = 0.1 / den_n` when `num_n == 0`, else `num_n / den_n` (one correctly
//!   rounded division, as `float(Fraction)` does).
//! - Brevity penalty: 1 if h > r, 0 if h == 0, else `exp(1 - r/h)`.
//! - `bleu = bp * exp(fsum(0.25 * ln p_n))` where `fsum` is Python's exactly rounded
//!   `math.fsum` ([`fsum`]).
//!
//! [`NgramCounts`] caches a sentence's n-gram counts for repeated comparisons;
//! [`crate::distance`] has the all-pairs fast path used for clustering.

use std::collections::HashMap;

/// Highest n-gram order (BLEU-4).
pub const MAX_ORDER: usize = 4;
/// NLTK `SmoothingFunction().method1` epsilon.
pub const EPSILON: f64 = 0.1;
/// The uniform weight of each order.
const WEIGHT: f64 = 0.25;

/// Python's `str.isspace()` for one character: Rust's `char::is_whitespace` plus the
/// information separators U+001C..U+001F.
pub fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: split on whitespace runs, drop empty tokens.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(is_py_whitespace)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_whitespace)
}

/// Python's `math.fsum`: the correctly rounded sum of finite values (a port of CPython's
/// `math_fsum`, Shewchuk's partials plus the half-way correction).
pub fn fsum(values: &[f64]) -> f64 {
    // Partials live on the stack for short inputs (BLEU sums four terms).
    let mut stack = [0f64; 8];
    let mut heap: Vec<f64> = Vec::new();
    let mut len = 0usize;
    for &v in values {
        let partials: &mut [f64] = if heap.is_empty() {
            &mut stack[..]
        } else {
            &mut heap[..]
        };
        let mut x = v;
        let mut i = 0;
        for j in 0..len {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        if i == partials.len() {
            // Grow: move to the heap (only for long inputs).
            let mut grown = partials.to_vec();
            grown.resize(2 * grown.len(), 0.0);
            heap = grown;
        }
        let partials: &mut [f64] = if heap.is_empty() {
            &mut stack[..]
        } else {
            &mut heap[..]
        };
        partials[i] = x;
        len = i + 1;
    }
    let partials: &[f64] = if heap.is_empty() {
        &stack[..len]
    } else {
        &heap[..len]
    };
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// `0.25 * ln(p_n)` with method1 smoothing, for a numerator `num <= den`, `den >= 1`.
#[inline]
pub(crate) fn log_term(num: u32, den: u32) -> f64 {
    let p = if num == 0 {
        EPSILON / den as f64
    } else {
        num as f64 / den as f64
    };
    WEIGHT * p.ln()
}

/// NLTK's brevity penalty for hypothesis length `h` and reference length `r`.
#[inline]
pub(crate) fn brevity_penalty(h: usize, r: usize) -> f64 {
    if h > r {
        1.0
    } else if h == 0 {
        0.0
    } else {
        (1.0 - r as f64 / h as f64).exp()
    }
}

/// BLEU from the clipped numerators and denominators of orders 1..4 and the two lengths.
pub fn bleu_from_counts(
    num: [u32; MAX_ORDER],
    den: [u32; MAX_ORDER],
    hyp_len: usize,
    ref_len: usize,
) -> f64 {
    if num[0] == 0 {
        return 0.0;
    }
    let terms = [
        log_term(num[0], den[0]),
        log_term(num[1], den[1]),
        log_term(num[2], den[2]),
        log_term(num[3], den[3]),
    ];
    brevity_penalty(hyp_len, ref_len) * fsum(&terms).exp()
}

/// Number of n-grams of order `n` in a sequence of `len` tokens, as BLEU's denominator
/// (at least 1).
#[inline]
pub(crate) fn denominator(len: usize, n: usize) -> u32 {
    (len.saturating_sub(n - 1)).max(1) as u32
}

/// NLTK's `sentence_bleu([reference], hypothesis, smoothing_function=method1)` on token
/// slices (one reference, weights 0.25 × 4).
pub fn sentence_bleu(reference: &[&str], hypothesis: &[&str]) -> f64 {
    let mut num = [0u32; MAX_ORDER];
    let mut den = [1u32; MAX_ORDER];
    for n in 1..=MAX_ORDER {
        den[n - 1] = denominator(hypothesis.len(), n);
        if hypothesis.len() < n {
            continue;
        }
        let mut hyp: HashMap<&[&str], u32> = HashMap::new();
        for g in hypothesis.windows(n) {
            *hyp.entry(g).or_insert(0) += 1;
        }
        let mut refc: HashMap<&[&str], u32> = HashMap::new();
        if reference.len() >= n {
            for g in reference.windows(n) {
                *refc.entry(g).or_insert(0) += 1;
            }
        }
        num[n - 1] = hyp
            .iter()
            .map(|(g, &c)| c.min(refc.get(g).copied().unwrap_or(0)))
            .sum();
    }
    bleu_from_counts(num, den, hypothesis.len(), reference.len())
}

/// [`sentence_bleu`] on two strings, tokenised with [`py_split`]: the value R-Zero puts
/// at `1 - dist[i][j]` with `hypothesis = s[i]`, `reference = s[j]`, `i < j`.
pub fn sentence_bleu_str(reference: &str, hypothesis: &str) -> f64 {
    sentence_bleu(&py_split(reference), &py_split(hypothesis))
}

/// Cached n-gram counts of one sentence, for many BLEU evaluations against others.
///
/// Tokens are interned by a shared [`Vocab`], so n-grams compare as integer tuples
/// (exact; no hashing collisions).
#[derive(Debug, Clone, Default)]
pub struct NgramCounts {
    len: usize,
    /// For each order, `(n-gram, count)` sorted by n-gram.
    grams: [Vec<(Vec<u32>, u32)>; MAX_ORDER],
}

/// Token interner shared by the [`NgramCounts`] that are compared with each other.
#[derive(Debug, Default)]
pub struct Vocab {
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// An empty vocabulary.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `token`, adding it when new.
    pub fn id(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(token.to_string(), id);
        id
    }

    /// Tokenises `text` with [`py_split`] and interns the tokens.
    pub fn encode(&mut self, text: &str) -> Vec<u32> {
        py_split(text).into_iter().map(|t| self.id(t)).collect()
    }
}

impl NgramCounts {
    /// Counts the n-grams of an interned token sequence.
    pub fn new(tokens: &[u32]) -> Self {
        let mut grams: [Vec<(Vec<u32>, u32)>; MAX_ORDER] = Default::default();
        for (n, slot) in (1..=MAX_ORDER).zip(grams.iter_mut()) {
            if tokens.len() < n {
                continue;
            }
            let mut all: Vec<&[u32]> = tokens.windows(n).collect();
            all.sort_unstable();
            for g in all {
                match slot.last_mut() {
                    Some((last, c)) if last.as_slice() == g => *c += 1,
                    _ => slot.push((g.to_vec(), 1)),
                }
            }
        }
        Self {
            len: tokens.len(),
            grams,
        }
    }

    /// BLEU with `self` as the hypothesis and `reference` as the only reference.
    pub fn bleu_against(&self, reference: &NgramCounts) -> f64 {
        let mut num = [0u32; MAX_ORDER];
        let mut den = [1u32; MAX_ORDER];
        for n in 0..MAX_ORDER {
            den[n] = denominator(self.len, n + 1);
            let (a, b) = (&self.grams[n], &reference.grams[n]);
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].0.cmp(&b[j].0) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        num[n] += a[i].1.min(b[j].1);
                        i += 1;
                        j += 1;
                    }
                }
            }
        }
        bleu_from_counts(num, den, self.len, reference.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        py_split(s)
    }

    #[test]
    fn fsum_is_exactly_rounded() {
        // Naive left-to-right summation loses the small terms; fsum does not.
        assert_eq!(fsum(&[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(fsum(&[0.1; 10]), 1.0);
        assert_ne!([0.1f64; 10].iter().sum::<f64>(), 1.0);
        assert_eq!(fsum(&[]), 0.0);
        // Half-way case that needs the correction step (CPython's test_math).
        assert_eq!(fsum(&[1.0, 1e-16, 1e-16]), 1.0000000000000002);
        assert_eq!(
            fsum(&[2.0f64.powi(53), 1.0, 2.0f64.powi(-100)]),
            2.0f64.powi(53) + 2.0
        );
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(
            py_split("a\u{1f}b\u{a0}c\u{3000}d\u{200b}e  \t\nf"),
            vec!["a", "b", "c", "d\u{200b}e", "f"]
        );
        assert_eq!(py_split("   "), Vec::<&str>::new());
        assert_eq!(py_strip("\u{1c} x y \u{85}"), "x y");
    }

    #[test]
    fn hand_computed_values() {
        // Identical 4+-token sentences: every precision 1, bp 1.
        assert_eq!(sentence_bleu_str("a b c d", "a b c d"), 1.0);
        // Identical 1-token sentences: p = (1, 0.1, 0.1, 0.1) -> 0.1^0.75.
        let v = sentence_bleu_str("x", "x");
        assert!((v - 0.1f64.powf(0.75)).abs() < 1e-15, "{v}");
        // Two tokens: p = (1, 1, 0.1, 0.1) -> 0.1^0.5.
        assert!((sentence_bleu_str("x y", "x y") - 0.1f64.sqrt()).abs() < 1e-15);
        // Empty hypothesis or no shared unigram -> exactly 0.
        assert_eq!(sentence_bleu_str("a b c", ""), 0.0);
        assert_eq!(sentence_bleu_str("", ""), 0.0);
        assert_eq!(sentence_bleu_str("", "a b"), 0.0);
        assert_eq!(sentence_bleu_str("a b", "c d"), 0.0);
        // Brevity: hyp "a b c d" (4) vs ref "a b c d e f" (6): precisions 1, bp = e^(1-6/4).
        let v = sentence_bleu_str("a b c d e f", "a b c d");
        assert!((v - (-0.5f64).exp()).abs() < 1e-15, "{v}");
        // The other way round: hyp longer than ref, no brevity penalty;
        // p1 = 4/6, p2 = 3/5, p3 = 2/4, p4 = 1/3.
        let v = sentence_bleu_str("a b c d", "a b c d e f");
        let want = ((4.0f64 / 6.0) * (3.0 / 5.0) * (2.0 / 4.0) * (1.0 / 3.0)).powf(0.25);
        assert!((v - want).abs() < 1e-15, "{v} vs {want}");
        // Clipping: hyp "the the the the" vs ref "the cat": p1 = 1/4, others smoothed
        // (0.1/3, 0.1/2, 0.1/1); bp = 1 (4 > 2).
        let v = sentence_bleu_str("the cat", "the the the the");
        let want = (0.25f64 * (0.1 / 3.0) * (0.1 / 2.0) * 0.1).powf(0.25);
        assert!((v - want).abs() < 1e-15, "{v} vs {want}");
    }

    #[test]
    fn cached_counts_agree_with_direct() {
        let sents = [
            "a b c d a b",
            "a b c",
            "",
            "x",
            "b c d a b c d",
            "a a a a a",
        ];
        let mut vocab = Vocab::new();
        let cached: Vec<NgramCounts> = sents
            .iter()
            .map(|s| NgramCounts::new(&vocab.encode(s)))
            .collect();
        for (i, a) in sents.iter().enumerate() {
            for (j, b) in sents.iter().enumerate() {
                let direct = sentence_bleu(&toks(b), &toks(a));
                assert_eq!(
                    cached[i].bleu_against(&cached[j]).to_bits(),
                    direct.to_bits(),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }
}
