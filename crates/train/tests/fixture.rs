//! The GRPO step against PyTorch: `tests/fixtures/grpo/*.json` (R-Zero's EasyR1 loss run in
//! torch on the tiny fixture models; see that folder's README for how they were made).
//!
//! Checked per model: policy and reference log-probs, per-token ratio / loss / KL / clip flags
//! (through `train::loss`), and for each aggregation mode the loss terms and metrics, every
//! parameter's gradient norm, sampled gradient values before and after clipping, the clip
//! factor and the parameters after one AdamW step. Tolerances are the README's.

use candle_core::{DType, Device};
use serde_json::Value;
use train::loss::{kl_token, pg_token, LossParams};
use train::{Group, GrpoConfig, LossAgg, OptimKnobs, Response, Trainer};

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// Tracks the worst deviation of a family of checks and fails on any excess.
struct Worst {
    name: String,
    max: f64,
    fails: Vec<String>,
}

impl Worst {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            max: 0.0,
            fails: Vec::new(),
        }
    }
    /// |a − b| ≤ abs + rel·|b|.
    fn check(&mut self, what: &str, a: f64, b: f64, abs: f64, rel: f64) {
        let d = (a - b).abs();
        let scaled = d / (abs + rel * b.abs());
        self.max = self.max.max(d);
        if scaled.is_nan() || scaled > 1.0 {
            self.fails
                .push(format!("{what}: got {a}, want {b} (diff {d:e})"));
        }
    }
    fn finish(self, out: &mut Vec<String>) {
        eprintln!("  {:<40} max abs diff {:.3e}", self.name, self.max);
        out.extend(
            self.fails
                .into_iter()
                .map(|f| format!("{}: {f}", self.name)),
        );
    }
}

struct Fixture {
    j: Value,
    groups: Vec<Group>,
    lens: Vec<usize>,
}

fn load_fixture(name: &str) -> Fixture {
    let j = testdata::json(&format!("grpo/{name}.json"));
    let b = &j["batch"];
    let prompts: Vec<Vec<u32>> = b["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| usizes(p).into_iter().map(|x| x as u32).collect())
        .collect();
    let lens = usizes(&b["response_lengths"]);
    let gidx = usizes(&b["group_index"]);
    let rewards = f32s(&b["rewards"]);
    let mut groups: Vec<Group> = prompts
        .iter()
        .map(|p| Group {
            prompt: p.clone(),
            responses: Vec::new(),
        })
        .collect();
    for i in 0..lens.len() {
        let ids: Vec<u32> = usizes(&b["responses"][i])[..lens[i]]
            .iter()
            .map(|&x| x as u32)
            .collect();
        groups[gidx[i]].responses.push(Response {
            ids,
            reward: rewards[i],
            old_logprobs: Some(f32s(&j["logprobs"]["old"][i])[..lens[i]].to_vec()),
            ref_logprobs: Some(f32s(&j["logprobs"]["ref"][i])[..lens[i]].to_vec()),
            ..Default::default()
        });
    }
    Fixture { j, groups, lens }
}

fn run_model(name: &str) {
    eprintln!("== {name}");
    let fx = load_fixture(name);
    let j = &fx.j;
    let loaded = model::load(
        testdata::model_dir(name).to_str().unwrap(),
        &model::LoadOptions::default(),
    )
    .expect("load fixture model");
    let ref_w: model::Weights = candle_core::safetensors::load(
        testdata::path(&format!("grpo/{name}.ref_model.safetensors")),
        &Device::Cpu,
    )
    .expect("ref weights")
    .into_iter()
    .map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap()))
    .collect();
    let mut fails = Vec::new();

    // 1. Per-token math on the stored policy log-probs.
    let cfg0 = GrpoConfig::default();
    let lpar = LossParams::new(&cfg0);
    let adv = f32s(&j["advantages"]["per_sequence"]);
    let mut w = Worst::new("per-token ratio/pg_loss/kl");
    let mut flags = 0usize;
    let pt = &j["per_token"];
    for i in 0..fx.lens.len() {
        let pol = f32s(&j["logprobs"]["policy"][i]);
        let old = f32s(&j["logprobs"]["old"][i]);
        let rf = f32s(&j["logprobs"]["ref"][i]);
        for t in 0..fx.lens[i] {
            let p = pg_token(pol[t], old[t], adv[i], &lpar);
            let k = kl_token(pol[t], rf[t], 10.0);
            let r = f32s(&pt["ratio"][i])[t] as f64;
            w.check("ratio", p.ratio as f64, r, 0.0, 1e-4);
            let rc = f32s(&pt["clipped_ratio"][i])[t] as f64;
            w.check("clipped_ratio", p.clipped_ratio as f64, rc, 0.0, 1e-4);
            let l = f32s(&pt["pg_loss"][i])[t] as f64;
            w.check("pg_loss", p.loss as f64, l, 1e-4, 1e-4);
            let kv = f32s(&pt["kl"][i])[t] as f64;
            w.check("kl", k.kl as f64, kv, 1e-4, 1e-4);
            let hi = usizes(&pt["clip_higher"][i])[t] == 1;
            let lo = usizes(&pt["clip_lower"][i])[t] == 1;
            let kc = usizes(&pt["kl_clamped"][i])[t] == 1;
            if (p.clip_higher, p.clip_lower, k.clamped) != (hi, lo, kc) {
                flags += 1;
            }
            let region = pt["region"][i][t].as_str().unwrap();
            let no_grad = matches!(
                region,
                "clipped_high" | "clipped_low" | "dual_clipped" | "adv_zero"
            );
            if no_grad != (p.grad == 0.0) {
                fails.push(format!(
                    "seq {i} tok {t}: region {region} but pg grad {}",
                    p.grad
                ));
            }
        }
    }
    if flags > 0 {
        fails.push(format!("{flags} tokens with wrong clip/clamp flags"));
    }
    w.finish(&mut fails);

    // 2. Advantages.
    let mut w = Worst::new("advantages");
    for g in 0..fx.groups.len() {
        let r: Vec<f32> = fx.groups[g].responses.iter().map(|r| r.reward).collect();
        let a = train::advantages::group_advantages(&r, true, 1e-6).unwrap();
        let base: usize = fx.groups[..g].iter().map(|g| g.responses.len()).sum();
        for (k, a) in a.iter().enumerate() {
            w.check("A", *a as f64, adv[base + k] as f64, 1e-6, 0.0);
        }
    }
    w.finish(&mut fails);

    // 3. Log-probs of the policy and reference models.
    let mut cfg = GrpoConfig::default();
    cfg.optim.lr = 1e-3;
    let trainer = Trainer::new(
        cfg,
        &loaded.config,
        &loaded.weights,
        Some(&ref_w),
        &Device::Cpu,
    )
    .expect("trainer");
    let items: Vec<(Vec<u32>, Vec<u32>)> = fx
        .groups
        .iter()
        .flat_map(|g| {
            g.responses
                .iter()
                .map(|r| (g.prompt.clone(), r.ids.clone()))
        })
        .collect();
    let pol = trainer.policy_logprobs(&items).unwrap();
    let refl = model::logprobs::score(trainer.reference().unwrap(), &items, 8).unwrap();
    let mut w = Worst::new("policy/ref log-probs");
    for i in 0..items.len() {
        let want_p = f32s(&j["logprobs"]["policy"][i]);
        let want_r = f32s(&j["logprobs"]["ref"][i]);
        for t in 0..fx.lens[i] {
            w.check("policy logp", pol[i][t] as f64, want_p[t] as f64, 1e-4, 0.0);
            w.check("ref logp", refl[i][t] as f64, want_r[t] as f64, 1e-4, 0.0);
        }
    }
    w.finish(&mut fails);
    drop(trainer);

    // 4. Each aggregation mode: loss, metrics, gradients, clipping, one AdamW step. The
    // micro-batch sizes for the modes that do not depend on it differ from the fixture's
    // on purpose (the result must not change).
    for (mode, agg, mbs) in [
        ("token-mean", LossAgg::TokenMean, 3),
        ("microbatch2-token-mean", LossAgg::MicrobatchTokenMean, 2),
        ("seq-mean-token-mean", LossAgg::SeqMeanTokenMean, 5),
    ] {
        eprintln!(" mode {mode} (micro-batch {mbs})");
        let m = &j["modes"][mode];
        let cfg = GrpoConfig {
            optim: OptimKnobs {
                lr: 1e-3,
                micro_batch_size: mbs,
                ..Default::default()
            },
            loss_agg: agg,
            ..Default::default()
        };
        let mut tr = Trainer::new(
            cfg,
            &loaded.config,
            &loaded.weights,
            Some(&ref_w),
            &Device::Cpu,
        )
        .expect("trainer");
        let s = tr.compute_gradients(&fx.groups).expect("gradients");
        let mut w = Worst::new(&format!("{mode}: loss terms (rel)"));
        for (what, a, key) in [
            ("loss", s.loss, "loss"),
            ("pg_loss", s.pg_loss, "pg_loss"),
            ("kl_loss", s.kl, "kl_loss"),
        ] {
            let b = m[key].as_f64().unwrap();
            w.check(what, a, b, 0.0, 1e-5);
        }
        w.finish(&mut fails);
        let mut w = Worst::new(&format!("{mode}: metrics"));
        w.check(
            "pg_clipfrac_higher",
            s.pg_clipfrac_higher,
            m["pg_clipfrac_higher"].as_f64().unwrap(),
            1e-6,
            0.0,
        );
        w.check(
            "pg_clipfrac_lower",
            s.pg_clipfrac_lower,
            m["pg_clipfrac_lower"].as_f64().unwrap(),
            1e-6,
            0.0,
        );
        w.check("ppo_kl", s.ppo_kl, m["ppo_kl"].as_f64().unwrap(), 1e-4, 0.0);
        w.check(
            "entropy_loss",
            s.neg_logp,
            m["entropy_loss"].as_f64().unwrap(),
            1e-4,
            0.0,
        );
        w.finish(&mut fails);

        let mut w = Worst::new(&format!("{mode}: grad norms (rel)"));
        let mut total = 0f64;
        for (pname, want) in m["grad_l2_norm"].as_object().unwrap() {
            let g = tr
                .grad(pname)
                .unwrap_or_else(|| panic!("no parameter {pname}"));
            let n = g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
            total += n;
            w.check(pname, n.sqrt(), want.as_f64().unwrap(), 0.0, 1e-4);
        }
        assert_eq!(
            m["grad_l2_norm"].as_object().unwrap().len(),
            tr.layout().specs().len(),
            "every parameter has a reference gradient norm"
        );
        w.check(
            "global",
            total.sqrt(),
            m["grad_global_norm_pre_clip"].as_f64().unwrap(),
            0.0,
            1e-4,
        );
        w.finish(&mut fails);

        let coef_want = m["clip_coef"].as_f64().unwrap();
        let mut w = Worst::new(&format!("{mode}: grad values"));
        for (pname, sample) in m["grad_samples"].as_object().unwrap() {
            let g = tr.grad(pname).unwrap();
            for (k, want) in f32s(&sample["first8"]).iter().enumerate() {
                w.check(pname, g[k] as f64, *want as f64, 1e-6, 1e-3);
            }
            for (k, want) in f32s(&sample["clipped_first8"]).iter().enumerate() {
                w.check(pname, g[k] as f64 * coef_want, *want as f64, 1e-6, 1e-3);
            }
        }
        let row = m["embed_row"]["token_id"].as_u64().unwrap() as usize;
        let h = loaded.config.hidden_size;
        let ge = tr.grad("model.embed_tokens.weight").unwrap();
        for (k, want) in f32s(&m["embed_row"]["grad_first8"]).iter().enumerate() {
            w.check(
                "embed row",
                ge[row * h + k] as f64,
                *want as f64,
                1e-6,
                1e-3,
            );
        }
        w.finish(&mut fails);

        let u = tr.apply_update().expect("update");
        let mut w = Worst::new(&format!("{mode}: clip coef (rel)"));
        w.check("clip_coef", u.clip_coef, coef_want, 0.0, 1e-4);
        w.finish(&mut fails);
        let mut w = Worst::new(&format!("{mode}: after AdamW step"));
        for (pname, want) in m["after_step"].as_object().unwrap() {
            let spec = tr.layout().get(pname).unwrap();
            let p = &tr.master()[spec.offset..];
            for (k, want) in f32s(want).iter().enumerate() {
                w.check(pname, p[k] as f64, *want as f64, 2e-6, 0.0);
            }
        }
        let spec = tr.layout().get("model.embed_tokens.weight").unwrap();
        let p = &tr.master()[spec.offset + row * h..];
        for (k, want) in f32s(&m["after_step_embed_row_first8"]).iter().enumerate() {
            w.check("embed row", p[k] as f64, *want as f64, 2e-6, 0.0);
        }
        // The model itself sees the update.
        let live = tr.weights()["model.norm.weight"].to_vec1::<f32>().unwrap();
        let spec = tr.layout().get("model.norm.weight").unwrap();
        assert_eq!(&live[..], &tr.master()[spec.offset..spec.offset + spec.len]);
        w.finish(&mut fails);
    }
    assert!(
        fails.is_empty(),
        "{name}: {} failures:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

#[test]
fn qwen3_tiny_matches_pytorch() {
    run_model("qwen3-tiny");
}

#[test]
fn llama_tiny_matches_pytorch() {
    run_model("llama-tiny");
}
