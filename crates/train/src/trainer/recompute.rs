//! Activation recomputation ([`crate::OptimKnobs::recompute`]): a no-graph forward that keeps
//! each decoder layer's input, and a backward that recomputes one layer at a time.

use candle_core::{DType, Tensor, Var};
use model::Model;

use super::graph::Part;
use super::shared::{LayerInputs, Rows};
use super::{accumulate, with_f32, Trainer};
use crate::Result;

/// What the no-graph forward of activation recomputation keeps for backward.
pub(super) struct Saved {
    inp: LayerInputs,
    /// The input of each decoder layer, [rows, H].
    layer_inputs: Vec<Tensor>,
    /// The residual stream after the last layer at the rows predicting response tokens,
    /// [B*R, H] (before the final norm).
    resp_rows: Tensor,
    /// The row of each of those in the [B*T] stream.
    row_index: Vec<usize>,
}

/// The final norm of residual-stream rows [N,H], divided by the sampling temperature.
fn head_hidden(m: &Model, rows: &Tensor, temperature: f64) -> Result<Tensor> {
    let h = m.final_norm(rows)?;
    Ok(if temperature != 1.0 {
        (h * (1.0 / temperature))?
    } else {
        h
    })
}

impl Trainer {
    /// The no-graph forward of activation recomputation on the policy (the same values as
    /// the graph model): keeps each decoder layer's input and the final stream's response
    /// rows. Returns them with the response log-probs and entropies [B,R].
    pub(super) fn forward_saving(
        &self,
        rows: &Rows,
        targets: &Tensor,
        r: usize,
    ) -> Result<(Saved, Tensor, Tensor)> {
        let m = &self.policy;
        // The row of each response token's prediction in the stream.
        let (inp, row_index) = rows.layer_inputs(m, r)?;
        let b = row_index.len() / r;
        let mut x = inp.embed(m)?; // [rows, H]
        let mut layer_inputs = Vec::with_capacity(m.num_layers());
        for l in 0..m.num_layers() {
            let y = inp.layer(m, l, &x)?;
            layer_inputs.push(x);
            x = y;
        }
        let idx: Vec<u32> = row_index.iter().map(|&i| i as u32).collect();
        let resp_rows = x.index_select(&Tensor::from_vec(idx, b * r, &self.device)?, 0)?;
        let h = head_hidden(m, &resp_rows, self.cfg.temperature)?;
        let hd = h.dim(1)?;
        let (logp, ent) = model::logprobs::token_logprobs(
            m,
            &h.reshape((b, r, hd))?,
            targets,
            self.cfg.logprob_chunk_rows,
        )?;
        let saved = Saved {
            inp,
            layer_inputs,
            resp_rows,
            row_index,
        };
        Ok((saved, logp.detach(), ent))
    }

    /// Backward of activation recomputation: the head and log-softmax per chunk of response
    /// rows, then each decoder layer in reverse, then (full fine-tuning) the embedding.
    /// `coef` [B*R] is `d loss / d logp`.
    pub(super) fn backward_recompute(
        &mut self,
        saved: Saved,
        coef: &[f32],
        targets: &Tensor,
    ) -> Result<()> {
        let dev = self.device.clone();
        let Saved {
            inp,
            mut layer_inputs,
            resp_rows,
            row_index,
        } = saved;
        let (rows, h) = resp_rows.dims2()?;
        let bt = inp.rows();
        let tg = targets.flatten_all()?;
        let coef_t = Tensor::from_slice(coef, rows, &dev)?;
        // 1. Head: final norm, logits and log-softmax of one chunk of rows at a time.
        let mut gx = vec![0f32; bt * h];
        let chunk = self.cfg.logprob_chunk_rows.max(1);
        let head = self.graph_model(Part::Outer)?;
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            if coef[start..start + n].iter().any(|&c| c != 0.0) {
                let xv = Var::from_tensor(&resp_rows.narrow(0, start, n)?)?;
                let hh = head_hidden(&head, xv.as_tensor(), self.cfg.temperature)?;
                let (lp, _) = model::logprobs::token_logprobs(
                    &head,
                    &hh.unsqueeze(0)?,
                    &tg.narrow(0, start, n)?.unsqueeze(0)?,
                    n,
                )?;
                let sur = (lp.squeeze(0)? * coef_t.narrow(0, start, n)?)?.sum_all()?;
                let grads = self.backward(&sur)?;
                accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
                if let Some(g) = grads.get(xv.as_tensor()) {
                    with_f32(g, |g| {
                        for (k, row) in g.chunks_exact(h).enumerate() {
                            let dst = row_index[start + k] * h;
                            for (d, s) in gx[dst..dst + h].iter_mut().zip(row) {
                                *d += s;
                            }
                        }
                    })?;
                }
            }
            start += n;
        }
        drop(resp_rows);
        // 2. Decoder layers in reverse: recompute with a graph, differentiate Σ out·g.
        let mut g = Tensor::from_vec(gx, (bt, h), &dev)?;
        for l in (0..layer_inputs.len()).rev() {
            let x_in = layer_inputs.pop().expect("one saved input per layer");
            let xv = Var::from_tensor(&x_in)?;
            drop(x_in);
            let lm = self.graph_model(Part::Layer(l))?;
            let out = inp.layer(&lm, l, xv.as_tensor())?;
            let grads = self.backward(&(out * &g)?.sum_all()?)?;
            self.note_device_mem();
            accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
            g = match grads.get(xv.as_tensor()) {
                Some(t) => t.detach(),
                None => Tensor::zeros((bt, h), DType::F32, &dev)?,
            };
        }
        // 3. The embedding (trained in full fine-tuning only).
        if self.lora.is_none() {
            let m = self.graph_model(Part::Outer)?;
            let grads = self.backward(&(inp.embed(&m)? * &g)?.sum_all()?)?;
            accumulate(&self.layout, &self.vars, &mut self.grads, &grads)?;
        }
        Ok(())
    }
}
