//! Probe of candle's CPU matmul at the shapes of SmolLM2-135M decode (is the model step
//! bound by small-M GEMM?). `cargo run --release -p engine --example matmul_probe`.

use candle_core::{Device, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for &(n_out, k) in &[(576usize, 576usize), (1536, 576), (576, 1536), (49152, 576)] {
        let w = Tensor::randn(0f32, 0.02, (n_out, k), &dev)?; // [out, in] like HF weights
        let wt = w.t()?.contiguous()?; // [in, out]
        for &m in &[1usize, 8, 32] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let reps = (2e9 / (2.0 * (m * n_out * k) as f64)).clamp(3.0, 200.0) as usize;
            let mut best = [f64::MAX; 2];
            for (vi, f) in [
                &(|| x.matmul(&w.t()?)) as &dyn Fn() -> candle_core::Result<Tensor>,
                &(|| x.matmul(&wt)),
            ]
            .iter()
            .enumerate()
            {
                f()?;
                let t = Instant::now();
                for _ in 0..reps {
                    f()?;
                }
                best[vi] = t.elapsed().as_secs_f64() / reps as f64;
            }
            let gf = |s: f64| 2.0 * (m * n_out * k) as f64 / s / 1e9;
            println!(
                "[{m:>2}x{k}] x [{k}x{n_out}]: w.t() {:.1} GFLOP/s, pre-transposed {:.1} GFLOP/s",
                gf(best[0]),
                gf(best[1])
            );
        }
    }
    Ok(())
}
