//! Micro-benchmark of the matmul layouts forward_packed could use.
use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for &(m, k, n) in &[
        (1usize, 576usize, 1536usize),
        (32, 576, 1536),
        (32, 576, 49152),
        (1, 576, 49152),
    ] {
        let x = Tensor::randn(0f32, 1., (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1., (n, k), &dev)?;
        let wt = w.t()?.contiguous()?;
        let reps = 20;
        let _ = x.matmul(&w.t()?)?;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = x.matmul(&w.t()?)?;
        }
        let a = t.elapsed().as_secs_f64() / reps as f64;
        let _ = x.matmul(&wt)?;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = x.matmul(&wt)?;
        }
        let b = t.elapsed().as_secs_f64() / reps as f64;
        let fl = 2.0 * (m * k * n) as f64;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = model::packed::matmul_nt(&xv, m, k, &wv, n);
        }
        let e = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "  custom {:.3} ms ({:.1} GF/s)",
            e * 1e3,
            2.0 * (m * k * n) as f64 / e / 1e9
        );
        let chunk = 4096.min(n);
        let t = Instant::now();
        for _ in 0..reps {
            let mut parts = Vec::new();
            let mut s = 0;
            while s < n {
                let c = chunk.min(n - s);
                parts.push(x.matmul(&w.narrow(0, s, c)?.t()?)?);
                s += c;
            }
            let _ = Tensor::cat(&parts, 1)?;
        }
        let c = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "  chunked {:.3} ms ({:.1} GF/s)",
            c * 1e3,
            2.0 * (m * k * n) as f64 / c / 1e9
        );
        println!(
            "{m}x{k}x{n}: w.t() {:.3} ms ({:.1} GF/s), contiguous wt {:.3} ms ({:.1} GF/s)",
            a * 1e3,
            fl / a / 1e9,
            b * 1e3,
            fl / b / 1e9
        );
    }
    Ok(())
}
