//! Times the training path's `x · wᵀ` op (`model::ops::linear_with`), forward alone and
//! forward + both backward products, with f32 and with bf16 operands (AMX tiles where the
//! CPU has them), on SmolLM2-135M training shapes (one 512-token sequence; the head in
//! chunks of 256 rows). Prints one JSON object per shape (best of 3, wall clock and process
//! CPU seconds, GFLOP/s of each) and the 1-minute load average. An argument `f32` or `bf16`
//! runs only that precision (for `perf`).
//!     cargo run --release -p model --example bf16_linear_bench [f32|bf16]
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use model::ops::{self, MatmulPrecision};

mod support;
use support::{cpu_s, load_avg};

fn rand(shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, 0.5, shape, &Device::Cpu).unwrap()).unwrap()
}

/// Best of `reps` (wall, CPU) seconds of `f`.
fn time(reps: usize, f: &dyn Fn()) -> (f64, f64) {
    let (mut w, mut c) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu_s());
        f();
        w = w.min(t0.elapsed().as_secs_f64());
        c = c.min(cpu_s() - c0);
    }
    (w, c)
}

fn main() {
    let threads = rayon::current_num_threads();
    for &(n, k, m, what) in &[
        (512, 576, 1536, "gate/up"),
        (512, 1536, 576, "down"),
        (512, 576, 576, "q/o"),
        (512, 576, 192, "k/v"),
        (256, 576, 49152, "lm_head chunk"),
    ] {
        let x = rand(&[n, k]);
        let w = rand(&[m, k]);
        let mut row = serde_json::json!({
            "bench": "bf16-linear", "shape": what, "n": n, "k": k, "m": m,
            "threads": threads, "amx": ops::bf16_products_on_amx(),
        });
        let only = std::env::args().nth(1);
        for p in [MatmulPrecision::F32, MatmulPrecision::Bf16] {
            if only.as_deref().is_some_and(|o| o != p.name()) {
                continue;
            }
            let fwd = || {
                ops::linear_with(x.as_tensor(), w.as_tensor(), p).unwrap();
            };
            let both = || {
                let y = ops::linear_with(x.as_tensor(), w.as_tensor(), p).unwrap();
                y.sum_all().unwrap().backward().unwrap();
            };
            fwd(); // warm-up (AMX permission, allocations)
            let (fw, fc) = time(3, &fwd);
            let (bw, bc) = time(3, &both);
            let gf = 2.0 * (n * k * m) as f64 / 1e9;
            let name = p.name();
            row[format!("{name}_fwd_ms")] = (fw * 1e3).into();
            row[format!("{name}_fwd_gflops")] = (gf / fw).into();
            row[format!("{name}_fwd_gflops_per_cpu_s")] = (gf / fc).into();
            row[format!("{name}_fwd_bwd_ms")] = (bw * 1e3).into();
            row[format!("{name}_fwd_bwd_gflops")] = (3.0 * gf / bw).into();
            row[format!("{name}_fwd_bwd_gflops_per_cpu_s")] = (3.0 * gf / bc).into();
        }
        row["load_avg_1m"] = load_avg().into();
        println!("{row}");
    }
}
