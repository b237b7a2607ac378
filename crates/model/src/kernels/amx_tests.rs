//! Tests of `kernels/amx.rs`: every path this machine runs (AMX where the CPU and OS have
//! it, and always the rounded-operand f32 path) against an f64 product of the bf16-rounded
//! operands.

use super::*;

/// Deterministic uniform(-1, 1) values.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// The paths this machine runs; AMX must be among them wherever the CPU lists it.
fn paths() -> Vec<Bf16Path> {
    let ps: Vec<Bf16Path> = [Bf16Path::Amx, Bf16Path::Rounded]
        .into_iter()
        .filter(|p| p.supported())
        .collect();
    assert!(ps.contains(&Bf16Path::Rounded));
    eprintln!("bf16 product paths tested: {ps:?}");
    ps
}

#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_is_used_exactly_where_the_cpu_lists_it() {
    let info = std::fs::read_to_string("/proc/cpuinfo").expect("reading /proc/cpuinfo");
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .expect("a flags line in /proc/cpuinfo");
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    let listed = has("amx_tile") && has("amx_bf16");
    assert_eq!(amx_usable(), listed, "AMX detection against /proc/cpuinfo");
    assert_eq!(Bf16Path::best() == Bf16Path::Amx, listed);
}

#[test]
fn rounding_is_to_nearest_even_with_subnormals_flushed() {
    let r = |bits: u32| bf16_bits(f32::from_bits(bits));
    assert_eq!(r(0x3F80_0000), 0x3F80); // 1.0
    assert_eq!(r(0x3F80_7FFF), 0x3F80); // below half: down
    assert_eq!(r(0x3F80_8000), 0x3F80); // tie, even below
    assert_eq!(r(0x3F81_8000), 0x3F82); // tie, even above
    assert_eq!(r(0x3F80_8001), 0x3F81); // above half: up
    assert_eq!(r(0xBF80_8001), 0xBF81); // negative: by magnitude
    assert_eq!(r(0x7F7F_FFFF), 0x7F80); // the largest f32 rounds to +inf
    assert_eq!(r(0x7F80_0000), 0x7F80);
    assert_eq!(r(0xFF80_0000), 0xFF80);
    assert_eq!(r(0x0000_0001), 0x0000); // subnormals flush to a signed zero
    assert_eq!(r(0x807F_FFFF), 0x8000);
    assert_eq!(r(0x0080_0000), 0x0080); // the smallest normal stays
    assert!(f32::from_bits(u32::from(r(0x7FC0_0001)) << 16).is_nan());
    assert!(f32::from_bits(u32::from(r(0x7F80_0001)) << 16).is_nan()); // sNaN stays NaN
                                                                       // Every normal value as the `half` crate rounds it (to nearest, ties to even).
    let mut rng = Lcg(7);
    for _ in 0..100_000 {
        let bits = (rng.next().to_bits() ^ (rng.next().to_bits() << 7)) & 0x7FFF_FFFF;
        let x = f32::from_bits(bits | ((bits & 1) << 31));
        if !x.is_normal() {
            continue;
        }
        assert_eq!(bf16_bits(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
    }
}

/// The f64 product of the bf16-rounded operands and `Σ_p |a|·|b|` per element.
fn reference(a: Mat<'_>, b: Mat<'_>, m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0f64; m * n];
    let mut s = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let x = f64::from(round_bf16(a.at(i, p))) * f64::from(round_bf16(b.at(p, j)));
                c[i * n + j] += x;
                s[i * n + j] += x.abs();
            }
        }
    }
    (c, s)
}

/// `got` within `(k + 2)·2⁻²⁴·Σ|a||b|` of the reference, element by element: the bound of
/// an f32 sum of `k` exact products, in any order.
fn assert_within(what: &str, got: &[f32], want: &(Vec<f64>, Vec<f64>), k: usize) {
    let (c, s) = want;
    assert_eq!(got.len(), c.len(), "{what}: length");
    let u = (k as f64 + 2.0) * 2f64.powi(-24);
    for (i, (&g, (&w, &sa))) in got.iter().zip(c.iter().zip(s)).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= u * sa + 1e-30,
            "{what}: element {i}: {g} vs {w} (error {err:e} > {:e})",
            u * sa
        );
    }
}

#[test]
fn every_path_matches_f64_of_rounded_operands_on_ragged_shapes() {
    let mut rng = Lcg(1);
    for path in paths() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 1, 33),
            (3, 5, 7),
            (16, 16, 32),
            (33, 17, 65),
            (31, 47, 1),
            (64, 48, 97),
            (2, 600, 3),
            (129, 160, 31),
            (150, 170, 1100), // several tasks, several blocks of p
        ] {
            let x = rng.vec(m * k, 1.0);
            let w = rng.vec(n * k, 0.5);
            // x · wᵀ (the forward of a linear layer).
            let a = Mat {
                d: &x,
                rs: k,
                cs: 1,
            };
            let b = Mat {
                d: &w,
                rs: 1,
                cs: k,
            };
            let got = gemm_bf16_with(path, a, b, m, n, k);
            let what = format!("{path:?} x·wᵀ {m}x{n}x{k}");
            assert_within(&what, &got, &reference(a, b, m, n, k), k);
            // aᵀ (a read down its columns) times a row-major B with a wider row stride.
            let at = rng.vec(k * m, 1.0);
            let bw = rng.vec(k * (n + 3), 1.0);
            let a = Mat {
                d: &at,
                rs: 1,
                cs: m,
            };
            let b = Mat {
                d: &bw,
                rs: n + 3,
                cs: 1,
            };
            let got = gemm_bf16_with(path, a, b, m, n, k);
            let what = format!("{path:?} aᵀ·b {m}x{n}x{k}");
            assert_within(&what, &got, &reference(a, b, m, n, k), k);
        }
    }
}

#[test]
fn every_path_reads_any_strides() {
    // A and B both read at strides that are neither 1 nor a row length.
    let (m, n, k) = (19, 23, 45);
    let mut rng = Lcg(3);
    let ad = rng.vec(m * k * 6, 1.0);
    let bd = rng.vec(k * n * 6, 1.0);
    let a = Mat {
        d: &ad,
        rs: 2,
        cs: 2 * m + 1,
    };
    let b = Mat {
        d: &bd,
        rs: 3 * n,
        cs: 2,
    };
    let want = reference(a, b, m, n, k);
    for path in paths() {
        let got = gemm_bf16_with(path, a, b, m, n, k);
        assert_within(&format!("{path:?} strided"), &got, &want, k);
    }
}

#[test]
fn every_path_is_exact_where_the_sums_are() {
    // Small integers are bf16 values whose sums f32 holds exactly: the result must be the
    // exact product, bit for bit (any mix-up of rows, columns or pairs of p shows).
    let (m, n, k) = (70, 90, 300);
    let mut rng = Lcg(5);
    let int = |v: f32| (v * 8.0).round();
    let x: Vec<f32> = rng.vec(m * k, 1.0).into_iter().map(int).collect();
    let w: Vec<f32> = rng.vec(n * k, 1.0).into_iter().map(int).collect();
    let mut want = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..k).map(|p| x[i * k + p] * w[j * k + p]).sum();
        }
    }
    for path in paths() {
        let got = gemm_bf16_with(
            path,
            Mat {
                d: &x,
                rs: k,
                cs: 1,
            },
            Mat {
                d: &w,
                rs: 1,
                cs: k,
            },
            m,
            n,
            k,
        );
        assert_eq!(got, want, "{path:?}");
    }
}

#[test]
fn empty_products_are_zero() {
    for path in paths() {
        let x = [1f32; 6];
        let a = Mat {
            d: &x,
            rs: 3,
            cs: 1,
        };
        assert_eq!(gemm_bf16_with(path, a, a, 2, 2, 0), vec![0f32; 4]);
        assert!(gemm_bf16_with(path, a, a, 0, 3, 2).is_empty());
    }
}

#[test]
#[should_panic(expected = "operand sizes")]
fn short_operands_are_refused() {
    let x = [1f32; 5];
    let a = Mat {
        d: &x,
        rs: 3,
        cs: 1,
    };
    let _ = gemm_bf16_with(Bf16Path::Rounded, a, a, 2, 2, 3);
}
