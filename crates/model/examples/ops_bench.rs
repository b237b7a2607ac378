//! Times the fused training ops (`model::ops`) against the candle compositions they
//! replace, forward + backward, on SmolLM2-135M training shapes (one 512-token sequence).
//!     cargo run --release -p model --example ops_bench
use std::time::Instant;

use candle_core::{Device, Tensor, Var, D};
use model::ops;

mod support;
use support::cpu_s;

fn rand(shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, 0.5, shape, &Device::Cpu).unwrap()).unwrap()
}

/// Best of 3 of forward + backward of Σ f(..) ⊙ r, seconds (CPU seconds with
/// `OPS_BENCH_CPU=1`: [`cpu_s`]). With an argument `fused` or
/// `candle`, only that side runs (for `perf stat -e cycles:u` on a busy machine).
fn time(side: &str, f: &dyn Fn() -> Tensor) -> f64 {
    if std::env::args().nth(1).is_some_and(|m| m != side) {
        return f64::NAN;
    }
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let (t0, c0) = (Instant::now(), cpu_s());
        let y = f();
        let r = Tensor::ones(y.dims(), y.dtype(), y.device()).unwrap();
        let _g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let s = if std::env::var_os("OPS_BENCH_CPU").is_some() {
            cpu_s() - c0
        } else {
            t0.elapsed().as_secs_f64()
        };
        best = best.min(s);
    }
    best
}

fn main() {
    for &(n, k, m, what) in &[
        (512, 576, 1536, "gate/up"),
        (512, 1536, 576, "down"),
        (512, 576, 576, "q/o"),
        (256, 576, 49152, "lm_head chunk"),
    ] {
        let x = rand(&[n, k]);
        let w = rand(&[m, k]);
        let fused = time("fused", &|| {
            ops::linear(x.as_tensor(), w.as_tensor()).unwrap()
        });
        let cand = time("candle", &|| {
            x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap()
        });
        let gf = 6.0 * (n * k * m) as f64 / 1e9;
        println!(
            "linear {what} [{n},{k}]x[{m},{k}]T: fused {:.1} ms ({:.0} GFLOP/s), candle {:.1} ms ({:.0} GFLOP/s)",
            fused * 1e3, gf / fused, cand * 1e3, gf / cand
        );
    }
    let s = rand(&[1, 9, 512, 512]);
    let mut mask = vec![0f32; 512 * 512];
    for q in 0..512 {
        for k in q + 1..512 {
            mask[q * 512 + k] = -1e9;
        }
    }
    let mask = Tensor::from_vec(mask, (1, 1, 1, 512, 512), &Device::Cpu).unwrap();
    let fused = time("fused", &|| {
        ops::masked_softmax(s.as_tensor(), &mask, 0.125, 1, 512, 512).unwrap()
    });
    let cand = time("candle", &|| {
        let sc = (s.as_tensor() * 0.125)
            .unwrap()
            .reshape((1, 3, 3, 512, 512))
            .unwrap();
        let sc = sc.broadcast_add(&mask).unwrap();
        let m = sc.max_keepdim(D::Minus1).unwrap().detach();
        let e = sc.broadcast_sub(&m).unwrap().exp().unwrap();
        let z = e.sum_keepdim(D::Minus1).unwrap();
        e.broadcast_div(&z).unwrap()
    });
    println!(
        "masked softmax [9,512,512]: fused {:.1} ms, candle {:.1} ms",
        fused * 1e3,
        cand * 1e3
    );
    let x = rand(&[512, 576]);
    let w = rand(&[576]);
    let fused = time("fused", &|| {
        ops::rms_norm(x.as_tensor(), w.as_tensor(), 1e-5).unwrap()
    });
    let cand = time("candle", &|| {
        let xs = x.as_tensor();
        let v = xs.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let inv = (v + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
        xs.broadcast_mul(&inv)
            .unwrap()
            .broadcast_mul(w.as_tensor())
            .unwrap()
    });
    println!(
        "rms_norm [512,576]: fused {:.2} ms, candle {:.2} ms",
        fused * 1e3,
        cand * 1e3
    );
    let g = rand(&[512, 1536]);
    let u = rand(&[512, 1536]);
    let fused = time("fused", &|| {
        ops::silu_mul(g.as_tensor(), u.as_tensor()).unwrap()
    });
    let cand = time("candle", &|| {
        (g.as_tensor().silu().unwrap() * u.as_tensor()).unwrap()
    });
    println!(
        "silu_mul [512,1536]: fused {:.2} ms, candle {:.2} ms",
        fused * 1e3,
        cand * 1e3
    );
    let l = rand(&[256, 49152]);
    let tg: Vec<u32> = (0..256u32).map(|i| i * 97 % 49152).collect();
    let tgt = Tensor::new(tg.as_slice(), &Device::Cpu).unwrap();
    let fused = time("fused", &|| {
        ops::logprobs_entropy(l.as_tensor(), &tg)
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap()
    });
    let cand = time("candle", &|| {
        let xs = l.as_tensor();
        let m = xs.max_keepdim(D::Minus1).unwrap().detach();
        let sh = xs.broadcast_sub(&m).unwrap();
        let lse = sh
            .exp()
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .log()
            .unwrap();
        let picked = sh.gather(&tgt.unsqueeze(1).unwrap(), 1).unwrap();
        let lp = sh.detach().broadcast_sub(&lse.detach()).unwrap();
        let _ent = (lp.exp().unwrap() * &lp).unwrap().sum(D::Minus1).unwrap();
        (picked - lse).unwrap()
    });
    println!(
        "logprobs [256,49152]: fused {:.1} ms, candle {:.1} ms",
        fused * 1e3,
        cand * 1e3
    );
}
