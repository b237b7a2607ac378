//! Shared prompts ([`crate::OptimKnobs::shared_prompts`]): the sequences of a mini-batch that
//! share a prompt (the G responses of a group; every Challenger sample of a rollout) run as
//! one micro-batch of `P + n·R` rows ([`model::Model::forward_hidden_shared`]): the prompt's
//! forward once, each response attending to its keys and values, the gradients of all
//! responses flowing back into the prompt's rows.
//!
//! A shared micro-batch holds responses of one prompt while its rows stay within those of
//! `micro_batch_size` padded sequences (`P + n·R ≤ micro_batch_size·(P + R)`, so at least
//! `micro_batch_size` responses). The sequence weights of the loss are computed from the
//! mini-batch before it is split ([`crate::loss::sequence_weights`]), so the loss is the same
//! function; only the order of float sums changes.

use candle_core::Tensor;
use model::{DecoderInputs, Model, SharedInputs};

use crate::Result;

/// The rows of one micro-batch as the forward pass lays them out.
pub(super) enum Rows {
    /// `[B, P+R]` ids and mask (left-padded prompt | right-padded response), P the longest prompt.
    Padded { ids: Tensor, mask: Tensor, p: usize },
    /// One prompt and its responses as one stream.
    Shared(SharedInputs),
}

/// What every decoder layer of one micro-batch needs (activation recomputation runs the
/// layers one by one).
pub(super) enum LayerInputs {
    /// Padded sequences: the decoder inputs and the `[B, P+R]` ids.
    Padded(DecoderInputs, Tensor),
    /// The shared-prompt stream.
    Shared(SharedInputs),
}

impl LayerInputs {
    /// Rows of the residual stream.
    pub(super) fn rows(&self) -> usize {
        match self {
            LayerInputs::Padded(inp, _) => inp.b * inp.t,
            LayerInputs::Shared(s) => s.rows(),
        }
    }

    /// The token embeddings of the stream, [rows, H].
    pub(super) fn embed(&self, m: &Model) -> Result<Tensor> {
        Ok(match self {
            LayerInputs::Padded(_, ids) => m.embed(ids)?,
            LayerInputs::Shared(s) => m.embed(s.ids())?,
        })
    }

    /// Decoder layer `l` of `m` on the stream `x`.
    pub(super) fn layer(&self, m: &Model, l: usize, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            LayerInputs::Padded(inp, _) => m.layer_forward(l, x, inp)?,
            LayerInputs::Shared(s) => m.layer_forward_shared(l, x, s)?,
        })
    }
}

impl Rows {
    /// The layer inputs on `m` and, for each response token (row-major `[B, r]`), the stream
    /// row whose output predicts it.
    pub(super) fn layer_inputs(&self, m: &Model, r: usize) -> Result<(LayerInputs, Vec<usize>)> {
        Ok(match self {
            Rows::Padded { ids, mask, p } => {
                let inp = m.decoder_inputs(ids, Some(mask))?;
                let (b, t, p) = (inp.b, inp.t, *p);
                // Position P-1+j predicts response token j.
                let row_index = (0..b)
                    .flat_map(|i| (0..r).map(move |j| i * t + p - 1 + j))
                    .collect();
                (LayerInputs::Padded(inp, ids.clone()), row_index)
            }
            Rows::Shared(s) => (LayerInputs::Shared(s.clone()), s.next_token_rows()),
        })
    }
}

/// Splits items into shared micro-batches: by prompt (prompts in order of first appearance,
/// items in their order), each holding responses of one prompt while
/// `P + n·R_max ≤ micro_batch·(P + R_max)`. `resp_len` gives an item's response length.
pub(super) fn shared_micro_batches<'s, T>(
    items: &[&'s T],
    prompt: impl Fn(&T) -> &[u32],
    resp_len: impl Fn(&T) -> usize,
    micro_batch: usize,
) -> Vec<Vec<&'s T>> {
    let mb = micro_batch.max(1);
    // Items by prompt, prompts in order of first appearance.
    let mut by_prompt: Vec<Vec<&'s T>> = Vec::new();
    for &it in items {
        match by_prompt.iter_mut().find(|v| prompt(v[0]) == prompt(it)) {
            Some(v) => v.push(it),
            None => by_prompt.push(vec![it]),
        }
    }
    let mut out = Vec::new();
    for v in by_prompt {
        let p = prompt(v[0]).len();
        let mut cur: Vec<&'s T> = Vec::new();
        let mut rmax = 0usize;
        for it in v {
            let r = rmax.max(resp_len(it));
            if !cur.is_empty() && p + (cur.len() + 1) * r > mb * (p + r) {
                out.push(std::mem::take(&mut cur));
                rmax = 0;
            }
            rmax = rmax.max(resp_len(it));
            cur.push(it);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// The shared layout of one prompt's responses: the prompt, and `[n, R]` right-padded
/// response ids (which are also the targets) and their mask.
pub(super) struct SharedPack {
    pub(super) prompt: Vec<u32>,
    pub(super) n: usize,
    pub(super) r: usize,
    pub(super) ids: Vec<u32>,
    pub(super) mask: Vec<u32>,
}

impl SharedPack {
    pub(super) fn new(prompt: &[u32], resps: &[&[u32]], pad: u32) -> SharedPack {
        let n = resps.len();
        let r = resps.iter().map(|x| x.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(n * r);
        let mut mask = Vec::with_capacity(n * r);
        for x in resps {
            ids.extend_from_slice(x);
            ids.extend(std::iter::repeat_n(pad, r - x.len()));
            mask.extend(std::iter::repeat_n(1u32, x.len()));
            mask.extend(std::iter::repeat_n(0u32, r - x.len()));
        }
        SharedPack {
            prompt: prompt.to_vec(),
            n,
            r,
            ids,
            mask,
        }
    }

    /// The layer rows on `m` and the targets `[n, R]`.
    pub(super) fn rows(&self, m: &Model) -> Result<(Rows, Tensor)> {
        let dev = m.device();
        let prefix = Tensor::from_slice(&self.prompt, self.prompt.len(), dev)?;
        let ids = Tensor::from_slice(&self.ids, (self.n, self.r), dev)?;
        let mask = Tensor::from_slice(&self.mask, (self.n, self.r), dev)?;
        let inp = m.shared_inputs(&prefix, &ids, Some(&mask))?;
        Ok((Rows::Shared(inp), ids))
    }
}

/// Log-probs (and entropies) `[n, R]` of the responses of a shared stream under `m`
/// (with a graph when `m` has one).
pub(super) fn shared_logprobs(
    m: &Model,
    inp: &SharedInputs,
    targets: &Tensor,
    temperature: f64,
    chunk_rows: usize,
) -> Result<(Tensor, Tensor)> {
    let x = m.forward_hidden_shared(inp)?; // [P + n·R, H]
    let rows: Vec<u32> = inp.next_token_rows().iter().map(|&i| i as u32).collect();
    let rows = Tensor::from_vec(rows, inp.g * inp.r, m.device())?;
    let hd = x.dim(1)?;
    let mut h = x.index_select(&rows, 0)?.reshape((inp.g, inp.r, hd))?;
    if temperature != 1.0 {
        h = (h * (1.0 / temperature))?;
    }
    Ok(model::logprobs::token_logprobs(m, &h, targets, chunk_rows)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_group_by_prompt_within_the_row_budget() {
        // (prompt, response length)
        let a: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8];
        let b: &[u32] = &[9, 9];
        let items: Vec<(&[u32], usize)> =
            vec![(a, 4), (b, 3), (a, 4), (a, 2), (b, 3), (a, 4), (a, 4)];
        let refs: Vec<&(&[u32], usize)> = items.iter().collect();
        // micro-batch 2: P=8, R=4: 8 + n·4 <= 24 -> n <= 4.
        let mbs = shared_micro_batches(&refs, |x| x.0, |x| x.1, 2);
        let shape: Vec<Vec<usize>> = mbs
            .iter()
            .map(|v| v.iter().map(|x| x.1).collect())
            .collect();
        assert_eq!(shape, vec![vec![4, 4, 2, 4], vec![4], vec![3, 3]]);
        assert!(mbs[0].iter().chain(&mbs[1]).all(|x| x.0 == a));
        assert!(mbs[2].iter().all(|x| x.0 == b));
        // micro-batch 1: never more rows than one padded sequence -> one response each.
        let mbs = shared_micro_batches(&refs, |x| x.0, |x| x.1, 1);
        assert_eq!(mbs.len(), 7);
    }

    #[test]
    fn shared_pack_right_pads_responses() {
        let p = SharedPack::new(&[5, 6], &[&[1, 2, 3], &[4]], 0);
        assert_eq!((p.n, p.r), (2, 3));
        assert_eq!(p.ids, vec![1, 2, 3, 4, 0, 0]);
        assert_eq!(p.mask, vec![1, 1, 1, 1, 0, 0]);
    }
}
