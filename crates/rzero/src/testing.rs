//! Test support: a tiny "chain" model whose samples are mostly a well-formed answer.
//!
//! Random tiny models never write `<question>…</question> \boxed{…}`, so a loop test on
//! them would only ever see format failures and an empty dataset. The chain model is a real
//! Llama folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)
//! whose attention and MLP outputs are zero, so the residual stream is the current token's
//! embedding, and whose `lm_head` maps each token of a fixed response to its successor:
//!
//! `\n` → `<think>` → ` ok ` → `</think>` → `<question>` → ` What is 2 + 3? ` →
//! `</question>` → ` \boxed{` → (`5` | `6`) → `}` → `<|im_end|>`
//!
//! The response satisfies both roles' formats: the Challenger's (a question and a boxed
//! answer) and the Solver's (`<think>…</think> … \boxed{…}`). Logit margins are moderate,
//! so sampling at temperature 1 sometimes leaves the chain (format failures) and the boxed
//! answer is `5` or `6` with similar odds — rewards vary and GRPO has signal. Training
//! changes the weights like any other model.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

/// The response pieces, in chain order (each is one token).
pub const CHAIN: &[&str] = &[
    "<think>",
    " ok ",
    "</think>",
    "<question>",
    " What is 2 + 3? ",
    "</question>",
    " \\boxed{",
    "5",
    "}",
];

/// Shapes of the chain model: the hidden size is the vocabulary size (identity embedding).
const N_LAYERS: usize = 1;
const HEADS: usize = 4;
const INTER: usize = 16;

/// Writes the chain model into `dir` (created). Returns the vocabulary size.
pub fn write_chain_model(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let (tok, vocab_size) = chain_tokenizer()?;
    std::fs::write(
        dir.join("tokenizer.json"),
        tok.to_string(false).map_err(|e| err(&e))?,
    )?;
    let succ = chain_successors(&tok)?;
    write_chain_weights(dir, vocab_size, &succ)?;
    write_chain_configs(dir, vocab_size)?;
    Ok(vocab_size)
}

fn err(e: &dyn std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The tokenizer: specials, then the 256 byte-level symbols, then the chain pieces, padded
/// to a multiple of 8 with unused special tokens. Returns it with the vocabulary size.
fn chain_tokenizer() -> std::io::Result<(tokenizers::Tokenizer, usize)> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, Tokenizer};

    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for (i, s) in specials.iter().enumerate() {
        vocab.insert((*s).to_string(), i as u32);
    }
    for c in &alphabet {
        let id = vocab.len() as u32;
        vocab.insert(c.to_string(), id);
    }
    let bpe = BPE::builder()
        .vocab_and_merges(
            vocab
                .clone()
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            vec![],
        )
        .build()
        .map_err(|e| err(&e))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.add_special_tokens(specials.map(|s| AddedToken::from(s, true)))
        .map_err(|e| err(&e))?;
    let pieces: Vec<AddedToken> = CHAIN
        .iter()
        .filter(|p| p.chars().count() > 1)
        .map(|p| AddedToken::from(*p, false))
        .collect();
    tok.add_tokens(pieces).map_err(|e| err(&e))?;
    // pad the vocabulary to a multiple of 8 with unused special tokens, so every id the
    // model can emit decodes
    let n_tokens = tok.get_vocab_size(true);
    let vocab_size = n_tokens.div_ceil(8) * 8;
    let pads: Vec<AddedToken> = (n_tokens..vocab_size)
        .map(|i| AddedToken::from(format!("<|unused_{i}|>"), true))
        .collect();
    tok.add_special_tokens(pads).map_err(|e| err(&e))?;
    Ok((tok, vocab_size))
}

/// The successor table of the chain: (token, next token, logit weight).
fn chain_successors(tok: &tokenizers::Tokenizer) -> std::io::Result<Vec<(u32, u32, f32)>> {
    let id = |s: &str| -> std::io::Result<u32> {
        tok.token_to_id(s)
            .or_else(|| {
                // single characters are byte-level symbols
                let enc = tok.encode(s, false).ok()?;
                (enc.get_ids().len() == 1).then(|| enc.get_ids()[0])
            })
            .ok_or_else(|| std::io::Error::other(format!("no single token for {s:?}")))
    };
    let mut succ: Vec<(u32, u32, f32)> = Vec::new();
    let newline = id("\n")?;
    let mut prev = newline;
    for p in CHAIN {
        let t = id(p)?;
        succ.push((prev, t, 1.0));
        prev = t;
    }
    succ.push((prev, id("<|im_end|>")?, 1.0));
    // the answer: `5` or `6` after ` \boxed{`, `6` then continues like `5`
    let boxed = id(" \\boxed{")?;
    let six = id("6")?;
    succ.push((boxed, six, 0.97));
    succ.push((six, id("}")?, 1.0));
    Ok(succ)
}

/// `model.safetensors`. Embedding = identity (token t -> e_t); after RMSNorm e_t becomes
/// sqrt(hidden)·e_t, so lm_head[s, t] = w·scale/sqrt(hidden) gives logit w·scale.
fn write_chain_weights(
    dir: &Path,
    vocab_size: usize,
    succ: &[(u32, u32, f32)],
) -> std::io::Result<()> {
    let hidden = vocab_size;
    let scale = 10.0f32;
    let head_dim = hidden / HEADS;
    let inter = INTER;
    let mut tensors: Vec<(String, Vec<f32>, Vec<usize>)> = Vec::new();
    let mut embed = vec![0f32; vocab_size * hidden];
    for t in 0..vocab_size {
        embed[t * hidden + t] = 1.0;
    }
    tensors.push((
        "model.embed_tokens.weight".into(),
        embed,
        vec![vocab_size, hidden],
    ));
    let mut head = vec![0f32; vocab_size * hidden];
    let norm_gain = 1.0 / (hidden as f32).sqrt();
    for &(from, to, w) in succ {
        head[to as usize * hidden + from as usize] = w * scale * norm_gain;
    }
    tensors.push(("lm_head.weight".into(), head, vec![vocab_size, hidden]));
    tensors.push(("model.norm.weight".into(), vec![1.0; hidden], vec![hidden]));
    // small deterministic pseudo-random values for matrices whose output is zeroed anyway
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: usize, s: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * s
            })
            .collect()
    };
    for l in 0..N_LAYERS {
        let kv = HEADS / 2 * head_dim;
        // (name, values, shape), in the order the values are drawn
        let layer = [
            ("input_layernorm", vec![1.0; hidden], vec![hidden]),
            ("post_attention_layernorm", vec![1.0; hidden], vec![hidden]),
            (
                "self_attn.q_proj",
                rnd(hidden * hidden, 0.1),
                vec![hidden, hidden],
            ),
            ("self_attn.k_proj", rnd(kv * hidden, 0.1), vec![kv, hidden]),
            ("self_attn.v_proj", rnd(kv * hidden, 0.1), vec![kv, hidden]),
            (
                "self_attn.o_proj",
                vec![0.0; hidden * hidden],
                vec![hidden, hidden],
            ),
            (
                "mlp.gate_proj",
                rnd(inter * hidden, 0.1),
                vec![inter, hidden],
            ),
            ("mlp.up_proj", rnd(inter * hidden, 0.1), vec![inter, hidden]),
            (
                "mlp.down_proj",
                vec![0.0; hidden * inter],
                vec![hidden, inter],
            ),
        ];
        for (name, data, shape) in layer {
            tensors.push((format!("model.layers.{l}.{name}.weight"), data, shape));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s)| {
            let bytes: &[u8] = bytemuck_cast(d);
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), bytes)
                    .expect("shape matches data"),
            )
        })
        .collect();
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, meta, &dir.join("model.safetensors")).map_err(|e| err(&e))
}

/// `config.json`, `tokenizer_config.json` and `generation_config.json`.
fn write_chain_configs(dir: &Path, vocab_size: usize) -> std::io::Result<()> {
    let hidden = vocab_size;
    let (heads, n_layers, inter, head_dim) = (HEADS, N_LAYERS, INTER, hidden / HEADS);
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab_size, "hidden_size": hidden, "intermediate_size": inter,
        "num_hidden_layers": n_layers, "num_attention_heads": heads, "num_key_value_heads": heads / 2,
        "head_dim": head_dim, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 2048, "tie_word_embeddings": false,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "hidden_act": "silu",
        "torch_dtype": "float32"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    let template = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let tc = json!({
        "chat_template": template, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "bos_token": null, "tokenizer_class": "PreTrainedTokenizerFast"
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tc)?,
    )?;
    let gc = json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0});
    std::fs::write(
        dir.join("generation_config.json"),
        serde_json::to_string_pretty(&gc)?,
    )?;
    Ok(())
}

fn bytemuck_cast(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the slice covers
    // exactly the f32 data (little-endian on all supported targets, as safetensors wants).
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
