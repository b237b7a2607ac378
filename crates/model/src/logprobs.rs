//! Per-token log-probabilities of given tokens, computed in chunks of rows so the
//! vocabulary is never materialised as B×T×V at once.
//!
//! [`token_logprobs`] is differentiable (what GRPO uses); [`score`] is the no-graph batch
//! version behind `rzero score`: the log-prob of completion token i is
//! `log_softmax(logits at position len(prompt) + i - 1)[token]`.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};
use crate::transformer::Model;

/// log-softmax at `targets` and the entropy for logits rows [R,V] (f32).
/// Returns (logp [R] differentiable, entropy [R] detached).
fn rows_logprobs(logits: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    // log_softmax(x)[t] = x[t] - max - log(sum(exp(x - max))), from differentiable ops.
    let m = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?; // [R,1]
    let picked = shifted.gather(&targets.unsqueeze(1)?, 1)?; // [R,1]
    let logp = (picked - &lse)?.squeeze(1)?;
    // Entropy on detached values: -sum p * log p.
    let lp = shifted.detach().broadcast_sub(&lse.detach())?;
    let ent = (lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?;
    Ok((logp, ent))
}

/// Log-probabilities of `targets` [B,T] (u32) under the logits `hidden · lm_headᵀ` for
/// `hidden` [B,T,H], `chunk_rows` rows of the flattened B·T at a time. Returns
/// (logp [B,T] f32, differentiable; entropy [B,T] f32, detached).
pub fn token_logprobs(
    model: &Model,
    hidden: &Tensor,
    targets: &Tensor,
    chunk_rows: usize,
) -> Result<(Tensor, Tensor)> {
    let (b, t, h) = hidden
        .dims3()
        .map_err(|_| Error::Invalid(format!("hidden must be [B,T,H], got {:?}", hidden.dims())))?;
    if targets.dims() != [b, t] {
        return Err(Error::Invalid(format!(
            "targets must be [{b},{t}], got {:?}",
            targets.dims()
        )));
    }
    let v = model.config().vocab_size as u32;
    let tg = targets.to_dtype(DType::U32)?.flatten_all()?;
    let tg_host = tg.to_vec1::<u32>()?;
    if let Some(&bad) = tg_host.iter().find(|&&x| x >= v) {
        return Err(Error::Invalid(format!(
            "target id {bad} out of range (vocab_size {v})"
        )));
    }
    let rows = b * t;
    let hidden = hidden.reshape((rows, h))?;
    let chunk = chunk_rows.max(1);
    let mut lps = Vec::new();
    let mut ents = Vec::new();
    // bf16 products on AMX: the head packed once for every chunk (ops/head.rs).
    let packed = if model.matmul_precision() == crate::ops::MatmulPrecision::Bf16
        && model.fused(&hidden)
        && rows > chunk
    {
        crate::ops::PackedHead::new(model.lm_head())?
    } else {
        None
    };
    let mut start = 0;
    while start < rows {
        let n = chunk.min(rows - start);
        let x = hidden.narrow(0, start, n)?;
        let logits = match &packed {
            Some(p) => crate::ops::head_linear(&x, model.lm_head(), p, model.head_sink())?,
            None => model.logits(&x)?,
        };
        let (lp, ent) = if model.fused(&logits) {
            let le = crate::ops::logprobs_entropy(&logits, &tg_host[start..start + n])?;
            (
                le.narrow(1, 0, 1)?.squeeze(1)?,
                le.narrow(1, 1, 1)?.squeeze(1)?,
            )
        } else {
            rows_logprobs(&logits, &tg.narrow(0, start, n)?)?
        };
        lps.push(lp);
        ents.push(ent);
        start += n;
    }
    if lps.is_empty() {
        let z = Tensor::zeros((b, t), DType::F32, model.device())?;
        return Ok((z.clone(), z));
    }
    let lp = Tensor::cat(&lps, 0)?.reshape((b, t))?;
    let ent = Tensor::cat(&ents, 0)?.reshape((b, t))?.detach();
    Ok((lp, ent))
}

/// Log-probabilities of each completion given its prompt, for `items` of
/// (prompt ids, completion ids); batches of `batch_size` left-padded sequences, no graph.
/// An empty completion gives an empty vector; an empty prompt is an error.
pub fn score(
    model: &Model,
    items: &[(Vec<u32>, Vec<u32>)],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let cfg = model.config();
    let max = cfg.max_position_embeddings;
    for (i, (p, c)) in items.iter().enumerate() {
        if p.is_empty() && !c.is_empty() {
            return Err(Error::Invalid(format!("item {i}: the prompt is empty")));
        }
        if p.len() + c.len() > max {
            return Err(Error::TooLong {
                len: p.len() + c.len(),
                max,
            });
        }
    }
    // Longest first, so batches hold similar lengths; results go back in input order.
    let mut order: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].1.is_empty())
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].0.len() + items[i].1.len()));
    let mut out = vec![Vec::new(); items.len()];
    let pad = cfg
        .pad_token_id
        .filter(|&p| (p as usize) < cfg.vocab_size)
        .unwrap_or(0);
    let dev = model.device();
    for batch in order.chunks(batch_size.max(1)) {
        let t = batch
            .iter()
            .map(|&i| items[i].0.len() + items[i].1.len())
            .max()
            .unwrap_or(0);
        let b = batch.len();
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut rows = Vec::new(); // hidden rows predicting completion tokens
        let mut targets = Vec::new();
        for (bi, &i) in batch.iter().enumerate() {
            let (p, c) = &items[i];
            let l = p.len() + c.len();
            let padn = t - l;
            ids.extend(std::iter::repeat_n(pad, padn));
            ids.extend_from_slice(p);
            ids.extend_from_slice(c);
            mask.extend(std::iter::repeat_n(0u32, padn));
            mask.extend(std::iter::repeat_n(1u32, l));
            for (j, &tok) in c.iter().enumerate() {
                rows.push((bi * t + padn + p.len() + j - 1) as u32);
                targets.push(tok);
            }
        }
        let ids = Tensor::from_vec(ids, (b, t), dev)?;
        let mask = Tensor::from_vec(mask, (b, t), dev)?;
        let hidden = model.forward_hidden(&ids, Some(&mask))?.detach();
        let h = hidden.dim(2)?;
        let nrows = rows.len();
        let sel = hidden
            .reshape((b * t, h))?
            .index_select(&Tensor::from_vec(rows, nrows, dev)?, 0)?;
        let tg = Tensor::from_vec(targets, (1, nrows), dev)?;
        let (lp, _) = token_logprobs(model, &sel.unsqueeze(0)?, &tg, 256)?;
        let lp = lp.detach().flatten_all()?.to_vec1::<f32>()?;
        let mut k = 0;
        for &i in batch {
            let n = items[i].1.len();
            out[i] = lp[k..k + n].to_vec();
            k += n;
        }
    }
    Ok(out)
}
