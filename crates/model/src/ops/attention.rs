//! Masked grouped-query attention as one fused op with its own backward:
//! `o = softmax(q · kᵀ · scale + mask) · v` per head, the query heads of a KV head sharing
//! its keys and values. It replaces the composition `matmul` → [`super::masked_softmax`] →
//! `matmul` → transpose of the training path: the products run on the AVX-512 kernel
//! (`kernels/gemm.rs`, no transposed copy of k or of the output), and no `[T, T]`
//! probability or score tensor is kept for backward: the backward recomputes each head's
//! probabilities (the same arithmetic as the forward), which costs one `q · kᵀ` per head and
//! saves two `[heads, T, T]` tensors per layer.
//!
//! With [`MatmulPrecision::Bf16`] ([`attention_with`]) the five products (`q · kᵀ`, `P · v`
//! and, in the backward, `dO · vᵀ`, `dS · k`, `dSᵀ · q`, `Pᵀ · dO`) take bf16-rounded
//! operands and sum in f32 (`kernels/amx.rs`, AMX tiles where the CPU has them), as the
//! linear products do; the mask, softmax and its backward stay f32 (summed 16 lanes at a
//! time, and only up to each row's last unmasked key: the masked tail's probabilities are
//! exactly 0 either way).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{data, err, tensor, with_data, CResult, MatmulPrecision};
use crate::kernels::amx::{self, Mat};
use crate::kernels::gemm;

/// The op: q [B, nh, T, D], k and v [B, nkv, T, D] → o [B, T, nh·D].
struct Attention {
    scale: f32,
    /// Additive mask, row-major [B, T, T].
    mask: Tensor,
    b: usize,
    nh: usize,
    nkv: usize,
    t: usize,
    d: usize,
    precision: MatmulPrecision,
}

impl Attention {
    /// `C[m, n] = A · B` with `A(i, p) = a[i·rsa + p·csa]` and `B(p, j) = b[p·rsb + j·csb]`,
    /// where (f32) `csb` is 1 (`B` row-major) or `rsb` is 1 and `csb` is `k` (`B = wᵀ` for a
    /// row-major `w [n, k]`); at [`Self::precision`].
    #[allow(clippy::too_many_arguments)]
    fn mm(
        &self,
        a: &[f32],
        rsa: usize,
        csa: usize,
        b: &[f32],
        rsb: usize,
        csb: usize,
        m: usize,
        n: usize,
        k: usize,
    ) -> Vec<f32> {
        if self.precision == MatmulPrecision::Bf16 {
            let a = Mat {
                d: a,
                rs: rsa,
                cs: csa,
            };
            let b = Mat {
                d: b,
                rs: rsb,
                cs: csb,
            };
            return amx::gemm_bf16(a, b, m, n, k);
        }
        if csb == 1 {
            gemm::gemm(a, rsa, csa, b, rsb, m, n, k)
        } else {
            debug_assert!(rsb == 1 && csb == k, "attention: B must be w or wᵀ");
            gemm::gemm_nt(a, rsa, csa, b, m, n, k)
        }
    }

    fn check(&self, q: usize, k: usize, v: usize) -> CResult<()> {
        let (b, t, d) = (self.b, self.t, self.d);
        if q != b * self.nh * t * d
            || k != b * self.nkv * t * d
            || v != k
            || self.nkv == 0
            || !self.nh.is_multiple_of(self.nkv)
            || self.mask.elem_count() != b * t * t
        {
            return Err(err(format!(
                "attention: q {q}, k {k}, v {v}, mask {} values for B={b} nh={} nkv={} T={t} D={d}",
                self.mask.elem_count(),
                self.nh,
                self.nkv
            )));
        }
        Ok(())
    }

    /// Probabilities [T, T] of query head `h` of batch `bi`: `q_h` [T, D], `k_g` [T, D],
    /// `mask_b` [T, T]. The same arithmetic as [`super::masked_softmax`].
    fn probs(&self, q_h: &[f32], k_g: &[f32], mask_b: &[f32]) -> Vec<f32> {
        let (t, d) = (self.t, self.d);
        let mut p = self.mm(q_h, d, 1, k_g, 1, d, t, t, d);
        if self.precision == MatmulPrecision::Bf16 {
            for (row, mrow) in p.chunks_mut(t).zip(mask_b.chunks(t)) {
                let n = live(mrow);
                let (row, tail) = row.split_at_mut(n);
                for (v, &m) in row.iter_mut().zip(mrow) {
                    *v = *v * self.scale + m;
                }
                let mx = max16(row);
                row.iter_mut().for_each(|v| *v -= mx);
                crate::simd::exp_inplace(row);
                let inv = 1.0 / sum16(row);
                row.iter_mut().for_each(|v| *v *= inv);
                tail.fill(0.0);
            }
            return p;
        }
        for (row, mrow) in p.chunks_mut(t).zip(mask_b.chunks(t)) {
            let mut mx = f32::NEG_INFINITY;
            for (v, &m) in row.iter_mut().zip(mrow) {
                *v = *v * self.scale + m;
                mx = mx.max(*v);
            }
            row.iter_mut().for_each(|v| *v -= mx);
            crate::simd::exp_inplace(row);
            let inv = 1.0 / row.iter().sum::<f32>();
            row.iter_mut().for_each(|v| *v *= inv);
        }
        p
    }
}

/// Mask values at or below this are masked keys (the model's mask holds -1e9): their
/// probability is exactly 0 (`exp` of about -1e9 underflows).
const MASKED: f32 = -1.0e8;

/// The keys of a mask row up to its last unmasked one (all of them if every key is masked:
/// the row is then uniform, as the f32 path makes it). The probabilities after are 0.
fn live(mrow: &[f32]) -> usize {
    match mrow.iter().rposition(|&m| m > MASKED) {
        Some(j) => j + 1,
        None => mrow.len(),
    }
}

/// The largest of `x` (NEG_INFINITY if empty), 16 lanes at a time.
fn max16(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    let tail = it
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    acc.iter().fold(tail, |a, &b| a.max(b))
}

/// The sum of `x`, 16 lanes at a time.
fn sum16(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
}

/// One row of `dS = scale · P ⊙ (dP − Σ_j P ⊙ dP)` in place of `dP` (`dr`), 16 lanes at a
/// time and only up to the last nonzero probability (zero after).
fn ds_row(dr: &mut [f32], pr: &[f32], scale: f32) {
    let n = pr.iter().rposition(|&p| p != 0.0).map_or(0, |j| j + 1);
    let (dr, tail) = dr.split_at_mut(n);
    let pr = &pr[..n];
    let mut acc = [0f32; 16];
    let (mut dc, mut pc) = (dr.chunks_exact(16), pr.chunks_exact(16));
    for (d, p) in (&mut dc).zip(&mut pc) {
        for l in 0..16 {
            acc[l] += d[l] * p[l];
        }
    }
    let rest: f32 = dc
        .remainder()
        .iter()
        .zip(pc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    let dot = acc.iter().sum::<f32>() + rest;
    for (x, &p) in dr.iter_mut().zip(pr) {
        *x = scale * p * (*x - dot);
    }
    tail.fill(0.0);
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "rzero-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let q = data(s1, l1, "attention q")?;
        let k = data(s2, l2, "attention k")?;
        let v = data(s3, l3, "attention v")?;
        self.check(q.len(), k.len(), v.len())?;
        let (b, nh, t, d) = (self.b, self.nh, self.t, self.d);
        let rep = nh / self.nkv;
        let td = t * d;
        let heads: Vec<Vec<f32>> = with_data(&self.mask, |mask| {
            Ok((0..b * nh)
                .into_par_iter()
                .map(|bh| {
                    let (bi, h) = (bh / nh, bh % nh);
                    let g = bi * self.nkv + h / rep;
                    let p = self.probs(
                        &q[bh * td..][..td],
                        &k[g * td..][..td],
                        &mask[bi * t * t..][..t * t],
                    );
                    // o_h [T, D] = P · v_g.
                    self.mm(&p, t, 1, &v[g * td..][..td], d, 1, t, d, t)
                })
                .collect())
        })?;
        // [B, T, nh·D]: head h's rows at columns h·D.
        let mut out = vec![0f32; b * t * nh * d];
        for (bh, o) in heads.iter().enumerate() {
            let (bi, h) = (bh / nh, bh % nh);
            for (ti, row) in o.chunks(d).enumerate() {
                out[((bi * t + ti) * nh + h) * d..][..d].copy_from_slice(row);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, nh * d))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, nh, nkv, t, d) = (self.b, self.nh, self.nkv, self.t, self.d);
        let rep = nh / nkv;
        let td = t * d;
        let hd = nh * d;
        // Per KV group (b, g): dq of its query heads, and dk, dv summed over them.
        let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = with_data(&self.mask, |mask| {
            with_data(q, |q_| {
                with_data(k, |k_| {
                    with_data(v, |v_| {
                        with_data(g, |g_| {
                            Ok((0..b * nkv)
                                .into_par_iter()
                                .map(|bg| {
                                    let bi = bg / nkv;
                                    let (kg, vg) = (&k_[bg * td..][..td], &v_[bg * td..][..td]);
                                    let mut dq = Vec::with_capacity(rep * td);
                                    let mut dk = vec![0f32; td];
                                    let mut dv = vec![0f32; td];
                                    for r in 0..rep {
                                        let h = (bg % nkv) * rep + r;
                                        let qh = &q_[(bi * nh + h) * td..][..td];
                                        let p = self.probs(qh, kg, &mask[bi * t * t..][..t * t]);
                                        // dO_h rows: g[(bi·T + i)·nh·D + h·D ..][..D].
                                        let go = &g_[bi * t * hd + h * d..];
                                        // dP [T, T] = dO_h · v_gᵀ.
                                        let mut ds = self.mm(go, hd, 1, vg, 1, d, t, t, d);
                                        // dS = scale · P ⊙ (dP − Σ_j P ⊙ dP).
                                        for (dr, pr) in ds.chunks_mut(t).zip(p.chunks(t)) {
                                            if self.precision == MatmulPrecision::Bf16 {
                                                ds_row(dr, pr, self.scale);
                                                continue;
                                            }
                                            let dot: f32 =
                                                pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
                                            for (x, &pv) in dr.iter_mut().zip(pr) {
                                                *x = self.scale * pv * (*x - dot);
                                            }
                                        }
                                        // dq_h = dS · k_g; dk_g += dSᵀ · q_h; dv_g += Pᵀ · dO_h.
                                        dq.extend(self.mm(&ds, t, 1, kg, d, 1, t, d, t));
                                        let a = self.mm(&ds, 1, t, qh, d, 1, t, d, t);
                                        dk.iter_mut().zip(&a).for_each(|(x, y)| *x += y);
                                        let a = self.mm(&p, 1, t, go, hd, 1, t, d, t);
                                        dv.iter_mut().zip(&a).for_each(|(x, y)| *x += y);
                                    }
                                    (dq, dk, dv)
                                })
                                .collect())
                        })
                    })
                })
            })
        })?;
        let mut dq = Vec::with_capacity(b * nh * td);
        let mut dk = Vec::with_capacity(b * nkv * td);
        let mut dv = Vec::with_capacity(b * nkv * td);
        for (a, bk, c) in parts {
            dq.extend(a);
            dk.extend(bk);
            dv.extend(c);
        }
        Ok((
            Some(tensor(dq, q.shape(), q)?),
            Some(tensor(dk, k.shape(), k)?),
            Some(tensor(dv, v.shape(), v)?),
        ))
    }
}

/// Masked grouped-query attention, differentiable in `q`, `k` and `v`: `q` [B, nh, T, D],
/// `k` and `v` [B, nkv, T, D] (nh a multiple of nkv; query head h uses KV head h / (nh/nkv)),
/// `mask` B·T·T additive values (row-major [B, T, T], any shape). Returns
/// `softmax(q · kᵀ · scale + mask) · v` as [B, T, nh·D] (the heads of a row side by side,
/// as o_proj takes them). CPU f32 only, and AVX-512F ([`available`]).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> CResult<Tensor> {
    attention_with(q, k, v, mask, scale, MatmulPrecision::F32)
}

/// [`attention`] with the operands of its products at `precision` (softmax in f32).
pub fn attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    precision: MatmulPrecision,
) -> CResult<Tensor> {
    let (b, nh, t, d) = q.dims4()?;
    let (_, nkv, _, _) = k.dims4()?;
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Attention {
            scale: scale as f32,
            mask: mask.contiguous()?,
            b,
            nh,
            nkv,
            t,
            d,
            precision,
        },
    )
}

/// Whether [`attention`] runs on this CPU (the AVX-512F product kernel).
pub fn available() -> bool {
    gemm::available()
}
