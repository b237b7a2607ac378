//! `rzero serve` over any `engine::Sampler`: a test double that implements only
//! `generate` (the trait's default `serve` runs it in whole batches), the default `serve`
//! on its own (cancelled requests skipped, one request's failure its own), and `rzero serve`
//! as a proxy: a server whose sampler is `remote::OpenAiClient` in front of another
//! `rzero serve` (the local engine), equal to the in-process engine.

#[path = "../../remote/tests/common/mod.rs"]
mod common;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use engine::{
    EngineConfig, FinishReason, OnProgress, Prompt, SampleFeed, Sampler, SamplingParams,
    ServeEvent, TextCompletion, TextRequest,
};
use model::ChatMessage;
use remote::{OpenAiClient, RemoteConfig};
use rzero_serve::{ServeOptions, ServerHandle};
use serde_json::{json, Value};

/// A sampler without an engine: completion `i` of prompt `p` is `"{p}/{i}"`, even samples
/// stop on the stop string `"END"`, odd ones hit the length limit; two token ids and
/// log-probs per completion. A prompt containing `fail` fails the batch. Records every batch.
#[derive(Default)]
struct Canned {
    batches: Mutex<Vec<Vec<TextRequest>>>,
}

fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Tokens(ids) => format!("{ids:?}"),
        Prompt::Chat(m) => m.iter().map(|m| m.content.as_str()).collect(),
    }
}

fn canned(r: &TextRequest) -> Vec<TextCompletion> {
    (0..r.params.n)
        .map(|i| {
            let stop = i % 2 == 0;
            TextCompletion {
                text: format!("{}/{i}", prompt_text(&r.prompt)),
                finish_reason: if stop {
                    FinishReason::Stop
                } else {
                    FinishReason::Length
                },
                token_ids: Some(vec![i as u32, 7]),
                logprobs: r.params.logprobs.then(|| vec![-0.5, -1.5 - i as f32]),
                forced: Vec::new(),
                forced_from: None,
                stop_string: stop.then(|| "END".to_string()),
            }
        })
        .collect()
}

impl Sampler for Canned {
    fn generate_with_progress(
        &self,
        requests: &[TextRequest],
        _on_progress: OnProgress<'_>,
    ) -> engine::Result<Vec<Vec<TextCompletion>>> {
        self.batches.lock().unwrap().push(requests.to_vec());
        if requests
            .iter()
            .any(|r| prompt_text(&r.prompt).contains("fail"))
        {
            return Err(engine::Error::Sampler("the canned sampler fails".into()));
        }
        Ok(requests.iter().map(canned).collect())
    }
}

fn serve_canned() -> (Arc<Canned>, ServerHandle) {
    let sampler = Arc::new(Canned::default());
    let opts = ServeOptions {
        served_model_name: "canned".into(),
        ..ServeOptions::default()
    };
    let server = rzero_serve::spawn(sampler.clone(), "127.0.0.1:0".parse().unwrap(), opts).unwrap();
    (sampler, server)
}

fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let (st, b) = common::raw(addr, "POST", path, &body.to_string());
    (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
}

#[test]
fn completions_carry_the_samplers_completions() {
    let (sampler, server) = serve_canned();
    let (st, v) = post(
        server.addr(),
        "/v1/completions",
        json!({"model": "canned", "prompt": ["a b", "c"], "n": 3, "max_tokens": 5,
               "temperature": 0.5, "seed": 9, "stop": "END", "logprobs": 1}),
    );
    assert_eq!(st, 200, "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 6);
    for (k, c) in choices.iter().enumerate() {
        let (p, i) = (["a b", "c"][k / 3], k % 3);
        assert_eq!(c["index"], json!(k));
        assert_eq!(c["text"], json!(format!("{p}/{i}")));
        let stop = i % 2 == 0;
        assert_eq!(c["finish_reason"], if stop { "stop" } else { "length" });
        assert_eq!(
            c["stop_reason"],
            if stop { json!("END") } else { json!(null) }
        );
        assert_eq!(c["token_ids"], json!([i, 7]));
        assert_eq!(
            c["logprobs"]["token_logprobs"],
            json!([-0.5, -1.5 - i as f64])
        );
        // No tokenizer: the token texts are unknown, not made up.
        assert_eq!(c["logprobs"]["tokens"], json!(null), "{c}");
    }
    // Prompt tokens are unknown (text prompts go to the sampler as text).
    assert_eq!(v["usage"]["prompt_tokens"], json!(null));
    assert_eq!(v["usage"]["completion_tokens"], json!(12));
    assert_eq!(v["usage"]["total_tokens"], json!(null));
    // What the sampler got: both prompts as text, with the request's parameters.
    let batches = sampler.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1);
    let want = SamplingParams {
        n: 3,
        temperature: 0.5,
        max_new_tokens: 5,
        seed: 9,
        stop: vec!["END".into()],
        logprobs: true,
        ..SamplingParams::default()
    };
    assert_eq!(
        batches[0],
        vec![
            TextRequest::text("a b", want.clone()),
            TextRequest::text("c", want)
        ]
    );
    assert_eq!(server.stats().completions.load(Ordering::Relaxed), 6);
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), 2);
    // /v1/models: the context is unknown.
    let (st, b) = common::raw(server.addr(), "GET", "/v1/models", "");
    assert_eq!(st, 200);
    let m: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(m["data"][0]["max_model_len"], json!(null));
}

#[test]
fn the_client_reads_back_what_the_sampler_wrote() {
    let (sampler, server) = serve_canned();
    let client = OpenAiClient::new(RemoteConfig {
        base_urls: vec![server.base_url()],
        model: "canned".into(),
        retries: 0,
        timeout_s: 60.0,
        ..RemoteConfig::default()
    })
    .unwrap();
    let p = SamplingParams {
        n: 4,
        logprobs: true,
        stop: vec!["END".into()],
        ..SamplingParams::default()
    };
    let reqs = vec![
        TextRequest::text("x", p.clone()),
        TextRequest::text("y z", p.clone()),
    ];
    let got = client.generate(&reqs).unwrap();
    let want: Vec<Vec<TextCompletion>> = reqs.iter().map(canned).collect();
    assert_eq!(got, want);
    // Chat: the messages reach the sampler as a chat; no `max_tokens` and no known context
    // give the default.
    let msgs = vec![ChatMessage::system("s "), ChatMessage::user("u")];
    let (st, v) = post(
        server.addr(),
        "/v1/chat/completions",
        json!({"messages": [{"role": "system", "content": "s "}, {"role": "user", "content": "u"}], "n": 2}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][1]["message"]["content"], "s u/1");
    assert_eq!(v["choices"][1]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["stop_reason"], "END");
    let batches = sampler.batches.lock().unwrap().clone();
    let last = &batches.last().unwrap()[0];
    assert_eq!(last.prompt, Prompt::Chat(msgs));
    assert_eq!(last.params.max_new_tokens, 1024);
}

#[test]
fn a_failing_sampler_fails_only_its_request() {
    let (_sampler, server) = serve_canned();
    let (st, v) = post(
        server.addr(),
        "/v1/completions",
        json!({"prompt": ["ok", "fail"], "max_tokens": 2}),
    );
    assert_eq!(st, 502, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("canned"),
        "{v}"
    );
    let (st, v) = post(
        server.addr(),
        "/v1/completions",
        json!({"prompt": "ok", "max_tokens": 2}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["text"], "ok/0");
    // An empty text prompt is refused before the sampler sees it.
    let (st, v) = post(server.addr(), "/v1/completions", json!({"prompt": ""}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["param"], "prompt");
}

/// A feed of fixed arrivals: what `serve` answered, and which requests it reported done.
struct Script {
    arrivals: Vec<Vec<TextRequest>>,
    cancelled: Vec<usize>,
    answers: Vec<(usize, Result<Vec<String>, String>)>,
}

impl SampleFeed for Script {
    fn poll(&mut self, idle: bool) -> Option<Vec<TextRequest>> {
        assert!(idle, "the default serve polls only between batches");
        (!self.arrivals.is_empty()).then(|| self.arrivals.remove(0))
    }
    fn is_cancelled(&mut self, seq: usize) -> bool {
        self.cancelled.contains(&seq)
    }
    fn finished(&mut self, seq: usize, out: engine::Result<Vec<TextCompletion>>) {
        let out = out
            .map(|cs| cs.into_iter().map(|c| c.text).collect())
            .map_err(|e| e.to_string());
        self.answers.push((seq, out));
    }
}

#[test]
fn the_default_serve_batches_what_is_queued_and_isolates_failures() {
    let s = Canned::default();
    let p = |n| SamplingParams {
        n,
        ..SamplingParams::default()
    };
    let mut feed = Script {
        arrivals: vec![
            vec![TextRequest::text("a", p(2)), TextRequest::text("b", p(1))],
            vec![
                TextRequest::text("c", p(1)),
                TextRequest::text("fail", p(1)),
                TextRequest::text("d", p(3)),
            ],
        ],
        cancelled: vec![1],
        answers: Vec::new(),
    };
    let mut events = Vec::new();
    s.serve(&mut feed, &mut |e| events.push(e)).unwrap();
    // Request 1 was cancelled before its batch ran: never sent, never answered.
    let ok = |v: &[&str]| Ok(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        feed.answers,
        vec![
            (0, ok(&["a/0", "a/1"])),
            (2, ok(&["c/0"])),
            (3, Err("the canned sampler fails".to_string())),
            (4, ok(&["d/0", "d/1", "d/2"])),
        ]
    );
    let batches = s.batches.lock().unwrap();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    // [a], then [c, fail, d] failed as a whole and was rerun one request at a time.
    assert_eq!(sizes, vec![1, 3, 1, 1, 1]);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ServeEvent::Step { .. }))
            .count(),
        2
    );
    assert_eq!(events[0], ServeEvent::Step { running: 2 });
    assert!(events.contains(&ServeEvent::Completion { seq: 4, index: 2 }));
    assert!(!events
        .iter()
        .any(|e| matches!(e, ServeEvent::Completion { seq: 3, .. })));
}

#[test]
fn rzero_serve_proxies_another_server_as_the_local_engine_samples() {
    let dir = common::fixture("llama-tiny");
    let loaded = model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap();
    let opts = |name: &str| ServeOptions {
        served_model_name: name.into(),
        ..ServeOptions::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let upstream = rzero_serve::spawn(support::local(&loaded), any, opts("tiny")).unwrap();
    let client = |url: String, model: &str| {
        OpenAiClient::new(RemoteConfig {
            base_urls: vec![url],
            model: model.into(),
            retries: 0,
            timeout_s: 120.0,
            max_concurrency: 4,
            ..RemoteConfig::default()
        })
        .unwrap()
    };
    let proxy = rzero_serve::spawn(
        Arc::new(client(upstream.base_url(), "tiny")),
        any,
        opts("front"),
    )
    .unwrap();
    let m = loaded.model().unwrap();
    let cfg = EngineConfig {
        eos_token_ids: loaded.eos_token_ids(),
        ..EngineConfig::default()
    };
    let local = engine::LocalSampler::new(&m, &loaded.tokenizer, None, cfg).unwrap();
    // Greedy with a stop string taken from the greedy text, sampled with n = 3, logprobs.
    let greedy = SamplingParams {
        ignore_eos: true,
        logprobs: true,
        ..SamplingParams::greedy(16)
    };
    let full = local
        .generate(&[TextRequest::text("1 2 3", greedy.clone())])
        .unwrap();
    let chars: Vec<char> = full[0][0].text.chars().collect();
    assert!(chars.len() >= 6, "greedy text too short: {chars:?}");
    let stop: String = chars[3..5].iter().collect();
    let reqs = vec![
        TextRequest::text(
            "1 2 3",
            SamplingParams {
                stop: vec![stop.clone()],
                ..greedy.clone()
            },
        ),
        TextRequest::text(
            "Hello world",
            SamplingParams {
                n: 3,
                temperature: 1.0,
                seed: 5,
                ..greedy
            },
        ),
    ];
    let want = local.generate(&reqs).unwrap();
    assert_eq!(want[0][0].stop_string.as_deref(), Some(stop.as_str()));
    let got = client(proxy.base_url(), "front").generate(&reqs).unwrap();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.len(), w.len());
        for (g, w) in g.iter().zip(w) {
            assert_eq!(g.text, w.text);
            assert_eq!(g.token_ids, w.token_ids);
            assert_eq!(g.finish_reason, w.finish_reason);
            assert_eq!(g.stop_string, w.stop_string);
            let (gl, wl) = (g.logprobs.as_ref().unwrap(), w.logprobs.as_ref().unwrap());
            assert_eq!(gl.len(), wl.len());
            for (a, b) in gl.iter().zip(wl) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }
    // The local engine behind it reported its steps and every completion through the trait.
    assert!(upstream.stats().steps.load(Ordering::Relaxed) > 0);
    assert_eq!(upstream.stats().completions.load(Ordering::Relaxed), 4);
    assert_eq!(proxy.stats().completions.load(Ordering::Relaxed), 4);
    // A token prompt goes through the proxy as token ids (exact on rzero serve). Without a
    // `seed` the proxy draws one that the upstream accepts (a signed 64-bit integer).
    let ids = loaded.tokenizer.encode("1 2 3", false).unwrap();
    let (st, v) = post(
        proxy.addr(),
        "/v1/completions",
        json!({"model": "front", "prompt": ids, "max_tokens": 16, "temperature": 0, "ignore_eos": true}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["token_ids"], json!(full[0][0].token_ids));
    assert_eq!(v["usage"]["prompt_tokens"], json!(ids.len()));
    for _ in 0..8 {
        let (st, v) = post(
            proxy.addr(),
            "/v1/completions",
            json!({"model": "front", "prompt": "1 2 3", "max_tokens": 2}),
        );
        assert_eq!(st, 200, "{v}");
    }
}
