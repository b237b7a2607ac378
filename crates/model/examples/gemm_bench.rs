//! Times the training path's f32 product kernel (`kernels::gemm`) alone on the products of
//! one SmolLM2-135M training step (T = 512 rows per micro-batch; hidden 576, intermediate
//! 1536, 9 heads × 64 with 3 KV heads, the head's 49152 rows in chunks of 256): forward
//! `x · wᵀ`, `dx = g · w`, `dw = gᵀ · x` (A read with a stride), and the six attention
//! products of one head. Prints one JSON object per shape (best of `ROUNDS` rounds: GFLOP
//! per CPU second of the whole process, and per wall second) and a step-weighted total
//! (each shape counted as often as the step runs it). Run it with `RAYON_NUM_THREADS=1` on a
//! busy machine: CPU seconds then count no spinning pool thread.
//!     RAYON_NUM_THREADS=1 cargo run --release -p model --features bench-kernels --example gemm_bench [FILTER]
use std::time::Instant;

use model::gemm_bench::{available, gemm, gemm_nt};

mod support;
use support::{cpu_s, load_avg};

const ROUNDS: usize = 3;

fn rand(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// One product of the step: `C[m, n] = A · B` over `k`; `nt`: B is the transpose of a
/// row-major `[n, k]` (`gemm_nt`), else B is `[k, ldb]` row-major; A read at `rsa`, `csa`.
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    rsa: usize,
    csa: usize,
    nt: bool,
    ldb: usize,
    /// How often one 512-row micro-batch step runs it (30 layers, 9 heads, 2 head chunks).
    count: usize,
}

#[allow(clippy::too_many_arguments)]
fn sh(
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    rsa: usize,
    csa: usize,
    nt: bool,
    ldb: usize,
    count: usize,
) -> Shape {
    Shape {
        name,
        m,
        n,
        k,
        rsa,
        csa,
        nt,
        ldb,
        count,
    }
}

fn main() {
    assert!(available(), "gemm_bench needs AVX-512F");
    let filter = std::env::args().nth(1).unwrap_or_default();
    let (t, h, f, kv, v, hc, l) = (512, 576, 1536, 192, 49152, 256, 30);
    let shapes = [
        // forward x · wᵀ: A = x [T, K] row-major, w [N, K].
        sh("fwd q/o", t, h, h, h, 1, true, 0, 2 * l),
        sh("fwd k/v", t, kv, h, h, 1, true, 0, 2 * l),
        sh("fwd gate/up", t, f, h, h, 1, true, 0, 2 * l),
        sh("fwd down", t, h, f, f, 1, true, 0, l),
        sh("fwd head", hc, v, h, h, 1, true, 0, 2),
        // dx = g · w: A = g [T, N] row-major, B = w [N, K].
        sh("dx q/o", t, h, h, h, 1, false, h, 2 * l),
        sh("dx k/v", t, h, kv, kv, 1, false, h, 2 * l),
        sh("dx gate/up", t, h, f, f, 1, false, h, 2 * l),
        sh("dx down", t, f, h, h, 1, false, f, l),
        sh("dx head", hc, h, v, v, 1, false, h, 2),
        // dw = gᵀ · x: A(i, p) = g[p·N + i] (stride N per step), B = x [T, K].
        sh("dw q/o", h, h, t, 1, h, false, h, 2 * l),
        sh("dw k/v", kv, h, t, 1, kv, false, h, 2 * l),
        sh("dw gate/up", f, h, t, 1, f, false, h, 2 * l),
        sh("dw down", h, f, t, 1, h, false, f, l),
        sh("dw head", v, h, hc, 1, v, false, h, 2),
        // attention, per head (D = 64): forward q·kᵀ, P·v; backward dO·vᵀ, dS·k, dSᵀ·q, Pᵀ·dO.
        sh("att q.kT", t, t, 64, 64, 1, true, 0, 2 * 9 * l),
        sh("att p.v", t, 64, t, t, 1, false, 64, 9 * l),
        sh("att dO.vT", t, t, 64, 9 * 64, 1, true, 0, 9 * l),
        sh("att dS.k", t, 64, t, t, 1, false, 64, 9 * l),
        sh("att dST.q", t, 64, t, 1, t, false, 64, 9 * l),
        sh("att PT.dO", t, 64, t, 1, t, false, 9 * 64, 9 * l),
    ];
    let (mut flop_all, mut cpu_all) = (0.0, 0.0);
    for s in shapes.iter().filter(|s| s.name.contains(filter.as_str())) {
        let a = rand((s.m - 1) * s.rsa + (s.k - 1) * s.csa + 1, 1);
        let b = if s.nt {
            rand(s.n * s.k, 2)
        } else {
            rand((s.k - 1) * s.ldb + s.n, 2)
        };
        let run = || {
            if s.nt {
                gemm_nt(&a, s.rsa, s.csa, &b, s.m, s.n, s.k)
            } else {
                gemm(&a, s.rsa, s.csa, &b, s.ldb, s.m, s.n, s.k)
            }
        };
        let flop = 2.0 * (s.m * s.n * s.k) as f64;
        // Repetitions for about 0.2 s of work at 150 GFLOP/s.
        let reps = ((0.2 * 150e9 / flop) as usize).max(1);
        std::hint::black_box(run());
        let (mut best_cpu, mut best_wall) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..ROUNDS {
            let (t0, c0) = (Instant::now(), cpu_s());
            for _ in 0..reps {
                std::hint::black_box(run());
            }
            best_cpu = best_cpu.min((cpu_s() - c0) / reps as f64);
            best_wall = best_wall.min(t0.elapsed().as_secs_f64() / reps as f64);
        }
        flop_all += flop * s.count as f64;
        cpu_all += best_cpu * s.count as f64;
        println!(
            "{{\"shape\":\"{}\",\"m\":{},\"n\":{},\"k\":{},\"gflop_per_cpu_s\":{:.1},\"gflop_per_s\":{:.1},\"cpu_ms\":{:.3}}}",
            s.name,
            s.m,
            s.n,
            s.k,
            flop / best_cpu / 1e9,
            flop / best_wall / 1e9,
            best_cpu * 1e3
        );
    }
    println!(
        "{{\"shape\":\"step-weighted\",\"gflop_per_cpu_s\":{:.1},\"threads\":{},\"load\":{:.2}}}",
        flop_all / cpu_all / 1e9,
        rayon::current_num_threads(),
        load_avg().unwrap_or(f64::NAN)
    );
}
