//! Loading, tokenizers, chat templates, saving and the hub cache, checked against the tiny
//! parity fixtures (`tests/fixtures/models/*`, made with transformers 5.24 / tokenizers 0.23).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use model::{
    load, save_hf_folder, ChatMessage, ChatTemplate, Config, Error, LoadOptions, LoadedModel,
    Tokenizer,
};
use serde_json::Value;

use testdata::{model_dir, MODELS};

fn expected(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn got_ids_of(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, false).unwrap()
}

fn load_fixture(name: &str) -> (PathBuf, LoadedModel) {
    let dir = model_dir(name);
    let m = load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    (dir, m)
}

/// Copy a fixture folder (without expected.json) into a fresh temp dir.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = model_dir(name);
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join(name);
    std::fs::create_dir(&dst).unwrap();
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    (tmp, dst)
}

fn load_err(path: &Path) -> String {
    match load(path.to_str().unwrap(), &LoadOptions::default()) {
        Ok(_) => panic!("loading {} should fail", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tokenizer_matches_fixture_ids_and_tokens() {
    for name in MODELS {
        let dir = model_dir(name);
        let exp = expected(&dir);
        let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        assert_eq!(
            tok.vocab_size(),
            exp["tokenizer"]["vocab_size"].as_u64().unwrap() as usize
        );
        for case in exp["tokenizer"]["encode"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let got = tok.encode(text, true).unwrap();
            assert_eq!(got, ids(&case["ids"]), "{name}: ids of {text:?}");
            assert_eq!(
                tok.encode_tokens(text, true).unwrap(),
                strings(&case["tokens"]),
                "{name}: tokens of {text:?}"
            );
            // Byte-level BPE round-trips exactly when special tokens are kept.
            assert_eq!(tok.decode(&got, false).unwrap(), text, "{name}: decode");
        }
        for (s, id) in exp["tokenizer"]["special_tokens"].as_object().unwrap() {
            let id = id.as_u64().unwrap() as u32;
            assert_eq!(tok.token_to_id(s), Some(id));
            assert_eq!(tok.id_to_token(id).as_deref(), Some(s.as_str()));
            assert!(tok.is_special(id));
        }
        // skip_special drops <|im_start|>/<|im_end|>.
        let chat = exp["tokenizer"]["encode"][4]["ids"].clone();
        let plain = tok.decode(&ids(&chat), true).unwrap();
        assert!(!plain.contains("<|im_"), "{plain:?}");
        // Ids past the tokenizer (padded embedding rows) decode to nothing, as in transformers.
        assert_eq!(tok.decode(&[100_000], false).unwrap(), "");
        let mut padded = got_ids_of(&tok, "12 + 7");
        padded.insert(1, 100_000);
        assert_eq!(tok.decode(&padded, false).unwrap(), "12 + 7");
    }
}

#[test]
fn loaded_folder_matches_fixture() {
    for name in MODELS {
        let (dir, m) = load_fixture(name);
        let exp = expected(&dir);
        let shape = &exp["shape"];
        let c = &m.config;
        assert_eq!(c.vocab_size as u64, shape["vocab_size"].as_u64().unwrap());
        assert_eq!(c.head_dim as u64, shape["head_dim"].as_u64().unwrap());
        assert_eq!(c.rope_theta, shape["rope_theta"].as_f64().unwrap());
        assert_eq!(
            c.tie_word_embeddings,
            shape["tie_word_embeddings"].as_bool().unwrap()
        );
        // Weights: every tensor of the file, unchanged, and the unique parameter count.
        let raw =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(raw.len(), m.weights.len(), "{name}");
        for (k, t) in &raw {
            let got = &m.weights[k];
            assert_eq!(got.dims(), t.dims(), "{name} {k}");
            let diff = (got - t).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name} {k}");
        }
        let n: usize = m.weights.values().map(|t| t.elem_count()).sum();
        assert_eq!(n as u64, exp["num_parameters"].as_u64().unwrap(), "{name}");
        assert_eq!(
            m.tokenizer.eos_token_ids(),
            &[exp["tokenizer"]["eos_token_id"].as_u64().unwrap() as u32]
        );
        assert_eq!(
            m.tokenizer.pad_token_id(),
            Some(exp["tokenizer"]["pad_token_id"].as_u64().unwrap() as u32)
        );
        assert_eq!(m.generation.eos_token_ids, vec![2]);
        assert_eq!(m.generation.bos_token_id, Some(1));
        assert_eq!(m.source, dir);

        // Chat template as transformers applied it, then encoded.
        let ct = &exp["tokenizer"]["chat_template"];
        let msgs: Vec<ChatMessage> = serde_json::from_value(ct["messages"].clone()).unwrap();
        let tmpl = m
            .chat_template
            .as_ref()
            .expect("fixture has a chat template");
        let rendered = tmpl
            .render(&msgs, ct["add_generation_prompt"].as_bool().unwrap())
            .unwrap();
        assert_eq!(rendered, ct["rendered"].as_str().unwrap(), "{name}");
        assert_eq!(
            m.tokenizer.encode(&rendered, true).unwrap(),
            ids(&ct["ids"])
        );
        // The built-in ChatML fallback renders the same for these templates.
        assert_eq!(
            ChatTemplate::chatml().render(&msgs, true).unwrap(),
            rendered
        );
        // Without the generation prompt the assistant header is absent.
        let no_gen = tmpl.render(&msgs, false).unwrap();
        assert!(rendered.starts_with(&no_gen) && rendered.len() > no_gen.len());
    }
}

#[test]
fn load_converts_dtype() {
    let dir = model_dir("qwen3-tiny");
    let opts = LoadOptions {
        dtype: DType::BF16,
        device: Device::Cpu,
    };
    let m = load(dir.to_str().unwrap(), &opts).unwrap();
    assert!(m.weights.values().all(|t| t.dtype() == DType::BF16));
}

#[test]
fn hf_style_templates_render() {
    // Python string methods, loop controls, namespace, raise_exception, bos/eos, trim_blocks.
    let src = r#"{{ bos_token }}{% set ns = namespace(sys=false) %}
{% for m in messages %}
  {% if m.role == 'system' %}{% set ns.sys = true %}{% endif %}
  {% if m.content.startswith('SKIP') %}{% continue %}{% endif %}
  {{ '<' + m.role + '>' + m.content.strip() + eos_token }}
  {% if loop.last and not ns.sys %}[nosys]{% endif %}
{% endfor %}
{% if add_generation_prompt %}<assistant>{% endif %}"#;
    let t = ChatTemplate::new(src, Some("<s>".into()), Some("</s>".into())).unwrap();
    let msgs = vec![
        ChatMessage::user("  hi there \n"),
        ChatMessage::user("SKIP me"),
        ChatMessage::assistant("ok"),
    ];
    let out = t.render(&msgs, true).unwrap();
    // Verified with Python jinja2 3.1 (ImmutableSandboxedEnvironment, trim_blocks,
    // lstrip_blocks, loopcontrols), as transformers renders: lstrip_blocks strips only
    // before `{%` tags, so the indentation before `{{` stays.
    assert_eq!(
        out,
        "<s>  <user>hi there</s>\n  <assistant>ok</s>\n[nosys]<assistant>"
    );

    let t = ChatTemplate::new(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}ok",
        None,
        None,
    )
    .unwrap();
    assert_eq!(t.render(&[ChatMessage::user("x")], false).unwrap(), "ok");
    let err = t.render(&[ChatMessage::system("x")], false).unwrap_err();
    assert!(matches!(err, Error::Template(_)));
    assert!(
        err.to_string().contains("first message must be user"),
        "{err}"
    );

    // A syntax error is reported when the template is compiled.
    assert!(matches!(
        ChatTemplate::new("{% for %}", None, None),
        Err(Error::Template(_))
    ));
}

#[test]
fn chat_template_list_form_and_jinja_file() {
    let (_tmp, dir) = copy_fixture("llama-tiny");
    let tc_path = dir.join("tokenizer_config.json");
    let mut tc: Value = serde_json::from_str(&std::fs::read_to_string(&tc_path).unwrap()).unwrap();
    tc["chat_template"] = serde_json::json!([
        {"name": "tool_use", "template": "TOOLS"},
        {"name": "default", "template": "DEFAULT{{ eos_token }}"}
    ]);
    std::fs::write(&tc_path, serde_json::to_string(&tc).unwrap()).unwrap();
    let m = load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let out = m.chat_template.unwrap().render(&[], false).unwrap();
    assert_eq!(out, "DEFAULT<|im_end|>");

    std::fs::write(
        dir.join("chat_template.jinja"),
        "JINJA {{ messages|length }}",
    )
    .unwrap();
    let m = load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let out = m
        .chat_template
        .unwrap()
        .render(&[ChatMessage::user("a")], false)
        .unwrap();
    assert_eq!(out, "JINJA 1");
}

fn assert_same_model(a: &LoadedModel, b: &LoadedModel) {
    assert_eq!(a.config, b.config);
    assert_eq!(a.generation, b.generation);
    assert_eq!(a.weights.len(), b.weights.len());
    for (k, t) in &a.weights {
        let u = &b.weights[k];
        assert_eq!(t.dims(), u.dims(), "{k}");
        assert_eq!(t.dtype(), u.dtype(), "{k}");
        let x: Vec<f32> = t
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let y: Vec<f32> = u
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{k}"
        );
    }
    for text in [
        "12345 + 678 = ?",
        "\\frac{1}{2} + \\sqrt{x^2}",
        "café ∑ π ≈ 3.14159 😀",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
    ] {
        assert_eq!(
            a.tokenizer.encode(text, true).unwrap(),
            b.tokenizer.encode(text, true).unwrap()
        );
    }
    assert_eq!(a.tokenizer.eos_token_ids(), b.tokenizer.eos_token_ids());
    assert_eq!(a.tokenizer.bos_token_id(), b.tokenizer.bos_token_id());
    assert_eq!(a.tokenizer.pad_token_id(), b.tokenizer.pad_token_id());
    let msgs = [ChatMessage::system("s"), ChatMessage::user("What is 1+1?")];
    assert_eq!(
        a.chat_template
            .as_ref()
            .map(|t| t.render(&msgs, true).unwrap()),
        b.chat_template
            .as_ref()
            .map(|t| t.render(&msgs, true).unwrap())
    );
}

fn save(dir: &Path, m: &LoadedModel) -> model::Result<()> {
    save_hf_folder(
        dir,
        &m.config,
        &m.weights,
        &m.tokenizer,
        m.chat_template.as_ref(),
        &m.generation,
    )
}

#[test]
fn save_then_load_round_trips() {
    for name in ["llama-tiny", "qwen2-tiny"] {
        let (_, m) = load_fixture(name);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("ckpt");
        save(&out, &m).unwrap();
        let back = load(out.to_str().unwrap(), &LoadOptions::default()).unwrap();
        assert_same_model(&m, &back);

        // File contents: format metadata, lm_head only when untied, config loadable.
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let md = meta.metadata().as_ref().unwrap();
        assert_eq!(md.get("format").map(String::as_str), Some("pt"));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let has_head = st.names().contains(&"lm_head.weight");
        assert_eq!(has_head, !m.config.tie_word_embeddings, "{name}");
        let tc: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(tc["eos_token"], "<|im_end|>");
        assert_eq!(tc["pad_token"], "<|endoftext|>");
        assert_eq!(tc["bos_token"], "<|im_start|>");
        assert!(tc["chat_template"].as_str().unwrap().contains("im_start"));
        assert_eq!(
            Config::from_hf_json(&out.join("config.json")).unwrap(),
            m.config
        );

        // Saving over an existing folder replaces it and leaves no temporary siblings.
        std::fs::write(out.join("stale.txt"), "old").unwrap();
        save(&out, &back).unwrap();
        assert!(!out.join("stale.txt").exists());
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["ckpt".to_string()]);
        assert_same_model(
            &m,
            &load(out.to_str().unwrap(), &LoadOptions::default()).unwrap(),
        );
    }
}

// The transformers / PEFT round trips of saved folders are in tests/peers.rs.

#[test]
fn bad_inputs_give_errors_naming_the_file() {
    let (_tmp, dir) = copy_fixture("llama-tiny");
    let cfg = dir.join("config.json");
    let st = dir.join("model.safetensors");
    let good_cfg = std::fs::read(&cfg).unwrap();
    let good_st = std::fs::read(&st).unwrap();

    // Nonexistent path.
    let missing = dir.join("nope");
    let e = load_err(&missing);
    assert!(e.contains(&missing.display().to_string()), "{e}");

    // Missing / corrupt config.json.
    std::fs::remove_file(&cfg).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&cfg.display().to_string()) && e.contains("missing"),
        "{e}"
    );
    std::fs::write(&cfg, "{\"vocab_size\": 512,").unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&cfg.display().to_string()) && e.contains("JSON"),
        "{e}"
    );

    // Unknown architecture.
    let mut v: Value = serde_json::from_slice(&good_cfg).unwrap();
    v["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    v["model_type"] = serde_json::json!("gpt2");
    std::fs::write(&cfg, serde_json::to_string(&v).unwrap()).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&cfg.display().to_string()) && e.contains("GPT2LMHeadModel"),
        "{e}"
    );
    std::fs::write(&cfg, &good_cfg).unwrap();

    // Corrupt and truncated weights.
    std::fs::write(&st, b"this is not a safetensors file at all").unwrap();
    let e = load_err(&dir);
    assert!(e.contains(&st.display().to_string()), "{e}");
    std::fs::write(&st, &good_st[..good_st.len() / 2]).unwrap();
    let e = load_err(&dir);
    assert!(e.contains(&st.display().to_string()), "{e}");
    std::fs::remove_file(&st).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&st.display().to_string()) && e.contains("missing"),
        "{e}"
    );

    // A tensor of the wrong shape, and a missing tensor.
    let mut w: HashMap<String, Tensor> =
        candle_core::safetensors::load_buffer(&good_st, &Device::Cpu).unwrap();
    let name = "model.layers.1.self_attn.k_proj.weight";
    w.insert(
        name.into(),
        Tensor::zeros((16, 64), DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, &st).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&st.display().to_string()) && e.contains(name) && e.contains("[16, 64]"),
        "{e}"
    );
    w.remove(name);
    candle_core::safetensors::save(&w, &st).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&st.display().to_string()) && e.contains(name) && e.contains("missing"),
        "{e}"
    );
    std::fs::write(&st, &good_st).unwrap();

    // Missing / corrupt tokenizer.
    let tok = dir.join("tokenizer.json");
    let good_tok = std::fs::read(&tok).unwrap();
    std::fs::remove_file(&tok).unwrap();
    let e = load_err(&dir);
    assert!(e.contains(&tok.display().to_string()), "{e}");
    std::fs::write(&tok, "{}").unwrap();
    let e = load_err(&dir);
    assert!(e.contains(&tok.display().to_string()), "{e}");
    std::fs::write(&tok, &good_tok).unwrap();

    // Corrupt tokenizer_config.json and generation_config.json.
    let tc = dir.join("tokenizer_config.json");
    std::fs::write(&tc, "[").unwrap();
    let e = load_err(&dir);
    assert!(e.contains(&tc.display().to_string()), "{e}");
    std::fs::remove_file(&tc).unwrap();
    let gc = dir.join("generation_config.json");
    std::fs::write(&gc, "{\"eos_token_id\": \"x\"}").unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&gc.display().to_string()) && e.contains("eos_token_id"),
        "{e}"
    );
    std::fs::remove_file(&gc).unwrap();

    // Without the optional files the folder still loads (no template; ids from config.json).
    let m = load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert!(m.chat_template.is_none());
    assert_eq!(m.tokenizer.eos_token_ids(), &[2]);

    // A file that is neither a folder nor a .gguf, and a .gguf that is not GGUF.
    let e = load_err(&tok);
    assert!(e.contains(&tok.display().to_string()), "{e}");
    let fake = dir.join("fake.gguf");
    std::fs::write(&fake, b"GGUF but not really").unwrap();
    let e = load_err(&fake);
    assert!(e.contains(&fake.display().to_string()), "{e}");
}

#[test]
fn sharded_safetensors_load() {
    let (_tmp, dir) = copy_fixture("qwen2-tiny");
    let st = dir.join("model.safetensors");
    let all: HashMap<String, Tensor> = candle_core::safetensors::load(&st, &Device::Cpu).unwrap();
    std::fs::remove_file(&st).unwrap();
    let (mut a, mut b) = (HashMap::new(), HashMap::new());
    let mut map = serde_json::Map::new();
    for (k, t) in all.iter() {
        let (dst, file) = if k.contains("layers.1") {
            (&mut b, "model-00002-of-00002.safetensors")
        } else {
            (&mut a, "model-00001-of-00002.safetensors")
        };
        dst.insert(k.clone(), t.clone());
        map.insert(k.clone(), file.into());
    }
    candle_core::safetensors::save(&a, dir.join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&b, dir.join("model-00002-of-00002.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let m = load(dir.to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(m.weights.len(), all.len());

    // A wrong shape in shard 2 names shard 2.
    let name = "model.layers.1.mlp.up_proj.weight";
    b.insert(
        name.into(),
        Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let shard2 = dir.join("model-00002-of-00002.safetensors");
    candle_core::safetensors::save(&b, &shard2).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains(&shard2.display().to_string()) && e.contains(name),
        "{e}"
    );
}

/// Lay out `src` in `cache` as hf-hub does: blobs, a snapshot of symlinks, refs/main.
fn make_hub_cache(cache: &Path, id: &str, src: &Path) -> PathBuf {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(rev);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), rev).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "expected.json" {
            continue;
        }
        let blob = repo.join("blobs").join(format!("etag-{name}"));
        std::fs::copy(e.path(), &blob).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(format!("etag-{name}")),
            snap.join(&name),
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snap.join(&name)).unwrap();
    }
    snap
}

#[test]
fn hub_ids_resolve_through_the_cache() {
    let src = model_dir("qwen3-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let snap = make_hub_cache(&cache, "Org/Tiny-Qwen3", &src);
    let got = model::hub::resolve_in("Org/Tiny-Qwen3", &cache).unwrap();
    assert_eq!(got, snap);
    let m = model::load::load_folder(&got, &LoadOptions::default()).unwrap();
    assert_eq!(m.config.num_hidden_layers, 3);
    // A revision given as a commit hash.
    let rev = snap.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        model::hub::resolve_in(&format!("Org/Tiny-Qwen3@{rev}"), &cache).unwrap(),
        snap
    );

    // Not cached: one line naming the id and the cache folder.
    let e = model::hub::resolve_in("Qwen/Qwen3-4B-Base", &cache).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Hub(_)));
    assert!(
        msg.contains("Qwen/Qwen3-4B-Base") && msg.contains(&cache.display().to_string()),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // refs/main pointing at a missing snapshot.
    std::fs::write(cache.join("models--Org--Tiny-Qwen3/refs/main"), "deadbeef").unwrap();
    let e = model::hub::resolve_in("Org/Tiny-Qwen3", &cache).unwrap_err();
    assert!(e.to_string().contains("deadbeef"), "{e}");

    assert!(model::hub::looks_like_hub_id("Qwen/Qwen3-4B-Base"));
    assert!(model::hub::looks_like_hub_id(
        "HuggingFaceTB/SmolLM2-135M-Instruct@main"
    ));
    for not_id in [
        "model",
        "/abs/path",
        "./rel/x",
        "a/b/c",
        "dir/file.gguf",
        "../x",
    ] {
        assert!(!model::hub::looks_like_hub_id(not_id), "{not_id}");
    }
}

/// HF name -> GGUF name (the inverse of `model::gguf::hf_name`).
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
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        other => panic!("unexpected {other}"),
    };
    format!("blk.{layer}.{g}.{kind}")
}

/// Write a fixture folder as an F32 GGUF the way llama.cpp's converter lays it out (q/k rows
/// permuted for llama), with the tokenizer in `tokenizer.ggml.*`.
fn write_gguf(src: &Path, out: &Path) -> Config {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    use gguf_file::Value as V;
    let cfg = Config::from_hf_json(&src.join("config.json")).unwrap();
    let arch = match cfg.arch {
        model::Arch::Llama => "llama",
        model::Arch::Qwen2 => "qwen2",
        model::Arch::Qwen3 => "qwen3",
    };
    let weights =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let hd = cfg.head_dim;
    let mut tensors = Vec::new();
    for (name, t) in &weights {
        let mut t = t.clone();
        let heads = if name.contains("q_proj") {
            cfg.num_attention_heads
        } else {
            cfg.num_key_value_heads
        };
        if arch == "llama" && (name.contains("q_proj") || name.contains("k_proj")) {
            // HF -> GGUF: reshape(n_head, 2, hd/2, in).swapaxes(1, 2)
            let dims = t.dims().to_vec();
            let rest: usize = dims[1..].iter().product();
            t = t
                .reshape((heads, 2, hd / 2, rest))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape(dims)
                .unwrap();
        }
        tensors.push((
            gguf_name(name),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    }
    let tj: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tj["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (tok, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = tok.clone();
    }
    let specials: Vec<u64> = tj["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
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
    let tc: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap())
            .unwrap();
    let k = |s: &str| format!("{arch}.{s}");
    let u = |x: usize| V::U32(x as u32);
    let md: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String(arch.into())),
        (k("context_length"), u(cfg.max_position_embeddings)),
        (k("embedding_length"), u(cfg.hidden_size)),
        (k("block_count"), u(cfg.num_hidden_layers)),
        (k("feed_forward_length"), u(cfg.intermediate_size)),
        (k("attention.head_count"), u(cfg.num_attention_heads)),
        (k("attention.head_count_kv"), u(cfg.num_key_value_heads)),
        (k("attention.key_length"), u(cfg.head_dim)),
        (k("attention.value_length"), u(cfg.head_dim)),
        (k("rope.freq_base"), V::F32(cfg.rope_theta as f32)),
        (
            k("attention.layer_norm_rms_epsilon"),
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
            V::Array(
                (0..vocab.len() as u64)
                    .map(|i| V::I32(if specials.contains(&i) { 3 } else { 1 }))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.merges".into(), V::Array(merges)),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(2)),
        ("tokenizer.ggml.padding_token_id".into(), V::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), V::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            V::String(tc["chat_template"].as_str().unwrap().into()),
        ),
    ];
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let mut f = std::fs::File::create(out).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
    cfg
}

#[test]
fn gguf_files_of_each_architecture_load_like_the_folder() {
    for name in MODELS {
        let (dir, folder) = load_fixture(name);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(format!("{name}.gguf"));
        let cfg = write_gguf(&dir, &path);
        let g = load(path.to_str().unwrap(), &LoadOptions::default()).unwrap();

        let mut want = cfg.clone();
        // GGUF stores eps as f32.
        want.rms_norm_eps = cfg.rms_norm_eps as f32 as f64;
        assert_eq!(g.config, want, "{name}");
        assert_eq!(g.weights.len(), folder.weights.len(), "{name}");
        for (k, t) in &folder.weights {
            let d: f32 = (t - &g.weights[k])
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(d, 0.0, "{name} {k} (q/k un-permutation or name mapping)");
        }
        let exp = expected(&dir);
        for case in exp["tokenizer"]["encode"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            assert_eq!(
                g.tokenizer.encode(text, true).unwrap(),
                ids(&case["ids"]),
                "{name} {text:?}"
            );
        }
        assert_eq!(g.tokenizer.eos_token_ids(), &[2]);
        assert_eq!(g.tokenizer.pad_token_id(), Some(0));
        let ct = &exp["tokenizer"]["chat_template"];
        let msgs: Vec<ChatMessage> = serde_json::from_value(ct["messages"].clone()).unwrap();
        assert_eq!(
            g.chat_template
                .as_ref()
                .unwrap()
                .render(&msgs, true)
                .unwrap(),
            ct["rendered"].as_str().unwrap()
        );
    }
}

#[test]
fn gguf_with_unknown_architecture_is_rejected() {
    use candle_core::quantized::gguf_file::{self, Value as V};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("mamba.gguf");
    let arch = V::String("mamba".into());
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[]).unwrap();
    drop(f);
    let e = load_err(&path);
    assert!(
        e.contains("mamba") && e.contains(&path.display().to_string()),
        "{e}"
    );
}
