//! [`GradSink`]: a flat f32 gradient buffer that the fused [`super::linear`] op's backward adds
//! weight gradients into directly, instead of handing them to candle.
//!
//! candle's backward gives every node's argument a gradient by `zeros_like(arg)` then
//! `sum + grad` (two fresh tensors and two passes), and a trainer then adds each weight's
//! gradient into its own buffer (a third pass). For a weight registered here ([`GradSink::new`])
//! while a buffer is lent ([`GradSink::lend`]), the op's backward computes `dW` and adds it into
//! the weight's region of the buffer (`dst += dW`), and returns no gradient for the weight:
//! candle's store never holds one.
//!
//! The result equals the candle path's `dst += (0 + dW)` bit for bit when the weight is used by
//! one product of the graph (`0 + dW` only turns `-0` into `+0`, and a buffer that starts at
//! `+0` never holds `-0`, so `dst + -0 = dst + +0`). A weight used several times per graph (the
//! tied embedding and LM head, the head applied per chunk of rows) is registered as *summed*
//! ([`GradSink::with_summed`]): its contributions are summed apart in the order candle's
//! backward sums them (the head chunks' `dW`, then the lookup's rows added in id order as
//! `index_add` does, [`embedding_sunk`]) and the sum is added into the buffer once, when it is
//! taken back: `dst += Σ`, as before, without candle's `zeros_like` and fresh sums of the
//! [vocab, hidden] matrix. Outside a lend (the buffer taken back), the ops fall back to
//! candle's path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use candle_core::{Tensor, TensorId};
use rayon::prelude::*;

/// Elements per parallel task of the add.
const CHUNK: usize = 1 << 15;

/// A shared handle (clones share the buffer) to a flat gradient buffer and the regions of
/// the weights that add into it. See the module docs.
#[derive(Clone, Default)]
pub struct GradSink(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// The region in the buffer of each registered weight, by tensor id.
    regions: HashMap<TensorId, Region>,
    /// The lent buffer (empty when none is lent).
    buf: Mutex<Vec<f32>>,
    /// Summed weights: their gradient so far in the current backward.
    pending: Mutex<HashMap<TensorId, Pending>>,
}

#[derive(Clone, Copy)]
struct Region {
    off: usize,
    len: usize,
    /// Used several times per graph: the contributions are summed apart (in candle's order)
    /// and added into the buffer once, by [`GradSink::take`].
    summed: bool,
}

/// A summed weight's gradient so far.
enum Pending {
    /// The whole gradient.
    Dense(Vec<f32>),
    /// Only rows (of `cols` values) have a gradient (an embedding lookup's), by row.
    Rows(usize, std::collections::BTreeMap<usize, Vec<f32>>),
}

impl std::fmt::Debug for GradSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradSink")
            .field("weights", &self.0.regions.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The buffer is plain floats: a panic elsewhere leaves nothing inconsistent in it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GradSink {
    /// A sink for `weights`: each tensor (a `Var`'s, by its id) with the offset of its region
    /// (its element count long) in the buffers that will be lent. Each must feed one product
    /// per graph for its gradient to equal candle's bit for bit.
    pub fn new<'a>(weights: impl IntoIterator<Item = (&'a Tensor, usize)>) -> GradSink {
        Self::with_summed(weights, [])
    }

    /// [`GradSink::new`] with `summed` weights too: weights used several times per graph (a
    /// tied embedding and LM head, a head applied per chunk of rows). Their contributions are
    /// summed apart in the order candle's backward would sum them, and the sum is added into
    /// the buffer by [`GradSink::take`], so the result equals candle's `dst += Σ` bit for bit.
    pub fn with_summed<'a>(
        weights: impl IntoIterator<Item = (&'a Tensor, usize)>,
        summed: impl IntoIterator<Item = (&'a Tensor, usize)>,
    ) -> GradSink {
        let region = |t: &Tensor, off, summed| {
            let len = t.elem_count();
            (t.id(), Region { off, len, summed })
        };
        let mut regions: HashMap<_, _> = weights
            .into_iter()
            .map(|(t, off)| region(t, off, false))
            .collect();
        regions.extend(summed.into_iter().map(|(t, off)| region(t, off, true)));
        GradSink(Arc::new(Inner {
            regions,
            ..Default::default()
        }))
    }

    /// Whether `w` is a registered weight.
    pub fn holds(&self, w: &Tensor) -> bool {
        self.0.regions.contains_key(&w.id())
    }

    /// Lends `buf` to the sink: until [`GradSink::take`], registered weights' gradients are
    /// added into it. Replaces a buffer lent before.
    pub fn lend(&self, buf: Vec<f32>) {
        *lock(&self.0.buf) = buf;
    }

    /// Takes the lent buffer back (an empty one if none was lent), after adding the summed
    /// weights' gradients of the backward into it.
    pub fn take(&self) -> Vec<f32> {
        let mut buf = std::mem::take(&mut *lock(&self.0.buf));
        let pending = std::mem::take(&mut *lock(&self.0.pending));
        for (id, p) in pending {
            let r = self.0.regions[&id];
            if r.off + r.len > buf.len() {
                continue;
            }
            let dst = &mut buf[r.off..r.off + r.len];
            match p {
                Pending::Dense(v) => add_into(dst, &v),
                Pending::Rows(cols, rows) => {
                    for (row, v) in rows {
                        add_into(&mut dst[row * cols..(row + 1) * cols], &v);
                    }
                }
            }
        }
        buf
    }

    /// Takes `dw` (the gradient of `w`, its element count long): added into `w`'s region of
    /// the lent buffer, or summed with `w`'s earlier contributions. Gives `dw` back when `w`
    /// is not registered or no buffer covering its region is lent.
    pub(crate) fn put(&self, w: &Tensor, dw: Vec<f32>) -> Option<Vec<f32>> {
        let mut buf = lock(&self.0.buf);
        let Some((r, dst)) = self.region(&mut buf, w) else {
            return Some(dw);
        };
        assert_eq!(dst.len(), dw.len(), "grad sink: gradient size");
        if !r.summed {
            add_into(dst, &dw);
            return None;
        }
        let mut pending = lock(&self.0.pending);
        let p = match pending.remove(&w.id()) {
            None => Pending::Dense(dw),
            Some(Pending::Dense(mut v)) => {
                add_into(&mut v, &dw);
                Pending::Dense(v)
            }
            Some(rows) => {
                let mut v = densify(rows, r.len);
                add_into(&mut v, &dw);
                Pending::Dense(v)
            }
        };
        pending.insert(w.id(), p);
        None
    }

    /// Takes the gradient of an embedding lookup of rows `ids` of `w` [rows, cols] (a
    /// summed weight): `g` [ids.len(), cols], row `i` added into row `ids[i]` in order, as
    /// candle's `index_add` does. False (nothing taken) when `w` is not a summed weight or no
    /// buffer covering its region is lent.
    pub(crate) fn put_rows(&self, w: &Tensor, ids: &[u32], g: &[f32], cols: usize) -> bool {
        let mut buf = lock(&self.0.buf);
        match self.region(&mut buf, w) {
            Some((r, _)) if r.summed && r.len.is_multiple_of(cols.max(1)) => {}
            _ => return false,
        }
        let mut pending = lock(&self.0.pending);
        let p = pending
            .entry(w.id())
            .or_insert_with(|| Pending::Rows(cols, Default::default()));
        let rows = g.chunks_exact(cols.max(1));
        match p {
            Pending::Dense(v) => {
                for (&id, src) in ids.iter().zip(rows) {
                    let id = id as usize;
                    add_into_seq(&mut v[id * cols..(id + 1) * cols], src);
                }
            }
            Pending::Rows(_, map) => {
                for (&id, src) in ids.iter().zip(rows) {
                    let acc = map.entry(id as usize).or_insert_with(|| vec![0f32; cols]);
                    add_into_seq(acc, src);
                }
            }
        }
        true
    }

    fn region<'b>(&self, buf: &'b mut [f32], w: &Tensor) -> Option<(Region, &'b mut [f32])> {
        let r = *self.0.regions.get(&w.id())?;
        if r.len != w.elem_count() || r.off + r.len > buf.len() {
            return None;
        }
        Some((r, &mut buf[r.off..r.off + r.len]))
    }
}

/// `dst += src` elementwise, in parallel.
fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| add_into_seq(d, s));
}

fn add_into_seq(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// A pending gradient as one dense vector of `len` values.
fn densify(p: Pending, len: usize) -> Vec<f32> {
    match p {
        Pending::Dense(v) => v,
        Pending::Rows(cols, rows) => {
            let mut v = vec![0f32; len];
            for (row, r) in rows {
                v[row * cols..(row + 1) * cols].copy_from_slice(&r);
            }
            v
        }
    }
}

/// Rows `ids` of `w` [rows, cols] (an embedding lookup, `w.index_select(ids, 0)`), whose
/// backward hands `w`'s gradient to the sink ([`GradSink::put_rows`]).
struct Embedding {
    ids: Vec<u32>,
    sink: GradSink,
}

impl candle_core::CustomOp1 for Embedding {
    fn name(&self) -> &'static str {
        "rzero-embedding"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let w = super::data(s, l, "embedding w")?;
        let (rows, cols) = l.shape().dims2()?;
        if let Some(&bad) = self.ids.iter().find(|&&i| i as usize >= rows) {
            return Err(super::err(format!("embedding: id {bad} of {rows} rows")));
        }
        let mut out = Vec::with_capacity(self.ids.len() * cols);
        for &i in &self.ids {
            out.extend_from_slice(&w[i as usize * cols..(i as usize + 1) * cols]);
        }
        let shape = candle_core::Shape::from((self.ids.len(), cols));
        Ok((candle_core::CpuStorage::F32(out), shape))
    }

    fn bwd(&self, w: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let cols = w.dim(1)?;
        let taken = super::with_data(g, |g| Ok(self.sink.put_rows(w, &self.ids, g, cols)))?;
        if taken {
            return Ok(None);
        }
        // No buffer lent: the lookup's own gradient, as candle's `index_add` into zeros.
        let ids = Tensor::from_slice(&self.ids, self.ids.len(), w.device())?;
        Ok(Some(w.zeros_like()?.index_add(&ids, g, 0)?))
    }
}

/// `w.index_select(ids, 0)` for an f32 CPU `w` [rows, cols] that `sink` holds as a summed
/// weight ([`GradSink::with_summed`]): the same rows, and a backward that adds the rows'
/// gradients into the sink in candle's order (so the sum equals candle's bit for bit while a
/// buffer is lent; without one, the gradient goes to candle, added after any other
/// contribution instead of into it).
pub fn embedding_sunk(w: &Tensor, ids: &Tensor, sink: &GradSink) -> candle_core::Result<Tensor> {
    let ids = ids
        .flatten_all()?
        .to_dtype(candle_core::DType::U32)?
        .to_vec1::<u32>()?;
    w.contiguous()?.apply_op1(Embedding {
        ids,
        sink: sink.clone(),
    })
}
