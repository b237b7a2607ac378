//! Fuzz-style robustness of model loading: seeded random corruptions of a GGUF file, a
//! safetensors file, a `config.json` and a `tokenizer.json`, each run through `rzero score`,
//! must end with a result or an `error: ...` message and exit code 1 — never a panic
//! (exit 101) or an abort (a signal).

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use model::Config;
use serde_json::Value;

/// xorshift64*: a seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture() -> PathBuf {
    testdata::model_dir("llama-tiny")
}

/// A copy of the fixture folder (writable).
fn copy_model(dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(fixture().join(f), dst.join(f)).unwrap();
    }
}

/// Runs `rzero score` on `model`; panics (fails the test) on a panic or an abort. Returns
/// whether it reported an error.
fn score(model: &Path, input: &Path, what: &str) -> bool {
    let o = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .env("RZERO_LOG", "error")
        .env("RUST_BACKTRACE", "0")
        .args(["score", "--model"])
        .arg(model)
        .arg("--input")
        .arg(input)
        .output()
        .expect("runs rzero");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: rzero panicked:\n{err}");
    match o.status.code() {
        Some(0) => false,
        Some(1) => {
            assert!(
                err.contains("error: "),
                "{what}: exit 1 without a message:\n{err}"
            );
            true
        }
        other => panic!("{what}: rzero ended with {other:?} (abort or signal):\n{err}"),
    }
}

fn input(dir: &Path) -> PathBuf {
    let p = dir.join("in.jsonl");
    std::fs::write(&p, "{\"prompt\": \"1 2 3\", \"completion\": \" 4 5\"}\n").unwrap();
    p
}

/// Byte-level corruptions: flipped bytes (mostly in the first `head` bytes, where the
/// structure is), a truncation, or an inserted run of random bytes.
fn corrupt_bytes(rng: &mut Rng, bytes: &[u8], head: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    match rng.below(4) {
        0 => {
            let cut = rng.below(b.len());
            b.truncate(cut);
        }
        1 => {
            let at = rng.below(b.len());
            let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            b.splice(at..at, junk);
        }
        _ => {
            let span = head.min(b.len());
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(span);
                b[i] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
        }
    }
    b
}

/// A wild value for a JSON number, string or anything.
fn wild(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::from(0),
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => serde_json::from_str("1e300").unwrap(),
        4 => Value::from(1u64 << 40),
        5 => Value::Null,
        6 => Value::from("x"),
        7 => Value::from(vec![Value::from(1)]),
        8 => Value::from(0.5),
        _ => Value::from(3),
    }
}

/// Replaces one random leaf of `v` (or deletes its key) with a wild value.
fn mutate(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            let child = m.get_mut(k).unwrap();
            let leafish = !(child.is_object() || child.is_array()) || rng.below(4) == 0;
            if leafish {
                if rng.below(5) == 0 {
                    m.remove(k);
                } else {
                    *child = wild(rng);
                }
            } else {
                mutate(rng, child);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            if rng.below(3) == 0 {
                a[i] = wild(rng);
            } else {
                mutate(rng, &mut a[i]);
            }
        }
        other => *other = wild(rng),
    }
}

fn corrupt_json(rng: &mut Rng, text: &str) -> Vec<u8> {
    if rng.below(4) == 0 {
        return corrupt_bytes(rng, text.as_bytes(), text.len());
    }
    let mut v: Value = serde_json::from_str(text).unwrap();
    for _ in 0..1 + rng.below(2) {
        mutate(rng, &mut v);
    }
    serde_json::to_vec(&v).unwrap()
}

const ROUNDS: usize = 24;

#[test]
fn corrupted_config_json_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    copy_model(&m);
    let inp = input(tmp.path());
    assert!(
        !score(&m, &inp, "intact model"),
        "the intact model must score"
    );
    let orig = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    let mut rng = Rng(0x5EED_0001);
    let mut errors = 0;
    for round in 0..ROUNDS {
        std::fs::write(m.join("config.json"), corrupt_json(&mut rng, &orig)).unwrap();
        errors += usize::from(score(&m, &inp, &format!("config.json round {round}")));
    }
    // Sanity: the corruptions do reach the loader.
    assert!(
        errors > ROUNDS / 4,
        "only {errors} of {ROUNDS} corruptions failed"
    );
    // The two known divisions by zero of a config, named.
    for (k, v) in [("num_attention_heads", 0), ("num_key_value_heads", 0)] {
        let mut c: Value = serde_json::from_str(&orig).unwrap();
        c[k] = Value::from(v);
        std::fs::write(m.join("config.json"), c.to_string()).unwrap();
        assert!(
            score(&m, &inp, &format!("{k} = {v}")),
            "{k} = {v} must fail"
        );
    }
}

#[test]
fn corrupted_tokenizer_json_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    copy_model(&m);
    let inp = input(tmp.path());
    let orig = std::fs::read_to_string(fixture().join("tokenizer.json")).unwrap();
    let mut rng = Rng(0x5EED_0002);
    let mut errors = 0;
    for round in 0..ROUNDS {
        std::fs::write(m.join("tokenizer.json"), corrupt_json(&mut rng, &orig)).unwrap();
        errors += usize::from(score(&m, &inp, &format!("tokenizer.json round {round}")));
    }
    assert!(errors > 0, "no corruption of tokenizer.json failed");
}

#[test]
fn corrupted_safetensors_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    copy_model(&m);
    let inp = input(tmp.path());
    let orig = std::fs::read(fixture().join("model.safetensors")).unwrap();
    // The header: 8 bytes of length, then JSON.
    let head = 8 + u64::from_le_bytes(orig[..8].try_into().unwrap()) as usize;
    let mut rng = Rng(0x5EED_0003);
    let mut errors = 0;
    for round in 0..ROUNDS {
        std::fs::write(
            m.join("model.safetensors"),
            corrupt_bytes(&mut rng, &orig, head),
        )
        .unwrap();
        errors += usize::from(score(&m, &inp, &format!("safetensors round {round}")));
    }
    assert!(
        errors > ROUNDS / 4,
        "only {errors} of {ROUNDS} corruptions failed"
    );
}

/// HF name -> GGUF name.
fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, rest) = rest.split_once('.').unwrap();
    let (module, kind) = rest.rsplit_once('.').unwrap();
    let g = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        other => panic!("unexpected {other}"),
    };
    format!("blk.{layer}.{g}.{kind}")
}

/// The llama-tiny fixture as a GGUF (F32 tensors; q/k rows are left unpermuted, which
/// changes the numbers, not the structure), with the metadata value `override_` replaced.
fn write_gguf(out: &Path, override_: Option<(&str, gguf_file::Value)>) {
    use gguf_file::Value as V;
    let src = fixture();
    let cfg = Config::from_hf_json(&src.join("config.json")).unwrap();
    let weights =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let tensors: Vec<(String, QTensor)> = weights
        .iter()
        .map(|(n, t)| (gguf_name(n), QTensor::quantize(t, GgmlDType::F32).unwrap()))
        .collect();
    let tj: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tj["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (tok, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = tok.clone();
    }
    let merges: Vec<V> = tj["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            V::String(format!(
                "{} {}",
                m[0].as_str().unwrap(),
                m[1].as_str().unwrap()
            ))
        })
        .collect();
    let u = |x: usize| V::U32(x as u32);
    let mut md: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String("llama".into())),
        ("general.alignment".into(), V::U32(32)),
        (
            "llama.context_length".into(),
            u(cfg.max_position_embeddings),
        ),
        ("llama.embedding_length".into(), u(cfg.hidden_size)),
        ("llama.block_count".into(), u(cfg.num_hidden_layers)),
        ("llama.feed_forward_length".into(), u(cfg.intermediate_size)),
        (
            "llama.attention.head_count".into(),
            u(cfg.num_attention_heads),
        ),
        (
            "llama.attention.head_count_kv".into(),
            u(cfg.num_key_value_heads),
        ),
        ("llama.attention.key_length".into(), u(cfg.head_dim)),
        ("llama.attention.value_length".into(), u(cfg.head_dim)),
        ("llama.rope.freq_base".into(), V::F32(cfg.rope_theta as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            V::F32(cfg.rms_norm_eps as f32),
        ),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("smollm".into())),
        (
            "tokenizer.ggml.tokens".into(),
            V::Array(tokens.into_iter().map(V::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            V::Array((0..vocab.len()).map(|_| V::I32(1)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), V::Array(merges)),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(2)),
        ("tokenizer.ggml.padding_token_id".into(), V::U32(0)),
    ];
    if let Some((k, v)) = override_ {
        md.retain(|(name, _)| name != k);
        md.push((k.to_string(), v));
    }
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let mut f = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

#[test]
fn corrupted_gguf_never_panics() {
    use gguf_file::Value as V;
    let tmp = tempfile::tempdir().unwrap();
    let inp = input(tmp.path());
    let good = tmp.path().join("good.gguf");
    write_gguf(&good, None);
    assert!(
        !score(&good, &inp, "intact GGUF"),
        "the intact GGUF must score"
    );

    // general.alignment = 0 divided by zero inside candle.
    let p = tmp.path().join("align0.gguf");
    write_gguf(&p, Some(("general.alignment", V::U32(0))));
    assert!(score(&p, &inp, "alignment 0"), "alignment 0 must fail");
    // Structural metadata set to nonsense.
    for (k, v) in [
        ("general.alignment", V::U32(3)),
        ("llama.attention.head_count", V::U32(0)),
        ("llama.attention.head_count_kv", V::U32(0)),
        ("llama.embedding_length", V::U32(0)),
        ("llama.block_count", V::U32(u32::MAX)),
        ("llama.context_length", V::U32(0)),
        ("llama.attention.key_length", V::U32(0)),
        ("tokenizer.ggml.tokens", V::Array(Vec::new())),
        ("tokenizer.ggml.eos_token_id", V::U32(u32::MAX)),
    ] {
        let what = format!("{k} = {v:?}");
        let p = tmp.path().join("meta.gguf");
        write_gguf(&p, Some((k, v)));
        score(&p, &inp, &what);
    }

    let orig = std::fs::read(&good).unwrap();
    let mut rng = Rng(0x5EED_0004);
    let mut errors = 0;
    // The metadata and tensor table come first (a few kB of the tiny model's file).
    for round in 0..ROUNDS {
        let p = tmp.path().join(format!("fuzz{round}.gguf"));
        std::fs::write(&p, corrupt_bytes(&mut rng, &orig, 16 << 10)).unwrap();
        errors += usize::from(score(&p, &inp, &format!("GGUF round {round}")));
    }
    assert!(
        errors > ROUNDS / 4,
        "only {errors} of {ROUNDS} corruptions failed"
    );
}
