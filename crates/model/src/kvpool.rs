//! The device KV pool of the generic inference path (`packed/generic.rs`): per layer a K and
//! a V tensor of `[slots, kv_heads, capacity, head_dim]`, shared by a model's clones. A leaf
//! module, so that [`crate::Model`] can hold one without depending on the packed path.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// Smallest capacity of the pool, in positions.
const MIN_CAP: usize = 64;
/// Smallest number of slots of the pool.
const MIN_SLOTS: usize = 8;

/// The device KV storage of one model (see the module notes).
#[derive(Debug)]
pub(crate) struct KvPool {
    pub(crate) device: Device,
    pub(crate) dtype: DType,
    pub(crate) layers: usize,
    pub(crate) heads: usize,
    pub(crate) d: usize,
    /// Upper bound on `cap` (the model's context).
    pub(crate) max_cap: usize,
    /// Slots and positions per slot allocated.
    pub(crate) slots: usize,
    pub(crate) cap: usize,
    /// Per layer `[slots, heads, cap, d]` (empty until the first step).
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    /// Whether each slot is taken.
    pub(crate) used: Vec<bool>,
}

/// A model's pool, shared by its clones and its caches.
pub(crate) type SharedPool = Arc<Mutex<KvPool>>;

pub(crate) fn lock(p: &SharedPool) -> MutexGuard<'_, KvPool> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Slots allocated in `p`.
pub(crate) fn pool_slots(p: &SharedPool) -> usize {
    lock(p).slots
}

impl KvPool {
    /// An empty pool (nothing allocated).
    pub(crate) fn new(
        layers: usize,
        heads: usize,
        d: usize,
        dtype: DType,
        device: &Device,
        max_cap: usize,
    ) -> SharedPool {
        Arc::new(Mutex::new(KvPool {
            device: device.clone(),
            dtype,
            layers,
            heads,
            d,
            max_cap,
            slots: 0,
            cap: 0,
            k: Vec::new(),
            v: Vec::new(),
            used: Vec::new(),
        }))
    }

    /// Reallocates to at least `slots` slots of `cap` positions, keeping the contents.
    pub(crate) fn grow(&mut self, slots: usize, cap: usize) -> Result<()> {
        let slots = if slots > self.slots {
            slots.max(2 * self.slots).max(MIN_SLOTS)
        } else {
            self.slots
        };
        let cap = if cap > self.cap {
            cap.max(2 * self.cap)
                .max(MIN_CAP)
                .min(self.max_cap.max(cap))
        } else {
            self.cap
        };
        if slots == self.slots && cap == self.cap {
            return Ok(());
        }
        let (h, d) = (self.heads, self.d);
        let grow = |old: Option<&Tensor>| -> Result<Tensor> {
            let t = Tensor::zeros((slots, h, cap, d), self.dtype, &self.device)?;
            if let Some(old) = old {
                // Capacity first (same slots), then slots.
                let wide = if cap > self.cap {
                    let w = Tensor::zeros((self.slots, h, cap, d), self.dtype, &self.device)?;
                    w.slice_set(old, 2, 0)?;
                    w
                } else {
                    old.clone()
                };
                t.slice_set(&wide, 0, 0)?;
            }
            Ok(t)
        };
        let had = self.slots > 0 && self.cap > 0;
        let mut k = Vec::with_capacity(self.layers);
        let mut v = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            k.push(grow(had.then(|| &self.k[l]))?);
            v.push(grow(had.then(|| &self.v[l]))?);
        }
        self.k = k;
        self.v = v;
        self.slots = slots;
        self.cap = cap;
        self.used.resize(slots, false);
        Ok(())
    }

    /// Takes a free slot (the lowest), growing the pool if none is free.
    pub(crate) fn take(&mut self) -> Result<usize> {
        let s = match self.used.iter().position(|u| !u) {
            Some(s) => s,
            None => {
                let n = self.slots + 1;
                self.grow(n, self.cap.max(1))?;
                n - 1
            }
        };
        self.used[s] = true;
        Ok(s)
    }
}
