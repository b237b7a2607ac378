//! `ops::lora_merge` (what `lora::merged_weight` runs on f32 CPU tensors): the merged weight
//! `W + (s·B)·A` and the gradients of `A` and `B` through it equal the composition of candle
//! ops it replaces bit for bit, and the frozen `W` gets no gradient. The op is
//! differentiated through a product with a random matrix and through a fused `linear`.

use candle_core::{Device, Tensor, Var};
use model::ops;

mod common;
use common::{host, Lcg};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn lora_merge_equals_the_composition_bit_for_bit() {
    let dev = Device::Cpu;
    let mut rng = Lcg(11);
    for (out, inp, r, scale) in [(40, 24, 4, 2.0), (33, 70, 16, 0.5), (8, 8, 1, 1.0)] {
        let tag = format!("[{out}, {inp}] r={r} s={scale}");
        let w = Tensor::from_vec(rng.vec(out * inp, 0.5), (out, inp), &dev).unwrap();
        let a = Var::from_tensor(&Tensor::from_vec(rng.vec(r * inp, 0.3), (r, inp), &dev).unwrap())
            .unwrap();
        let b = Var::from_tensor(&Tensor::from_vec(rng.vec(out * r, 0.3), (out, r), &dev).unwrap())
            .unwrap();
        let wv = Var::from_tensor(&w).unwrap();
        let x = Tensor::from_vec(rng.vec(6 * inp, 1.0), (6, inp), &dev).unwrap();
        let rm = Tensor::from_vec(rng.vec(out * inp, 1.0), (out, inp), &dev).unwrap();
        // The composition, with W a Var too (so candle computes its gradient).
        let comp =
            |w: &Tensor| (w + (b.as_tensor() * scale).unwrap().matmul(a.as_tensor())).unwrap();
        let fused = ops::lora_merge(&w, a.as_tensor(), b.as_tensor(), scale).unwrap();
        let want = comp(wv.as_tensor());
        assert_eq!(
            bits(&host(&fused)),
            bits(&host(&want)),
            "{tag}: merged weight"
        );
        let merged = model::lora::merged_weight(&w, a.as_tensor(), b.as_tensor(), scale).unwrap();
        assert_eq!(
            bits(&host(&merged)),
            bits(&host(&want)),
            "{tag}: merged_weight"
        );
        for via in ["product", "linear"] {
            let loss = |m: &Tensor| match via {
                "product" => (m * &rm).unwrap().sum_all().unwrap(),
                _ => ops::linear(&x, m)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap(),
            };
            let gf = loss(&fused).backward().unwrap();
            let gc = loss(&want).backward().unwrap();
            for (n, v) in [("A", &a), ("B", &b)] {
                let (f, c) = (host(gf.get(v).unwrap()), host(gc.get(v).unwrap()));
                assert_eq!(bits(&f), bits(&c), "{tag} via {via}: gradient of {n}");
                assert!(
                    f.iter().any(|&x| x != 0.0),
                    "{tag} via {via}: zero gradient"
                );
            }
            assert!(
                gc.get(&wv).is_some(),
                "{tag}: the composition's W has a gradient"
            );
            assert!(
                gf.get(&w).is_none(),
                "{tag}: the fused op's W has a gradient"
            );
        }
    }
}
