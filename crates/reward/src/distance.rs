//! All-pairs BLEU distances of a batch, `d[i][j] = 1 - BLEU(hyp = s[i], ref = s[j])` for
//! `i < j` (R-Zero's pair order, see [`crate::bleu`]), stored as a condensed upper triangle
//! in SciPy's layout.
//!
//! # The fast path
//! The values equal [`crate::bleu::sentence_bleu`] bit for bit; only the counting is
//! organised for speed. Every n-gram (orders 1..4) gets an integer id. The clipped
//! numerator `num_n(i, j) = Σ_g min(c_i(g), c_j(g))` is split by document frequency:
//! - **frequent n-grams** (in many questions) are bits of per-question bitsets, one bitset
//!   per count level (count > 0, > 1, > 2, > 3), so their contribution is
//!   `Σ_level popcount(bits_i & bits_j)`; counts above 4 are corrected with a short list;
//! - **rare n-grams** go through an inverted index: row `i` walks the postings of its rare
//!   n-grams and accumulates `min(c_i, c_j)` for every later `j`.
//!
//! Each row `i` precomputes `0.25 · ln(p_n)` for every possible numerator and the brevity
//! penalty for every reference length, so a pair costs a few popcounts, an exactly rounded
//! 4-term sum and one `exp`. Rows run in parallel with rayon.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::bleu::{brevity_penalty, denominator, fsum, log_term, py_split, MAX_ORDER};

/// A symmetric matrix with zero diagonal stored as its upper triangle, row by row
/// (SciPy's condensed form): entry `(i, j)`, `i < j`, is at
/// `n·i − i·(i+1)/2 + (j − i − 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CondensedMatrix {
    n: usize,
    data: Vec<f64>,
}

impl CondensedMatrix {
    /// A matrix of `n` points with every distance equal to `fill`.
    pub fn filled(n: usize, fill: f64) -> Self {
        Self {
            n,
            data: vec![fill; n * n.saturating_sub(1) / 2],
        }
    }

    /// Number of points.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The condensed values.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Mutable condensed values.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Index of `(i, j)`, `i != j`, both `< n`.
    #[inline]
    pub fn index(&self, i: usize, j: usize) -> usize {
        condensed_index(self.n, i, j)
    }

    /// Distance between `i` and `j` (0 on the diagonal).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        if i == j {
            0.0
        } else {
            self.data[self.index(i, j)]
        }
    }

    /// Sets the distance between `i != j`.
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        let k = self.index(i, j);
        self.data[k] = v;
    }
}

/// Condensed index of `(i, j)`, `i != j`.
#[inline]
pub(crate) fn condensed_index(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// Reference implementation: `1 - sentence_bleu` for every pair with the cached
/// n-gram counts of [`crate::bleu::NgramCounts`] (no frequency split), in parallel.
pub fn bleu_distances_simple(questions: &[String]) -> CondensedMatrix {
    use crate::bleu::{NgramCounts, Vocab};
    let mut vocab = Vocab::new();
    let counts: Vec<NgramCounts> = questions
        .iter()
        .map(|q| NgramCounts::new(&vocab.encode(q)))
        .collect();
    let n = questions.len();
    let mut m = CondensedMatrix::filled(n, 1.0);
    split_rows(n, m.as_mut_slice())
        .into_par_iter()
        .for_each(|(i, row)| {
            for (k, d) in row.iter_mut().enumerate() {
                *d = 1.0 - counts[i].bleu_against(&counts[i + 1 + k]);
            }
        });
    m
}

/// Splits condensed storage into `(i, row i)` slices, row `i` holding `(i, i+1..n)`.
fn split_rows(n: usize, mut data: &mut [f64]) -> Vec<(usize, &mut [f64])> {
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let len = n - i - 1;
        let (row, rest) = std::mem::take(&mut data).split_at_mut(len);
        rows.push((i, row));
        data = rest;
    }
    rows
}

/// Bit levels per question: a frequent n-gram with count c sets its bit in levels
/// `0..min(c, LEVELS)`, so `Σ_t popcount(level_t(i) & level_t(j)) = Σ min(c_i, c_j, LEVELS)`.
const LEVELS: usize = 4;

/// One question's share of the frequency-split index.
struct Item {
    len: usize,
    /// Index of `len` among the batch's distinct lengths.
    len_rank: usize,
    /// Number of non-empty bit levels (max count of a frequent n-gram, capped).
    levels: usize,
    /// Rare n-grams: `(feature id, order index 0..4, count)`.
    rare: Vec<(u32, u8, u32)>,
    /// Frequent n-grams with count > `LEVELS`: `(dense index, order index, count)`, sorted.
    multi: Vec<(u32, u8, u32)>,
}

/// The BLEU distance matrix of a batch, `d[i][j] = 1 − BLEU(hyp = questions[i],
/// ref = questions[j])` for `i < j`: R-Zero's `_bleu_distance_matrix`, bit for bit.
pub fn bleu_distances(questions: &[String]) -> CondensedMatrix {
    bleu_distances_tuned(questions, (questions.len() / 16).max(8))
}

/// [`bleu_distances`] with the document frequency from which an n-gram is a bit rather
/// than a postings list (a speed knob only; every value is the same).
#[doc(hidden)]
pub fn bleu_distances_tuned(questions: &[String], dense_min_df: usize) -> CondensedMatrix {
    let n = questions.len();
    let (lens, df, per_item) = ngram_counts(questions);

    // 2. Frequent n-grams become bits. A feature in `df` questions costs about df²/2
    //    postings steps as a rare one, and n²/2 · (1/64) word operations as a bit.
    let threshold = dense_min_df.max(1) as u32;
    let mut dense_index: [Vec<u32>; MAX_ORDER] = Default::default(); // feature -> bit or u32::MAX
    let mut word_start = [0usize; MAX_ORDER + 1];
    for o in 0..MAX_ORDER {
        let mut next = 0u32;
        dense_index[o] = df[o]
            .iter()
            .map(|&d| {
                if d >= threshold {
                    next += 1;
                    next - 1
                } else {
                    u32::MAX
                }
            })
            .collect();
        word_start[o + 1] = word_start[o] + (next as usize).div_ceil(64);
    }
    let words = word_start[MAX_ORDER];
    // Level t (0-based) holds the frequent n-grams with count > t.
    let mut bits = vec![0u64; n * LEVELS * words];
    let mut items: Vec<Item> = Vec::with_capacity(n);
    let mut postings: [Vec<Vec<(u32, u32)>>; MAX_ORDER] = Default::default();
    for o in 0..MAX_ORDER {
        postings[o] = vec![Vec::new(); df[o].len()];
    }
    for (i, orders) in per_item.iter().enumerate() {
        let mut item = Item {
            len: lens[i],
            len_rank: 0,
            levels: 0,
            rare: Vec::new(),
            multi: Vec::new(),
        };
        for (o, list) in orders.iter().enumerate() {
            for &(f, c) in list {
                let b = dense_index[o][f as usize];
                if b == u32::MAX {
                    item.rare.push((f, o as u8, c));
                    postings[o][f as usize].push((i as u32, c));
                } else {
                    let w = word_start[o] + (b / 64) as usize;
                    for t in 0..(c as usize).min(LEVELS) {
                        bits[(i * LEVELS + t) * words + w] |= 1u64 << (b % 64);
                    }
                    item.levels = item.levels.max((c as usize).min(LEVELS));
                    if c as usize > LEVELS {
                        item.multi
                            .push(((word_start[o] * 64) as u32 + b, o as u8, c));
                    }
                }
            }
        }
        item.multi.sort_unstable();
        items.push(item);
    }
    drop(per_item);

    let lengths = rank_lengths(&mut items);

    // 3. Rows in parallel.
    let mut m = CondensedMatrix::filled(n, 1.0);
    split_rows(n, m.as_mut_slice())
        .into_par_iter()
        .for_each_init(
            || {
                (
                    vec![[0u32; MAX_ORDER]; n],
                    Vec::<usize>::new(),
                    vec![0f64; lengths.len()],
                )
            },
            |(acc, touched, bp), (i, row)| {
                let it = &items[i];
                // Rare n-grams through the inverted index (later questions only).
                for &(f, o, c) in &it.rare {
                    let post = &postings[o as usize][f as usize];
                    let start = post.partition_point(|&(j, _)| j as usize <= i);
                    for &(j, cj) in &post[start..] {
                        let a = &mut acc[j as usize];
                        if *a == [0; MAX_ORDER] {
                            touched.push(j as usize);
                        }
                        a[o as usize] += c.min(cj);
                    }
                }
                // Per-row tables: 0.25·ln p_n for every numerator, bp for every distinct
                // reference length.
                let den: [u32; MAX_ORDER] = std::array::from_fn(|o| denominator(it.len, o + 1));
                let tables: [Vec<f64>; MAX_ORDER] =
                    std::array::from_fn(|o| (0..=den[o]).map(|k| log_term(k, den[o])).collect());
                for (b, &r) in bp.iter_mut().zip(&lengths) {
                    *b = brevity_penalty(it.len, r);
                }
                let pairs = Pairs {
                    items: &items,
                    bits: &bits,
                    words,
                    word_start: &word_start,
                };
                pairs.fill_row(i, row, acc, bp, &tables);
                for &j in touched.iter() {
                    acc[j] = [0; MAX_ORDER];
                }
                touched.clear();
            },
        );
    m
}

/// Per-question counts of step 1 of [`bleu_distances_tuned`].
type NgramCounts = (
    Vec<usize>,
    [Vec<u32>; MAX_ORDER],
    Vec<[Vec<(u32, u32)>; MAX_ORDER]>,
);

/// Step 1 of [`bleu_distances_tuned`]: tokens -> ids, n-grams -> feature ids (one id space
/// per order). Returns each question's token count, each feature's document frequency, and
/// per question and order its sorted (feature, count) list.
fn ngram_counts(questions: &[String]) -> NgramCounts {
    let n = questions.len();
    // 1. Tokens -> ids; n-grams -> feature ids, one id space per order.
    let mut vocab: HashMap<&str, u32> = HashMap::new();
    let tokens: Vec<Vec<u32>> = questions
        .iter()
        .map(|q| {
            py_split(q)
                .into_iter()
                .map(|t| {
                    let next = vocab.len() as u32;
                    *vocab.entry(t).or_insert(next)
                })
                .collect()
        })
        .collect();
    let mut feat_ids: [HashMap<&[u32], u32>; MAX_ORDER] = Default::default();
    let mut df: [Vec<u32>; MAX_ORDER] = Default::default();
    // Per question and order: sorted (feature, count).
    let mut per_item: Vec<[Vec<(u32, u32)>; MAX_ORDER]> = Vec::with_capacity(n);
    for toks in &tokens {
        let mut orders: [Vec<(u32, u32)>; MAX_ORDER] = Default::default();
        for o in 0..MAX_ORDER {
            if toks.len() <= o {
                continue;
            }
            let mut ids: Vec<u32> = toks
                .windows(o + 1)
                .map(|g| {
                    let next = feat_ids[o].len() as u32;
                    *feat_ids[o].entry(g).or_insert(next)
                })
                .collect();
            ids.sort_unstable();
            let list = &mut orders[o];
            for id in ids {
                match list.last_mut() {
                    Some((f, c)) if *f == id => *c += 1,
                    _ => list.push((id, 1)),
                }
            }
            let d = &mut df[o];
            d.resize(feat_ids[o].len(), 0);
            for &(f, _) in list.iter() {
                d[f as usize] += 1;
            }
        }
        per_item.push(orders);
    }
    (tokens.iter().map(Vec::len).collect(), df, per_item)
}

/// Gives each item the rank of its length among the distinct lengths (returned sorted), so
/// that a row computes one brevity penalty per distinct length.
fn rank_lengths(items: &mut [Item]) -> Vec<usize> {
    let mut lengths: Vec<usize> = items.iter().map(|it| it.len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    for it in items.iter_mut() {
        it.len_rank = lengths
            .binary_search(&it.len)
            .expect("every length is listed");
    }
    lengths
}

/// What the pair loop of one row reads.
struct Pairs<'a> {
    items: &'a [Item],
    bits: &'a [u64],
    words: usize,
    word_start: &'a [usize; MAX_ORDER + 1],
}

impl Pairs<'_> {
    /// Fills row `i` (`d[i][j]`, `j > i`) from the rare-n-gram numerators in `acc`.
    fn fill_row(
        &self,
        i: usize,
        row: &mut [f64],
        acc: &[[u32; MAX_ORDER]],
        bp: &[f64],
        tables: &[Vec<f64>; MAX_ORDER],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("popcnt") {
                // SAFETY: the CPU supports popcnt (checked just above).
                unsafe { self.fill_row_popcnt(i, row, acc, bp, tables) };
                return;
            }
        }
        self.fill_row_body(i, row, acc, bp, tables);
    }

    /// [`Self::fill_row_body`] compiled with the popcnt instruction.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn fill_row_popcnt(
        &self,
        i: usize,
        row: &mut [f64],
        acc: &[[u32; MAX_ORDER]],
        bp: &[f64],
        tables: &[Vec<f64>; MAX_ORDER],
    ) {
        self.fill_row_body(i, row, acc, bp, tables);
    }

    #[inline(always)]
    fn fill_row_body(
        &self,
        i: usize,
        row: &mut [f64],
        acc: &[[u32; MAX_ORDER]],
        bp: &[f64],
        tables: &[Vec<f64>; MAX_ORDER],
    ) {
        let (items, bits, words, word_start) = (self.items, self.bits, self.words, self.word_start);
        let it = &items[i];
        let stride = LEVELS * words;
        let bi = &bits[i * stride..(i + 1) * stride];
        for (k, d) in row.iter_mut().enumerate() {
            let j = i + 1 + k;
            let mut num = acc[j];
            let jt = &items[j];
            let bj = &bits[j * stride..(j + 1) * stride];
            for t in 0..it.levels.min(jt.levels) {
                let (li, lj) = (
                    &bi[t * words..(t + 1) * words],
                    &bj[t * words..(t + 1) * words],
                );
                for o in 0..MAX_ORDER {
                    let mut s = 0u32;
                    for w in word_start[o]..word_start[o + 1] {
                        s += (li[w] & lj[w]).count_ones();
                    }
                    num[o] += s;
                }
            }
            if !it.multi.is_empty() && !jt.multi.is_empty() {
                add_multi(&it.multi, &jt.multi, &mut num);
            }
            if num[0] == 0 {
                continue; // BLEU 0, distance stays 1
            }
            let terms = [
                tables[0][num[0] as usize],
                tables[1][num[1] as usize],
                tables[2][num[2] as usize],
                tables[3][num[3] as usize],
            ];
            *d = 1.0 - bp[jt.len_rank] * fsum4(terms).exp();
        }
    }
}

/// Adds `min(a, b) − LEVELS` for frequent n-grams that both questions hold more than
/// `LEVELS` times (the bit levels count the first `LEVELS`).
fn add_multi(a: &[(u32, u8, u32)], b: &[(u32, u8, u32)], num: &mut [u32; MAX_ORDER]) {
    let (mut x, mut y) = (0, 0);
    while x < a.len() && y < b.len() {
        match a[x].0.cmp(&b[y].0) {
            std::cmp::Ordering::Less => x += 1,
            std::cmp::Ordering::Greater => y += 1,
            std::cmp::Ordering::Equal => {
                num[a[x].1 as usize] += a[x].2.min(b[y].2) - LEVELS as u32;
                x += 1;
                y += 1;
            }
        }
    }
}

/// [`fsum`] of four values: the naive sum with its exact error terms, accepted when the
/// exact total provably rounds to it; otherwise the full [`fsum`].
#[inline]
pub(crate) fn fsum4(t: [f64; 4]) -> f64 {
    let (s1, e1) = two_sum(t[0], t[1]);
    let (s2, e2) = two_sum(s1, t[2]);
    let (s3, e3) = two_sum(s2, t[3]);
    // Exact total = s3 + e1 + e2 + e3. E approximates e1 + e2 + e3 within `delta`.
    let e = (e1 + e2) + e3;
    let delta = 4.0 * f64::EPSILON * (e1.abs() + e2.abs() + e3.abs());
    let (r, e4) = two_sum(s3, e);
    // Exact total = r + e4 + (error of E), |error of E| <= delta.
    if r.is_finite() && r != 0.0 {
        let half_gap = if e4 >= 0.0 {
            (next_toward_pos(r) - r) / 2.0
        } else {
            (r - next_toward_neg(r)) / 2.0
        };
        if e4.abs() + delta < half_gap {
            return r;
        }
    }
    fsum(&t)
}

/// The next double above a finite non-zero `x`.
#[inline]
fn next_toward_pos(x: f64) -> f64 {
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// The next double below a finite non-zero `x`.
#[inline]
fn next_toward_neg(x: f64) -> f64 {
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b - 1 } else { b + 1 })
}

#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bleu::sentence_bleu_str;

    #[test]
    fn condensed_layout_matches_scipy() {
        // scipy.spatial.distance.squareform order for n = 4: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3).
        let n = 4;
        let order: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect();
        for (k, &(i, j)) in order.iter().enumerate() {
            assert_eq!(condensed_index(n, i, j), k);
            assert_eq!(condensed_index(n, j, i), k);
        }
    }

    #[test]
    fn fast_path_equals_direct_bleu_bitwise() {
        // Small batch with repeats, empties, one-word items and heavy repeated n-grams so
        // that both the bitset and the postings paths are exercised (threshold is 8).
        let mut qs: Vec<String> = vec![
            "".into(),
            "x".into(),
            "x".into(),
            "the the the the the".into(),
            "a b".into(),
        ];
        let words = [
            "the", "of", "a", "is", "what", "x", "y", "value", "sum", "$2$", "find",
        ];
        let mut state = 12345u64;
        for _ in 0..60 {
            let mut q = Vec::new();
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (state >> 33) % 25;
            for _ in 0..len {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                q.push(words[((state >> 33) % words.len() as u64) as usize]);
            }
            qs.push(q.join(" "));
        }
        let fast = bleu_distances(&qs);
        let simple = bleu_distances_simple(&qs);
        for i in 0..qs.len() {
            for j in i + 1..qs.len() {
                let want = 1.0 - sentence_bleu_str(&qs[j], &qs[i]);
                assert_eq!(
                    fast.get(i, j).to_bits(),
                    want.to_bits(),
                    "{i},{j}: {:?} / {:?}",
                    qs[i],
                    qs[j]
                );
                assert_eq!(simple.get(i, j).to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn fsum4_matches_fsum() {
        let cases = [
            [1e16, 1.0, -1e16, 0.5],
            [-0.1, -0.2, -0.3, -0.4],
            [1.0, 1e-16, 1e-16, 0.0],
            [0.0; 4],
        ];
        for c in cases {
            assert_eq!(fsum4(c).to_bits(), fsum(&c).to_bits());
        }
        // BLEU-like terms: 0.25 ln(k / d), including near-ties, bitwise.
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for _ in 0..200_000 {
            let t: [f64; 4] = std::array::from_fn(|_| {
                let d = next() % 300 + 1;
                log_term(next() % (d + 1), d)
            });
            assert_eq!(fsum4(t).to_bits(), fsum(&t).to_bits(), "{t:?}");
        }
        // Random magnitudes and signs, including power-of-two results.
        for _ in 0..200_000 {
            let t: [f64; 4] = std::array::from_fn(|_| {
                let m =
                    (next() as f64 / u32::MAX as f64 - 0.5) * 2f64.powi((next() % 120) as i32 - 60);
                if next() % 5 == 0 {
                    0.25
                } else {
                    m
                }
            });
            assert_eq!(fsum4(t).to_bits(), fsum(&t).to_bits(), "{t:?}");
        }
    }

    #[test]
    fn dense_threshold_does_not_change_values() {
        let qs: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    "the sum of {} and the {} is the value of x x x",
                    i % 7,
                    i % 3
                )
            })
            .collect();
        let a = bleu_distances_tuned(&qs, 1);
        let b = bleu_distances_tuned(&qs, 1000);
        assert_eq!(a, b);
    }
}
