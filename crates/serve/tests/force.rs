//! Forced final answers over HTTP: the client's second request on a server that knows
//! nothing of them (a fake server on 127.0.0.1 checks what is sent), and `rzero serve`'s
//! `force_answer` field (the engine's forcing behind the API, equal to the in-process engine).

#[path = "../../remote/tests/common/mod.rs"]
mod common;
mod support;

use std::net::SocketAddr;

use common::{Action, FakeServer};
use engine::force::{has_closed_box, DEFAULT_CUE};
use engine::{EngineConfig, ForceAnswer};
use remote::Sampler as _;
use remote::{OpenAiClient, RemoteConfig, SamplingParams, TextRequest};
use rzero_serve::ServeOptions;
use serde_json::{json, Value};

fn choice(i: usize, text: &str, finish: &str) -> Value {
    json!({"index": i, "text": text, "finish_reason": finish})
}

#[test]
fn the_client_forces_answers_with_a_second_request_on_any_server() {
    // First calls (n = 2): one boxed answer and one without a box per prompt. Second calls
    // (prompt = prompt + response + cue): an answer that closes, or one that never does.
    let server = FakeServer::start(|_, req| {
        let b: Value = serde_json::from_str(&req.body).unwrap();
        let prompt = b["prompt"].as_str().unwrap().to_string();
        let body = if !prompt.contains("Final answer") {
            json!({"choices": [
                choice(0, &format!("{prompt}: so \\boxed{{7}} done"), "stop"),
                choice(1, "no idea", "length"),
            ]})
        } else if prompt.starts_with("Q1") {
            json!({"choices": [choice(0, "12} because 12 is right", "length")]})
        } else {
            json!({"choices": [choice(0, "\\frac{1", "stop")]})
        };
        Action::Respond(200, body.to_string())
    });
    let client = OpenAiClient::new(RemoteConfig {
        base_urls: vec![server.url()],
        model: "m".into(),
        retries: 0,
        ..RemoteConfig::default()
    })
    .unwrap();
    let f = ForceAnswer {
        cue: DEFAULT_CUE.into(),
        max_tokens: 5,
    };
    let params = SamplingParams {
        n: 2,
        seed: 40,
        max_new_tokens: 30,
        temperature: 0.7,
        stop: vec!["\nUser:".into()],
        force_answer: Some(f.clone()),
        ..SamplingParams::default()
    };
    let reqs = vec![
        TextRequest::text("Q1", params.clone()),
        TextRequest::text("Q2", params),
    ];
    let out = client.generate(&reqs).unwrap();
    for (p, prompt) in out.iter().zip(["Q1", "Q2"]) {
        // The boxed answer is untouched.
        assert_eq!(p[0].text, format!("{prompt}: so \\boxed{{7}} done"));
        assert_eq!(p[0].forced_from, None);
        // The other: response + cue + the answer cut where the box closes, or closed for it.
        let want = match prompt {
            "Q1" => "no idea\n\nFinal answer: \\boxed{12}",
            _ => "no idea\n\nFinal answer: \\boxed{\\frac{1}}",
        };
        assert_eq!(p[1].text, want);
        assert!(has_closed_box(&p[1].text));
        assert_eq!(p[1].forced_from, Some("no idea".len()));
        assert_eq!(p[1].finish_reason, remote::FinishReason::Length);
    }
    // What the second requests asked: the whole prefix, the answer budget, no stop
    // strings, one sample, sample 1's seed.
    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    let second: Vec<Value> = seen
        .iter()
        .map(|s| serde_json::from_str::<Value>(&s.body).unwrap())
        .filter(|b| b["prompt"].as_str().unwrap().contains("Final answer"))
        .collect();
    assert_eq!(second.len(), 2);
    for b in &second {
        let p = b["prompt"].as_str().unwrap();
        assert!(p == format!("Q1no idea{DEFAULT_CUE}") || p == format!("Q2no idea{DEFAULT_CUE}"));
        assert_eq!(b["max_tokens"], json!(5));
        assert_eq!(b["n"], json!(1));
        assert_eq!(b["seed"], json!(41));
        assert_eq!(b["temperature"].as_f64().unwrap() as f32, 0.7);
        assert!(b.get("stop").is_none(), "{b}");
        assert!(b.get("force_answer").is_none());
    }
}

#[test]
fn rzero_serve_forces_answers_as_the_engine_does() {
    let dir = common::fixture("llama-tiny");
    let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
    let m = loaded.model().unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = rzero_serve::spawn(
        support::local(&loaded),
        addr,
        ServeOptions {
            served_model_name: "tiny".into(),
            ..ServeOptions::default()
        },
    )
    .unwrap();
    let local = engine::LocalSampler::new(
        &m,
        &loaded.tokenizer,
        None,
        EngineConfig {
            eos_token_ids: loaded.eos_token_ids(),
            ..EngineConfig::default()
        },
    )
    .unwrap();
    let f = ForceAnswer {
        cue: DEFAULT_CUE.into(),
        max_tokens: 4,
    };
    let params = SamplingParams {
        n: 2,
        seed: 3,
        max_new_tokens: 8,
        logprobs: true,
        force_answer: Some(f.clone()),
        ..SamplingParams::default()
    };
    let want = local
        .generate(&[TextRequest::text("Hello world", params)])
        .unwrap();
    // The `force_answer` request field: the engine forces behind the API.
    let body = json!({"model": "tiny", "prompt": "Hello world", "n": 2, "seed": 3,
        "max_tokens": 8, "logprobs": 1, "force_answer": {"cue": DEFAULT_CUE, "max_tokens": 4}});
    let (status, text) = common::raw(server.addr(), "POST", "/v1/completions", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    for (c, w) in choices.iter().zip(&want[0]) {
        assert_eq!(c["text"].as_str().unwrap(), w.text);
        assert!(has_closed_box(&w.text), "{:?}", w.text);
        let ids: Vec<u32> = serde_json::from_value(c["token_ids"].clone()).unwrap();
        assert_eq!(Some(&ids), w.token_ids.as_ref());
        let forced: Vec<bool> = serde_json::from_value(c["forced"].clone()).unwrap();
        assert_eq!(forced, w.forced);
        assert_eq!(forced.len(), ids.len());
        assert!(forced.iter().any(|&x| x));
        // The local backend says where the cue starts in the text.
        let at = w.forced_from.expect("forced");
        assert!(w.text[at..].starts_with(DEFAULT_CUE));
    }
    // `true` takes the defaults; a cue that opens no brace is a 400 naming the field.
    let body = json!({"prompt": "Hello world", "max_tokens": 4, "force_answer": true});
    let (status, text) = common::raw(server.addr(), "POST", "/v1/completions", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(has_closed_box(v["choices"][0]["text"].as_str().unwrap()));
    let body = json!({"prompt": "Hello world", "force_answer": {"cue": "Answer:"}});
    let (status, text) = common::raw(server.addr(), "POST", "/v1/completions", &body.to_string());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("force_answer"), "{text}");
    // The generic client path against rzero serve: every answer ends boxed.
    let client = OpenAiClient::new(RemoteConfig {
        base_urls: vec![server.base_url()],
        model: "tiny".into(),
        retries: 0,
        ..RemoteConfig::default()
    })
    .unwrap();
    let params = SamplingParams {
        n: 3,
        seed: 5,
        max_new_tokens: 6,
        force_answer: Some(f),
        ..SamplingParams::default()
    };
    let out = client
        .generate(&[TextRequest::text("1 2 3 4", params)])
        .unwrap();
    for c in &out[0] {
        assert!(has_closed_box(&c.text), "{:?}", c.text);
        let at = c.forced_from.expect("a random model never boxes by itself");
        assert!(c.text[at..].starts_with(DEFAULT_CUE));
    }
}
