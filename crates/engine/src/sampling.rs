//! Token sampling from one row of logits: greedy, temperature, top-k, top-p, min-p
//! (in vLLM's order), with a per-sequence ChaCha stream.
//!
//! Each sequence owns a [`SeqRng`] seeded from `(request seed, sample index)`, and every
//! non-greedy draw consumes exactly one 64-bit word of it, so the tokens of a sequence
//! depend only on its own logits and its own stream, never on the batch around it.
//! The inverse-CDF walk visits the kept tokens in increasing id order, which makes the
//! result independent of how the filters happened to order them.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::params::SamplingParams;

/// A sequence's random stream: ChaCha8 keyed by the request seed, stream = sample index.
#[derive(Debug, Clone)]
pub struct SeqRng(ChaCha8Rng);

impl SeqRng {
    /// The stream of sample `index` of a request seeded with `seed`.
    pub fn new(seed: u64, index: usize) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(index as u64);
        Self(r)
    }

    /// A uniform draw in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Index of the largest logit (lowest id among ties); `None` if the row is empty or NaN.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best = 0usize;
    let mut best_v = *logits.first()?;
    if best_v.is_nan() {
        return None;
    }
    for (i, &v) in logits.iter().enumerate().skip(1) {
        if v.is_nan() {
            return None;
        }
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    Some(best as u32)
}

/// `log_softmax(logits)[token]` in f64 accumulation.
pub fn raw_logprob(logits: &[f32], token: u32) -> f32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&l| ((l - m) as f64).exp()).sum();
    ((logits[token as usize] - m) as f64 - z.ln()) as f32
}

/// The filtered, unnormalised distribution: kept token ids (increasing) and their weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// Kept token ids, increasing.
    pub ids: Vec<u32>,
    /// `exp((logit - max) / temperature)` of each kept id.
    pub weights: Vec<f32>,
}

impl Filtered {
    /// Normalised probabilities of the kept ids.
    pub fn probs(&self) -> Vec<f64> {
        let z: f64 = self.weights.iter().map(|&w| w as f64).sum();
        self.weights.iter().map(|&w| w as f64 / z).collect()
    }
}

/// Applies temperature, top-k, top-p and min-p to `logits` (must be non-greedy params and a
/// row without NaN). Always keeps at least the most likely token.
pub fn filter(logits: &[f32], p: &SamplingParams) -> Filtered {
    let v = logits.len();
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let inv_t = 1.0 / p.temperature.max(1e-6);
    // Candidate ids after top-k, in arbitrary order; `None` = the whole vocabulary.
    let mut cand: Option<Vec<u32>> = None;
    if p.top_k > 0 && p.top_k < v {
        let mut idx: Vec<u32> = (0..v as u32).collect();
        let key = |a: &u32, b: &u32| {
            // Descending logit, then ascending id: a total, deterministic order.
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        idx.select_nth_unstable_by(p.top_k - 1, key);
        idx.truncate(p.top_k);
        cand = Some(idx);
    }
    let weight = |i: u32| ((logits[i as usize] - m) * inv_t).exp();
    let (mut ids, mut weights): (Vec<u32>, Vec<f32>) = match cand {
        Some(c) => {
            let w = c.iter().map(|&i| weight(i)).collect();
            (c, w)
        }
        None => {
            let mut w: Vec<f32> = logits.iter().map(|&l| (l - m) * inv_t).collect();
            model::simd::exp_inplace(&mut w);
            ((0..v as u32).collect(), w)
        }
    };
    if p.top_p < 1.0 {
        // The nucleus is a prefix of the descending order; find a threshold whose
        // super-level set already holds `target`, then sort only that set. One pass files
        // each weight (all in [0, 1], the top one exactly 1) under its binary exponent:
        // bucket b holds the weights in [2^-b, 2^-(b-1)); the last bucket, the tiny ones.
        const LAST: usize = 64;
        let bucket = |w: f32| -> usize {
            let e = ((w.to_bits() >> 23) & 0xFF) as usize;
            if e == 0 {
                LAST
            } else {
                127usize.saturating_sub(e).min(LAST)
            }
        };
        let mut mass = [0f64; LAST + 1];
        for &w in &weights {
            mass[bucket(w)] += w as f64;
        }
        let total: f64 = mass.iter().sum();
        let target = p.top_p as f64 * total;
        let mut s = 0f64;
        let mut last = LAST;
        for (b, &m) in mass.iter().enumerate() {
            s += m;
            if s >= target {
                last = b;
                break;
            }
        }
        let mut pre: Vec<usize> = (0..weights.len())
            .filter(|&k| bucket(weights[k]) <= last)
            .collect();
        pre.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(ids[a].cmp(&ids[b])));
        let mut cum = 0f64;
        let mut keep = Vec::new();
        for &k in &pre {
            keep.push(k);
            cum += weights[k] as f64;
            if cum >= target {
                break;
            }
        }
        ids = keep.iter().map(|&k| ids[k]).collect();
        weights = keep.iter().map(|&k| weights[k]).collect();
    }
    if p.min_p > 0.0 {
        // p_i / p_max is unchanged by renormalisation, and the top weight is 1.
        let wmax = weights.iter().copied().fold(0f32, f32::max);
        let thr = p.min_p * wmax;
        let mut k = 0;
        for j in 0..ids.len() {
            if weights[j] >= thr {
                ids[k] = ids[j];
                weights[k] = weights[j];
                k += 1;
            }
        }
        ids.truncate(k);
        weights.truncate(k);
    }
    // Canonical order for the inverse-CDF walk.
    if ids.windows(2).any(|w| w[0] > w[1]) {
        let mut pairs: Vec<(u32, f32)> = ids.into_iter().zip(weights).collect();
        pairs.sort_unstable_by_key(|&(i, _)| i);
        (ids, weights) = pairs.into_iter().unzip();
    }
    Filtered { ids, weights }
}

/// Draws one token from `logits` with `params` and the sequence's stream. Returns `None`
/// when the row contains NaN.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut SeqRng) -> Option<u32> {
    let best = argmax(logits)?;
    if params.is_greedy() {
        return Some(best);
    }
    let f = filter(logits, params);
    let total: f64 = f.weights.iter().map(|&w| w as f64).sum();
    let u = rng.uniform() * total;
    let mut cum = 0f64;
    for (&id, &w) in f.ids.iter().zip(&f.weights) {
        cum += w as f64;
        if u < cum {
            return Some(id);
        }
    }
    // Rounding at the very top: the last kept token with positive weight.
    f.ids
        .iter()
        .zip(&f.weights)
        .rev()
        .find(|(_, &w)| w > 0.0)
        .map(|(&i, _)| i)
        .or(Some(best))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_k,
            top_p,
            min_p,
            ..SamplingParams::default()
        }
    }

    /// softmax(logits / t) in f64.
    fn softmax(logits: &[f32], t: f64) -> Vec<f64> {
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = logits.iter().map(|&l| ((l as f64 - m) / t).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|x| x / z).collect()
    }

    /// Draws `n` tokens and checks the empirical frequencies against `expected` (a full
    /// distribution over the vocabulary): zero-probability ids never appear, the others
    /// lie within 4.5 standard errors.
    fn check_freqs(logits: &[f32], p: &SamplingParams, expected: &[f64], n: usize) {
        let mut rng = SeqRng::new(1234, 7);
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..n {
            counts[sample(logits, p, &mut rng).unwrap() as usize] += 1;
        }
        for (i, (&c, &e)) in counts.iter().zip(expected).enumerate() {
            let f = c as f64 / n as f64;
            if e == 0.0 {
                assert_eq!(c, 0, "token {i} is filtered out but was drawn {c} times");
            } else {
                let se = (e * (1.0 - e) / n as f64).sqrt();
                assert!(
                    (f - e).abs() <= 4.5 * se + 1e-9,
                    "token {i}: freq {f:.4} vs expected {e:.4} (se {se:.4}); counts {counts:?}"
                );
            }
        }
    }

    const LOGITS: [f32; 8] = [1.0, 3.0, 0.5, 2.5, -1.0, 2.0, 0.0, 3.0];

    #[test]
    fn greedy_is_argmax_lowest_id_on_ties() {
        let mut rng = SeqRng::new(0, 0);
        // ids 1 and 7 tie at 3.0: the lowest wins, like torch.argmax.
        assert_eq!(
            sample(&LOGITS, &params(0.0, 0, 1.0, 0.0), &mut rng),
            Some(1)
        );
        assert_eq!(
            sample(&LOGITS, &params(0.7, 1, 1.0, 0.0), &mut rng),
            Some(1)
        );
        assert_eq!(argmax(&[0.0, f32::NAN]), None);
    }

    #[test]
    fn temperature_only_matches_softmax() {
        let p = params(0.8, 0, 1.0, 0.0);
        check_freqs(&LOGITS, &p, &softmax(&LOGITS, 0.8), 10_000);
    }

    #[test]
    fn top_k_keeps_k_most_likely() {
        // Top 3 by logit: ids 1, 7 (3.0) and 3 (2.5).
        let p = params(1.0, 3, 1.0, 0.0);
        let mut e = vec![0.0; 8];
        let sub = softmax(&[3.0, 2.5, 3.0], 1.0);
        e[1] = sub[0];
        e[3] = sub[1];
        e[7] = sub[2];
        check_freqs(&LOGITS, &p, &e, 10_000);
    }

    #[test]
    fn top_p_keeps_smallest_nucleus() {
        let probs = softmax(&LOGITS, 1.0);
        // Descending: 1, 7 (equal), 3, 5, 0, 2, 6, 4. Compute the nucleus for p = 0.8 by hand.
        let order = [1usize, 7, 3, 5, 0, 2, 6, 4];
        let mut cum = 0.0;
        let mut kept = vec![];
        for &i in &order {
            kept.push(i);
            cum += probs[i];
            if cum >= 0.8 {
                break;
            }
        }
        assert_eq!(
            kept,
            vec![1, 7, 3, 5],
            "hand-made case should keep 4 tokens"
        );
        let z: f64 = kept.iter().map(|&i| probs[i]).sum();
        let mut e = vec![0.0; 8];
        for &i in &kept {
            e[i] = probs[i] / z;
        }
        check_freqs(&LOGITS, &params(1.0, 0, 0.8, 0.0), &e, 10_000);
    }

    #[test]
    fn min_p_drops_tokens_below_fraction_of_max() {
        // p_i / p_max = exp(l_i - 3): keep those >= 0.3, i.e. l_i >= 3 + ln 0.3 = 1.796.
        let probs = softmax(&LOGITS, 1.0);
        let kept = [1usize, 3, 5, 7];
        let z: f64 = kept.iter().map(|&i| probs[i]).sum();
        let mut e = vec![0.0; 8];
        for &i in &kept {
            e[i] = probs[i] / z;
        }
        check_freqs(&LOGITS, &params(1.0, 0, 1.0, 0.3), &e, 10_000);
    }

    #[test]
    fn filters_compose_in_vllm_order() {
        // temperature 2 -> top-k 5 -> top-p 0.6 -> min-p 0.8.
        let t = 2.0;
        let top5 = [1usize, 7, 3, 5, 0];
        let sub: Vec<f32> = top5.iter().map(|&i| LOGITS[i]).collect();
        let sp = softmax(&sub, t);
        // Nucleus over the renormalised top-5 (already in descending order).
        let mut cum = 0.0;
        let mut nucleus = vec![];
        for (k, &i) in top5.iter().enumerate() {
            nucleus.push((i, sp[k]));
            cum += sp[k];
            if cum >= 0.6 {
                break;
            }
        }
        let pmax = nucleus.iter().map(|x| x.1).fold(0.0, f64::max);
        let kept: Vec<(usize, f64)> = nucleus.into_iter().filter(|x| x.1 >= 0.8 * pmax).collect();
        assert!(kept.len() >= 2, "the case should keep several tokens");
        let z: f64 = kept.iter().map(|x| x.1).sum();
        let mut e = vec![0.0; 8];
        for (i, q) in kept {
            e[i] = q / z;
        }
        check_freqs(&LOGITS, &params(t as f32, 5, 0.6, 0.8), &e, 10_000);
    }

    #[test]
    fn top_p_on_large_vocab_matches_full_sort() {
        // A long-tailed 5000-token row: the threshold search must give the sorted nucleus.
        let logits: Vec<f32> = (0..5000u32)
            .map(|i| ((i.wrapping_mul(2654435761) % 1000) as f32) / 100.0 - 5.0)
            .collect();
        for &tp in &[0.05f32, 0.5, 0.9, 0.99] {
            let p = params(1.3, 0, tp, 0.0);
            let f = filter(&logits, &p);
            let probs = softmax(&logits, 1.3);
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
            let mut cum = 0.0;
            let mut kept = vec![];
            for &i in &order {
                kept.push(i as u32);
                cum += probs[i];
                if cum >= tp as f64 {
                    break;
                }
            }
            kept.sort();
            // Allow a one-token difference from f32 vs f64 rounding at the boundary.
            let diff = (f.ids.len() as i64 - kept.len() as i64).abs();
            assert!(diff <= 1, "top_p {tp}: {} vs {}", f.ids.len(), kept.len());
            let common = f
                .ids
                .iter()
                .filter(|i| kept.binary_search(i).is_ok())
                .count();
            assert!(common + 1 >= kept.len().max(f.ids.len()), "top_p {tp}");
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let p = params(1.0, 0, 1.0, 0.0);
        let draw = |seed, idx| {
            let mut r = SeqRng::new(seed, idx);
            (0..64)
                .map(|_| sample(&LOGITS, &p, &mut r).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(5, 0), draw(5, 0));
        assert_ne!(draw(5, 0), draw(5, 1));
        assert_ne!(draw(5, 0), draw(6, 0));
    }

    #[test]
    fn raw_logprob_is_log_softmax() {
        let probs = softmax(&LOGITS, 1.0);
        for i in 0..8u32 {
            let lp = raw_logprob(&LOGITS, i) as f64;
            assert!((lp - probs[i as usize].ln()).abs() < 1e-5);
        }
    }
}
