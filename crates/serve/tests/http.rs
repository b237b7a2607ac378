//! The client against `rzero serve` over real HTTP on 127.0.0.1, with the llama-tiny fixture
//! model: every sampling parameter, chat, bad requests. The reference for every output is
//! the in-process engine ([`engine::LocalSampler`]) on the same model.

// Parallel indexing of local and remote results reads better than zipped iterators here.
#![allow(clippy::needless_range_loop)]

#[path = "../../remote/tests/common/mod.rs"]
mod common;
mod support;

use std::net::SocketAddr;

use engine::EngineConfig;
use remote::Sampler as _;
use remote::{
    ChatMessage, Error, FinishReason, OpenAiClient, Prompt, RemoteConfig, SamplingParams,
    TextRequest,
};
use rzero_serve::{ServeOptions, ServerHandle};
use serde_json::Value;

struct Setup {
    loaded: model::LoadedModel,
    model: model::Model,
    server: ServerHandle,
}

impl Setup {
    fn new() -> Self {
        let dir = common::fixture("llama-tiny");
        let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
        let model = loaded.model().unwrap();
        let opts = ServeOptions {
            served_model_name: "tiny".into(),
            ..ServeOptions::default()
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = rzero_serve::spawn(support::local(&loaded), addr, opts).unwrap();
        Self {
            loaded,
            model,
            server,
        }
    }

    fn client(&self, tweak: impl FnOnce(&mut RemoteConfig)) -> OpenAiClient {
        let mut cfg = RemoteConfig {
            base_urls: vec![self.server.base_url()],
            model: "tiny".into(),
            timeout_s: 60.0,
            retries: 0,
            ..RemoteConfig::default()
        };
        tweak(&mut cfg);
        OpenAiClient::new(cfg).unwrap()
    }

    fn local(&self) -> engine::LocalSampler<'_> {
        let cfg = EngineConfig {
            eos_token_ids: self.loaded.eos_token_ids(),
            ..EngineConfig::default()
        };
        engine::LocalSampler::new(
            &self.model,
            &self.loaded.tokenizer,
            self.loaded.chat_template.clone(),
            cfg,
        )
        .unwrap()
    }
}

fn greedy(max: usize) -> SamplingParams {
    SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(max)
    }
}

const PROMPTS: [&str; 3] = ["Hello world", "1 2 3 4", "The answer is"];

fn text_reqs(params: &SamplingParams) -> Vec<TextRequest> {
    PROMPTS
        .iter()
        .map(|p| TextRequest::text(*p, params.clone()))
        .collect()
}

#[test]
fn greedy_remote_equals_local_engine() {
    let s = Setup::new();
    let reqs = text_reqs(&greedy(12));
    let local = s.local().generate(&reqs).unwrap();
    let remote = s.client(|_| {}).generate(&reqs).unwrap();
    assert_eq!(remote.len(), 3);
    for (l, r) in local.iter().zip(&remote) {
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].text, l[0].text);
        assert_eq!(r[0].token_ids, l[0].token_ids);
        assert_eq!(r[0].token_ids.as_ref().unwrap().len(), 12);
    }
    // Token-id prompts give the same result.
    let ids = s.loaded.tokenizer.encode(PROMPTS[0], false).unwrap();
    let r = s
        .client(|_| {})
        .generate(&[TextRequest {
            prompt: Prompt::Tokens(ids),
            params: greedy(12),
        }])
        .unwrap();
    assert_eq!(r[0][0].token_ids, local[0][0].token_ids);
}

#[test]
fn concurrent_requests_share_engine_batches() {
    let s = Setup::new();
    let reqs: Vec<TextRequest> = (0..16)
        .map(|i| TextRequest::text(format!("{i} plus {i} is"), greedy(6)))
        .collect();
    let c = s.client(|c| c.max_concurrency = 16);
    let remote = c.generate(&reqs).unwrap();
    let peak = s
        .server
        .stats()
        .peak_running
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        peak > 1,
        "16 concurrent requests never shared an engine step"
    );
    // Batching does not change results: each equals the local engine alone.
    let local = s.local().generate(&reqs).unwrap();
    assert_eq!(remote, local);
}

#[test]
fn n_and_seed_reproduce_the_local_streams() {
    let s = Setup::new();
    let params = |seed| SamplingParams {
        n: 4,
        temperature: 1.0,
        max_new_tokens: 10,
        ignore_eos: true,
        seed,
        ..SamplingParams::default()
    };
    let c = s.client(|_| {});
    let a = c.generate(&text_reqs(&params(7))).unwrap();
    let b = c.generate(&text_reqs(&params(7))).unwrap();
    let other = c.generate(&text_reqs(&params(8))).unwrap();
    let local = s.local().generate(&text_reqs(&params(7))).unwrap();
    for i in 0..3 {
        assert_eq!(a[i].len(), 4);
        assert_eq!(a[i], b[i], "same seed, same samples");
        assert_eq!(a[i], local[i], "server samples = local engine samples");
    }
    assert_ne!(a, other, "another seed gives other samples");
    let distinct: std::collections::BTreeSet<_> =
        a[0].iter().map(|c| c.token_ids.clone()).collect();
    assert!(distinct.len() > 1, "the n samples differ from each other");
}

#[test]
fn split_n_uses_seed_plus_j() {
    let s = Setup::new();
    let p = SamplingParams {
        n: 3,
        temperature: 1.0,
        max_new_tokens: 8,
        ignore_eos: true,
        seed: 100,
        ..SamplingParams::default()
    };
    let split = s
        .client(|c| c.split_n = true)
        .generate(&text_reqs(&p))
        .unwrap();
    for j in 0..3 {
        let one = SamplingParams {
            n: 1,
            seed: 100 + j as u64,
            ..p.clone()
        };
        let local = s.local().generate(&text_reqs(&one)).unwrap();
        for i in 0..3 {
            assert_eq!(split[i][j], local[i][0]);
        }
    }
}

#[test]
fn filters_are_applied_by_the_server() {
    let s = Setup::new();
    let g = s.local().generate(&text_reqs(&greedy(10))).unwrap();
    // Each filter, pushed to its extreme, leaves only the most likely token: sampling at
    // temperature 1 must then give the greedy output. A server ignoring the field would not.
    let base = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 10,
        ignore_eos: true,
        seed: 3,
        ..SamplingParams::default()
    };
    let c = s.client(|_| {});
    for (name, p) in [
        (
            "top_k",
            SamplingParams {
                top_k: 1,
                ..base.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 1e-6,
                ..base.clone()
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: 1.0,
                ..base.clone()
            },
        ),
    ] {
        let r = c.generate(&text_reqs(&p)).unwrap();
        for i in 0..3 {
            assert_eq!(r[i][0].token_ids, g[i][0].token_ids, "{name}");
        }
    }
    // Without a filter, temperature 1 departs from greedy somewhere.
    let r = c.generate(&text_reqs(&base)).unwrap();
    assert!((0..3).any(|i| r[i][0].token_ids != g[i][0].token_ids));
}

#[test]
fn max_tokens_stop_strings_and_logprobs() {
    let s = Setup::new();
    let c = s.client(|_| {});
    // max_tokens -> finish_reason length.
    let r = c.generate(&text_reqs(&greedy(5))).unwrap();
    for x in &r {
        assert_eq!(x[0].finish_reason, FinishReason::Length);
        assert_eq!(x[0].token_ids.as_ref().unwrap().len(), 5);
    }
    // A stop string taken from the middle of the greedy text cuts it there.
    let full = s.local().generate(&text_reqs(&greedy(20))).unwrap();
    let text = &full[0][0].text;
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 6, "greedy text too short: {text:?}");
    let stop: String = chars[3..5].iter().collect();
    let expect = &text[..text.find(&stop).unwrap()];
    let p = SamplingParams {
        stop: vec![stop.clone(), "\u{1F600}never".into()],
        ..greedy(20)
    };
    let r = c.generate(&[TextRequest::text(PROMPTS[0], p)]).unwrap();
    assert_eq!(r[0][0].text, expect, "stop {stop:?}");
    assert_eq!(r[0][0].finish_reason, FinishReason::Stop);
    // logprobs: one per generated token, equal to the local engine's.
    let p = SamplingParams {
        logprobs: true,
        ..greedy(8)
    };
    let r = c.generate(&text_reqs(&p)).unwrap();
    let l = s.local().generate(&text_reqs(&p)).unwrap();
    for i in 0..3 {
        let (rl, ll) = (
            r[i][0].logprobs.as_ref().unwrap(),
            l[i][0].logprobs.as_ref().unwrap(),
        );
        assert_eq!(rl.len(), 8);
        for (a, b) in rl.iter().zip(ll) {
            assert!(a.is_finite() && *a <= 0.0);
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
    // Without logprobs: none.
    assert!(c.generate(&text_reqs(&greedy(3))).unwrap()[0][0]
        .logprobs
        .is_none());
}

#[test]
fn chat_completions_render_the_template_on_the_server() {
    let s = Setup::new();
    let msgs = vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user("What is 2+2?"),
    ];
    let p = SamplingParams {
        logprobs: true,
        ..greedy(10)
    };
    let req = TextRequest::chat(msgs.clone(), p.clone());
    let local = s.local().generate(std::slice::from_ref(&req)).unwrap();
    let remote = s
        .client(|_| {})
        .generate(std::slice::from_ref(&req))
        .unwrap();
    assert_eq!(remote[0][0].text, local[0][0].text);
    assert_eq!(remote[0][0].token_ids, local[0][0].token_ids);
    assert_eq!(remote[0][0].logprobs.as_ref().unwrap().len(), 10);
    // chat = true sends a text prompt as one user message.
    let one = vec![ChatMessage::user("What is 2+2?")];
    let local = s
        .local()
        .generate(&[TextRequest::chat(one, p.clone())])
        .unwrap();
    let remote = s
        .client(|c| c.chat = true)
        .generate(&[TextRequest::text("What is 2+2?", p)])
        .unwrap();
    assert_eq!(remote[0][0].token_ids, local[0][0].token_ids);
}

#[test]
fn models_health_and_raw_openai_shapes() {
    let s = Setup::new();
    let addr = s.server.addr();
    let (st, _) = common::raw(addr, "GET", "/health", "");
    assert_eq!(st, 200);
    let (st, body) = common::raw(addr, "GET", "/v1/models", "");
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "tiny");
    assert_eq!(
        s.client(|_| {}).models().unwrap(),
        vec![vec!["tiny".to_string()]]
    );
    // A list of prompts with n = 2: choices indexed prompt * n + sample.
    let (st, body) = common::raw(
        addr,
        "POST",
        "/v1/completions",
        r#"{"model":"tiny","prompt":["a b","c d"],"n":2,"max_tokens":3,"temperature":0,"stop":"zzz","logprobs":0}"#,
    );
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let idx: Vec<u64> = v["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![0, 1, 2, 3]);
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"][0]["logprobs"]["token_logprobs"]
            .as_array()
            .unwrap()
            .len(),
        v["choices"][0]["token_ids"].as_array().unwrap().len()
    );
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[test]
fn bad_requests_get_400_naming_the_field() {
    let s = Setup::new();
    let addr = s.server.addr();
    let cases = [
        (r#"{"prompt":"a","temperature":"hot"}"#, "temperature"),
        (r#"{"prompt":"a","stream":true}"#, "stream"),
        (r#"{"prompt":"a","top_p":0}"#, "top_p"),
        (r#"{"prompt":"a","n":0}"#, "n"),
        (r#"{"prompt":"a","max_tokens":0}"#, "max_tokens"),
        (r#"{"prompt":"a","stop":[1]}"#, "stop"),
        (r#"{"prompt":{"x":1}}"#, "prompt"),
        (r#"{"prompt":[99999]}"#, "prompt"),
        (r#"{"temperature":1}"#, "prompt"),
        (
            r#"{"prompt":"a","frequency_penalty":0.5}"#,
            "frequency_penalty",
        ),
    ];
    for (body, field) in cases {
        let (st, resp) = common::raw(addr, "POST", "/v1/completions", body);
        assert_eq!(st, 400, "{body}: {resp}");
        let v: Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(v["error"]["param"], field, "{body}: {resp}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field) || field == "prompt",
            "{resp}"
        );
    }
    let (st, resp) = common::raw(addr, "POST", "/v1/completions", "{not json");
    assert_eq!(st, 400, "{resp}");
    let (st, resp) = common::raw(
        addr,
        "POST",
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":5}]}"#,
    );
    assert_eq!(st, 400, "{resp}");
    assert!(resp.contains("messages[0].content"), "{resp}");
    // The client reports a rejection with the server's message, without retrying.
    let c = s.client(|c| {
        c.model = "other".into();
        c.retries = 3;
    });
    match c.generate(&text_reqs(&greedy(2))) {
        Err(Error::Rejected {
            status,
            message,
            url,
        }) => {
            assert_eq!(status, 404);
            assert!(message.contains("other"), "{message}");
            assert!(url.ends_with("/v1/completions"), "{url}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}
