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
//! `+0` never holds `-0`, so `dst + -0 = dst + +0`). A weight used by several products of one
//! graph still gets the right sum, in another order (`(dst + d1) + d2` for `dst + (d1 + d2)`).
//! Outside a lend (the buffer taken back), the op falls back to candle's path.

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
    /// `(offset, len)` in the buffer of each registered weight, by tensor id.
    regions: HashMap<TensorId, (usize, usize)>,
    /// The lent buffer (empty when none is lent).
    buf: Mutex<Vec<f32>>,
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
    /// (its element count long) in the buffers that will be lent.
    pub fn new<'a>(weights: impl IntoIterator<Item = (&'a Tensor, usize)>) -> GradSink {
        let regions = weights
            .into_iter()
            .map(|(t, off)| (t.id(), (off, t.elem_count())))
            .collect();
        GradSink(Arc::new(Inner {
            regions,
            buf: Mutex::new(Vec::new()),
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

    /// Takes the lent buffer back (an empty one if none was lent).
    pub fn take(&self) -> Vec<f32> {
        std::mem::take(&mut *lock(&self.0.buf))
    }

    /// Adds `dw` (the gradient of `w`, its element count long) into `w`'s region of the lent
    /// buffer; false (nothing added) when `w` is not registered or no buffer covering its
    /// region is lent.
    pub(crate) fn add(&self, w: &Tensor, dw: &[f32]) -> bool {
        let mut buf = lock(&self.0.buf);
        let Some(dst) = self.region(&mut buf, w) else {
            return false;
        };
        assert_eq!(dst.len(), dw.len(), "grad sink: gradient size");
        dst.par_chunks_mut(CHUNK)
            .zip(dw.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (d, s) in d.iter_mut().zip(s) {
                    *d += s;
                }
            });
        true
    }

    fn region<'b>(&self, buf: &'b mut [f32], w: &Tensor) -> Option<&'b mut [f32]> {
        let &(off, len) = self.0.regions.get(&w.id())?;
        if len != w.elem_count() || off + len > buf.len() {
            return None;
        }
        Some(&mut buf[off..off + len])
    }
}
