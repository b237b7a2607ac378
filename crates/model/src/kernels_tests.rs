//! Tests of `kernels.rs`.

use super::*;

/// The kernels this CPU can run; every test below covers each of them, not only the one
/// the CPU picks. Under CI on x86-64 at least AVX2 must be there (else the SIMD paths
/// would go untested without anyone noticing).
fn kernels() -> Vec<Kernel> {
    let ks: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.supported()).collect();
    assert!(ks.contains(&Kernel::Generic));
    #[cfg(target_arch = "x86_64")]
    if std::env::var("CI").is_ok_and(|v| v != "false" && v != "0") {
        assert!(ks.contains(&Kernel::Avx2), "CI runner without AVX2: {ks:?}");
    }
    eprintln!("kernel paths tested: {ks:?}");
    ks
}

#[test]
fn kernel_selection_is_explicit_and_checked() {
    assert_eq!(Kernel::current(), Kernel::best());
    assert!(Kernel::best().supported());
    for k in Kernel::ALL {
        if !k.supported() {
            assert!(
                !Kernel::select(Some(k)),
                "{k:?} selected on a CPU without it"
            );
            assert_eq!(Kernel::current(), Kernel::best());
        }
    }
}

#[test]
fn every_kernel_matches_naive_on_ragged_sizes() {
    for kern in kernels() {
        ragged_sizes_match_naive(kern);
    }
}

/// `kern` against a float64 reference on ragged shapes (tails of every tile size).
fn ragged_sizes_match_naive(kern: Kernel) {
    for &(m, k, n) in &[
        (1, 8, 1),
        (3, 13, 5),
        (7, 64, 37),
        (32, 40, 70),
        (2, 3, 4),
        (65, 17, 97),
        (4, 1, 6),
        (5, 129, 49),
    ] {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
            .collect();
        let got = matmul_nt_multi_with(kern, &x, m, k, &[(WSrc::F32(&w), n)]).remove(0);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|c| x[i * k + c] as f64 * w[j * k + c] as f64)
                    .sum();
                let g = got[i * n + j] as f64;
                assert!(
                    (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{kern:?} ({m},{k},{n}) [{i},{j}]: {g} vs {want}"
                );
            }
        }
    }
}

/// Products with bf16 weight rows, on every kernel path (each widens bf16 with its own CPU
/// features), against a float64 product of the bf16-rounded weights; several products in
/// one pass, mixed with f32 weights, on ragged shapes.
#[test]
fn every_kernel_multiplies_bf16_rows_like_the_rounded_weights() {
    use candle_core::{Device, Tensor};
    for kern in kernels() {
        for &(m, k, n) in &[
            (1, 8, 1),
            (3, 13, 5),
            (7, 64, 37),
            (33, 40, 70),
            (65, 129, 97),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            // Weights with more mantissa than bf16 keeps, so the rounding matters.
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0 + (i % 7) as f32 * 1.37e-4)
                .collect();
            let t = Tensor::from_slice(&w, (n, k), &Device::Cpu).unwrap();
            let c = CompactMatrix::bf16_of(&t).unwrap();
            let wr: Vec<f64> = w
                .iter()
                .map(|&v| half::bf16::from_f32(v).to_f32() as f64)
                .collect();
            assert!(wr.iter().zip(&w).any(|(a, &b)| *a != b as f64));
            // Whether some product tells the rounded weights from the f32 ones.
            let mut told_apart = false;
            let got = matmul_nt_multi_with(
                kern,
                &x,
                m,
                k,
                &[(WSrc::Compact(&c), n), (WSrc::F32(&w), n)],
            );
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|cc| x[i * k + cc] as f64 * wr[j * k + cc]).sum();
                    let g = got[0][i * n + j] as f64;
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{kern:?} ({m},{k},{n}) [{i},{j}]: {g} vs {want}"
                    );
                    let exact: f64 = (0..k)
                        .map(|cc| x[i * k + cc] as f64 * w[j * k + cc] as f64)
                        .sum();
                    told_apart |=
                        (got[0][i * n + j] as f64 - exact).abs() > 1e-4 * (1.0 + exact.abs());
                    let g = got[1][i * n + j] as f64;
                    assert!((g - exact).abs() <= 1e-4 * (1.0 + exact.abs()));
                }
            }
            assert!(
                told_apart || k < 64,
                "{kern:?} ({m},{k},{n}): bf16 rounding not seen"
            );
        }
    }
}

#[test]
fn kernels_agree_with_each_other_closely() {
    let (m, k, n) = (9, 300, 53);
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
        .collect();
    let generic = matmul_nt_multi_with(Kernel::Generic, &x, m, k, &[(WSrc::F32(&w), n)]);
    for kern in kernels() {
        let got = matmul_nt_multi_with(kern, &x, m, k, &[(WSrc::F32(&w), n)]);
        for (a, b) in got[0].iter().zip(&generic[0]) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{kern:?}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn multi_product_equals_separate_products() {
    let (m, k) = (5, 24);
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
        .collect();
    let w1: Vec<f32> = (0..70 * k)
        .map(|i| ((i * 11 % 17) as f32 - 8.0) / 7.0)
        .collect();
    let w2: Vec<f32> = (0..9 * k)
        .map(|i| ((i * 5 % 19) as f32 - 9.0) / 6.0)
        .collect();
    let both = matmul_nt_multi(&x, m, k, &[(WSrc::F32(&w1), 70), (WSrc::F32(&w2), 9)]);
    assert_eq!(both[0], matmul_nt(&x, m, k, &w1, 70));
    assert_eq!(both[1], matmul_nt(&x, m, k, &w2, 9));
}

/// attend_group, on each path the CPU can run, against a float64 softmax(q·kᵀ·scale)·v,
/// with GQA and a ragged head_dim.
#[test]
fn attention_matches_reference_on_every_path() {
    let mut paths = vec![false];
    if Kernel::Avx2.supported() {
        paths.push(true);
    }
    for avx2 in paths {
        attention_matches_reference(avx2);
    }
}

fn attention_matches_reference(avx2: bool) {
    for &(d, rep, past, m) in &[
        (64, 3, 37, 1),
        (64, 1, 0, 5),
        (20, 2, 9, 3),
        (128, 4, 130, 2),
    ] {
        let nkv = 2;
        let g = 1; // the KV head under test: its query heads sit after head 0's
        let q_stride = nkv * rep * d;
        let len = past + m;
        let f = |i: usize, a: usize, b: usize| ((i * a % b) as f32 - (b / 2) as f32) / b as f32;
        let q: Vec<f32> = (0..m * q_stride).map(|i| 3.0 * f(i, 31, 23)).collect();
        let k: Vec<f32> = (0..len * d).map(|i| 3.0 * f(i, 17, 29)).collect();
        let v: Vec<f32> = (0..len * d).map(|i| f(i, 13, 31)).collect();
        let mut out = vec![f32::NAN; m * rep * d];
        let scale = 1.0 / (d as f32).sqrt();
        let q_off = g * rep * d;
        attend_group_with(
            avx2, &q, &mut out, m, q_stride, q_off, rep, d, &k, &v, past, scale,
        );
        for i in 0..m {
            for h in 0..rep {
                let qo = i * q_stride + q_off + h * d;
                let upto = past + i + 1;
                let sc: Vec<f64> = (0..upto)
                    .map(|t| {
                        (0..d)
                            .map(|c| q[qo + c] as f64 * k[t * d + c] as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    let want: f64 = (0..upto).map(|t| e[t] / z * v[t * d + c] as f64).sum();
                    let got = out[(i * rep + h) * d + c] as f64;
                    assert!(
                        (got - want).abs() <= 1e-5,
                        "avx2={avx2} d={d} rep={rep} past={past} row {i} head {h} col {c}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
