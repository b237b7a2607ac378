//! A minimal sampler over `Model::forward_hidden` without a KV cache, for this crate's
//! learning test only (`train` links no inference engine): each new token re-runs the whole
//! sequence. Real rollouts come from `engine::Sampler`.

use candle_core::Tensor;
use model::Model;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use train::Result;

/// Sampling settings of [`sample_naive`].
#[derive(Debug, Clone, PartialEq)]
pub struct SampleParams {
    /// Longest response.
    pub max_new_tokens: usize,
    /// Softmax temperature (0: greedy).
    pub temperature: f64,
    /// Nucleus threshold (1: off).
    pub top_p: f64,
    /// Generation stops after any of these (the stop token is kept in the response).
    pub eos: Vec<u32>,
}

/// Draws one token from `logits` (f32) with temperature and top-p.
pub fn sample_token(logits: &[f32], temperature: f64, top_p: f64, rng: &mut ChaCha8Rng) -> u32 {
    if temperature <= 0.0 {
        return logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |a, (i, &x)| {
                if x > a.1 {
                    (i, x)
                } else {
                    a
                }
            })
            .0 as u32;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (i, ((x as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    if top_p < 1.0 {
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (k, p) in probs.iter().enumerate() {
            acc += p.1 / total;
            if acc >= top_p {
                keep = k + 1;
                break;
            }
        }
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * total;
    for &(i, p) in &probs {
        if u < p {
            return i as u32;
        }
        u -= p;
    }
    probs.last().map_or(0, |p| p.0 as u32)
}

/// Samples `n` responses to `prompt`, all advanced together (no padding is needed: every
/// active sequence has the same length). Each response ends at its first EOS or at
/// `max_new_tokens`.
pub fn sample_naive(
    model: &Model,
    prompt: &[u32],
    n: usize,
    p: &SampleParams,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Vec<u32>>> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut active: Vec<usize> = (0..n).collect();
    let dev = model.device();
    let max_len = model.config().max_position_embeddings;
    for _ in 0..p.max_new_tokens {
        if active.is_empty() || prompt.len() + out[active[0]].len() >= max_len {
            break;
        }
        let t = prompt.len() + out[active[0]].len();
        let mut ids = Vec::with_capacity(active.len() * t);
        for &i in &active {
            ids.extend_from_slice(prompt);
            ids.extend_from_slice(&out[i]);
        }
        let ids = Tensor::from_vec(ids, (active.len(), t), dev)?;
        // [A,T,H] -> last position [A,H] -> logits [A,V].
        let h = model
            .forward_hidden(&ids, None)?
            .narrow(1, t - 1, 1)?
            .squeeze(1)?;
        let logits = model.logits(&h)?.detach();
        let logits = logits.to_dtype(candle_core::DType::F32)?;
        let rows = logits.to_vec2::<f32>()?;
        let mut still = Vec::with_capacity(active.len());
        for (row, &i) in rows.iter().zip(&active) {
            let tok = sample_token(row, p.temperature, p.top_p, rng);
            out[i].push(tok);
            if !p.eos.contains(&tok) {
                still.push(i);
            }
        }
        active = still;
    }
    Ok(out)
}

#[test]
fn greedy_top_p_and_frequencies() {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let logits = [0.0f32, 2.0, 1.0, -1.0];
    assert_eq!(sample_token(&logits, 0.0, 1.0, &mut rng), 1);
    // top-p 0.5 keeps only the argmax (its probability is 0.64).
    for _ in 0..50 {
        assert_eq!(sample_token(&logits, 1.0, 0.5, &mut rng), 1);
    }
    // Plain sampling follows softmax: p(1) = e²/(1+e²+e+e⁻¹) ≈ 0.64.
    let hits = (0..4000)
        .filter(|_| sample_token(&logits, 1.0, 1.0, &mut rng) == 1)
        .count();
    assert!((2400..2750).contains(&hits), "{hits}");
}
