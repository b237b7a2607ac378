//! Config parsing (transformers 4 and 5 styles, rope scaling, eos lists), the round trip
//! through `to_hf_json`, and error reporting for bad configs and bad weights.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use model::{Arch, Config, Error, Model};
use serde_json::{json, Value};

fn fixture_config_value(name: &str) -> Value {
    testdata::read_json(&testdata::model_dir(name).join("config.json"))
}

#[test]
fn fixture_configs_resolve() {
    for name in MODELS {
        let fx = load(name);
        let s = &fx.expected["shape"];
        let c = &fx.cfg;
        assert_eq!(c.head_dim as u64, s["head_dim"].as_u64().unwrap(), "{name}");
        assert_eq!(c.rope_theta, s["rope_theta"].as_f64().unwrap(), "{name}");
        assert_eq!(
            c.rms_norm_eps,
            s["rms_norm_eps"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(
            c.tie_word_embeddings,
            s["tie_word_embeddings"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(c.attention_bias, s["qkv_bias"].as_bool().unwrap(), "{name}");
        assert_eq!(c.qk_norm, s["qk_norm"].as_bool().unwrap(), "{name}");
        assert_eq!(
            c.num_key_value_heads as u64,
            s["num_key_value_heads"].as_u64().unwrap()
        );
        assert_eq!(c.eos_token_ids, vec![2]);
        assert_eq!(c.pad_token_id, Some(0));
        assert_eq!(c.rope_scaling, None);
        // Round trip through the transformers-4 style writer.
        let v = c.to_hf_json();
        assert!(v.get("rope_theta").is_some() && v.get("torch_dtype").is_some());
        assert_eq!(
            &Config::from_hf_value(&v, Path::new("x.json")).unwrap(),
            c,
            "{name}"
        );
    }
    for name in MODELS {
        let fx = load(name);
        let want = match fx.expected["model_type"].as_str().unwrap() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            other => panic!("{name}: model_type {other:?} in expected.json"),
        };
        assert_eq!(fx.cfg.arch, want, "{name}");
    }
}

fn smollm_like() -> Value {
    // Transformers-4 style, as on the hub (SmolLM2-135M-Instruct's config.json keys).
    json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "rope_theta": 100000,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
        "max_position_embeddings": 8192, "bos_token_id": 1, "eos_token_id": [2, 0],
        "rope_scaling": null, "hidden_act": "silu"
    })
}

#[test]
fn transformers4_style_and_lists() {
    let c = Config::from_hf_value(&smollm_like(), Path::new("c.json")).unwrap();
    assert_eq!(c.arch, Arch::Llama);
    assert_eq!(c.rope_theta, 100000.0);
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.eos_token_ids, vec![2, 0]);
    assert!(!c.attention_bias && !c.qk_norm);
    assert_eq!(c.num_parameters(), 134_515_008);
    // Qwen2 always has biases, even without `attention_bias`.
    let mut q2 = smollm_like();
    q2["architectures"] = json!(["Qwen2ForCausalLM"]);
    q2["model_type"] = json!("qwen2");
    assert!(
        Config::from_hf_value(&q2, Path::new("c.json"))
            .unwrap()
            .attention_bias
    );
    // model_type alone is enough.
    let mut mt = smollm_like();
    mt.as_object_mut().unwrap().remove("architectures");
    mt["model_type"] = json!("qwen3");
    mt["head_dim"] = json!(128);
    let c3 = Config::from_hf_value(&mt, Path::new("c.json")).unwrap();
    assert_eq!((c3.arch, c3.head_dim, c3.qk_norm), (Arch::Qwen3, 128, true));
    // transformers-5 `rope_parameters` wins over nothing; default theta otherwise.
    let mut t5 = smollm_like();
    t5.as_object_mut().unwrap().remove("rope_theta");
    t5["rope_parameters"] = json!({"rope_theta": 5e5, "rope_type": "default"});
    assert_eq!(
        Config::from_hf_value(&t5, Path::new("c.json"))
            .unwrap()
            .rope_theta,
        5e5
    );
}

#[test]
fn rope_scaling_frequencies() {
    let mut v = smollm_like();
    v["rope_scaling"] = json!({"type": "linear", "factor": 4.0});
    let c = Config::from_hf_value(&v, Path::new("c.json")).unwrap();
    let plain = Config::from_hf_value(&smollm_like(), Path::new("c.json")).unwrap();
    let (a, _) = c.rope_inv_freq();
    let (b, _) = plain.rope_inv_freq();
    for (x, y) in a.iter().zip(&b) {
        assert!((x * 4.0 - y).abs() <= 1e-6 * y.abs());
    }
    // Llama 3.1 style: high frequencies kept, low ones divided by factor, smooth between.
    v["rope_theta"] = json!(500000.0);
    v["head_dim"] = json!(128);
    v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
    let c = Config::from_hf_value(&v, Path::new("c.json")).unwrap();
    assert_eq!(c.rope_scaling.as_ref().unwrap().rope_type, "llama3");
    let mut pv = v.clone();
    pv["rope_scaling"] = Value::Null;
    let (s, _) = c.rope_inv_freq();
    let (p, _) = Config::from_hf_value(&pv, Path::new("c.json"))
        .unwrap()
        .rope_inv_freq();
    assert_eq!(s.len(), 64);
    assert_eq!(s[0], p[0]);
    assert!((s[63] * 8.0 - p[63]).abs() < 1e-6 * p[63]);
    let medium: Vec<usize> = (0..64)
        .filter(|&i| s[i] < p[i] && s[i] * 8.0 > p[i] * 1.0001)
        .collect();
    assert!(!medium.is_empty(), "some frequencies are smoothed");
    // yarn parses and yields an attention factor > 1.
    v["rope_scaling"] =
        json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048});
    let (_, ms) = Config::from_hf_value(&v, Path::new("c.json"))
        .unwrap()
        .rope_inv_freq();
    assert!(ms > 1.0);
    // An unknown type is an error naming it.
    v["rope_scaling"] = json!({"rope_type": "weird", "factor": 4.0});
    let e = Config::from_hf_value(&v, Path::new("c.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("weird"), "{e}");
}

#[test]
fn unknown_architecture() {
    let mut v = smollm_like();
    v["architectures"] = json!(["GPT2LMHeadModel"]);
    v["model_type"] = json!("gpt2");
    match Config::from_hf_value(&v, Path::new("c.json")) {
        Err(Error::UnknownArch(a)) => assert_eq!(a, "GPT2LMHeadModel"),
        other => panic!("expected UnknownArch, got {other:?}"),
    }
}

#[test]
fn missing_key_names_file_and_key() {
    let mut v = fixture_config_value("qwen3-tiny");
    v.as_object_mut().unwrap().remove("intermediate_size");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.json");
    std::fs::write(&p, v.to_string()).unwrap();
    match Config::from_hf_json(&p) {
        Err(e @ Error::BadFile { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("intermediate_size") && s.contains("config.json"),
                "{s}"
            );
        }
        other => panic!("expected BadFile, got {other:?}"),
    }
    std::fs::write(&p, "{ not json").unwrap();
    assert!(matches!(
        Config::from_hf_json(&p),
        Err(Error::BadFile { .. })
    ));
    assert!(matches!(
        Config::from_hf_json(&dir.path().join("absent.json")),
        Err(Error::Io(_))
    ));
}

#[test]
fn bad_weights_are_named() {
    let dev = Device::Cpu;
    for name in MODELS {
        let fx = load(name);
        let c = &fx.cfg;
        // Wrong shape.
        let mut w = fx.weights.clone();
        let bad = "model.layers.1.mlp.up_proj.weight";
        w.insert(
            bad.into(),
            Tensor::zeros((c.intermediate_size + 1, c.hidden_size), DType::F32, &dev).unwrap(),
        );
        match Model::from_weights(c, &w, DType::F32, &dev) {
            Err(Error::Weight { name: n, .. }) => assert_eq!(n, bad, "{name}"),
            other => panic!("{name}: expected Weight error, got {other:?}"),
        }
        // A missing tensor the config asks for: the final norm always, a q/k/v bias when the
        // config has them, lm_head when the embeddings are untied.
        let mut missing = vec!["model.norm.weight"];
        if c.attention_bias {
            missing.push("model.layers.0.self_attn.v_proj.bias");
        }
        if !c.tie_word_embeddings {
            missing.push("lm_head.weight");
        }
        if c.qk_norm {
            missing.push("model.layers.0.self_attn.k_norm.weight");
        }
        for m in missing {
            let mut w = fx.weights.clone();
            assert!(w.remove(m).is_some(), "{name}: the fixture has no {m}");
            match Model::from_weights(c, &w, DType::F32, &dev) {
                Err(Error::Weight { name: n, msg }) => {
                    assert_eq!(n, m, "{name}");
                    assert!(msg.contains("missing"), "{name}: {msg}");
                }
                other => panic!("{name}: expected Weight error for {m}, got {other:?}"),
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let fx = load("llama-tiny");
    let (max, vocab) = (fx.cfg.max_position_embeddings, fx.cfg.vocab_size as u32);
    let m = fx.model(DType::F32);
    let too_long = vec![3u32; max + 1];
    match m.forward(&row_ids(&too_long), None) {
        Err(Error::TooLong { len, max: mx }) => assert_eq!((len, mx), (max + 1, max)),
        other => panic!("expected TooLong, got {other:?}"),
    }
    assert!(matches!(
        m.forward(&row_ids(&[1, vocab + 88]), None),
        Err(Error::Invalid(_))
    ));
    let r = model::logprobs::score(&m, &[(vec![1; max - 56], vec![2; 100])], 1);
    assert!(matches!(r, Err(Error::TooLong { .. })));
    let mut c = m.new_cache();
    let r = m.forward_packed(&mut [model::SeqInput {
        tokens: &[1, vocab + 1],
        cache: &mut c,
    }]);
    assert!(matches!(r, Err(Error::Invalid(_))));
    assert_eq!(c.len(), 0);
}

/// An adapter folder whose `base_model_name_or_path` points back at itself is refused with
/// an error naming its config, instead of recursing without end.
#[test]
fn self_referencing_adapter_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
            "base_model_name_or_path": "."}"#,
    )
    .unwrap();
    let err = model::load(dir.path().to_str().unwrap(), &model::LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapter_config.json"), "{err}");
    assert!(err.contains("point back"), "{err}");
}
