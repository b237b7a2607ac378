//! `rzero serve` facing a network: API key, refusal to bind a public address without one,
//! bounded work (queue, deadline, caps, byte cap), cancellation of requests whose client went
//! away (also mid-generation), continuous batching across requests, `/health` and
//! `/v1/models`. Real HTTP on 127.0.0.1 with the llama-tiny fixture model.

#[path = "../../remote/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use remote::{OpenAiClient, RemoteConfig};
use rzero_serve::{ServeOptions, ServerHandle};
use serde_json::{json, Value};

fn loaded() -> model::LoadedModel {
    let dir = fixture();
    model::load(dir.to_str().unwrap(), &model::LoadOptions::default()).unwrap()
}

fn fixture() -> std::path::PathBuf {
    testdata::model_dir("llama-tiny")
}

fn start(tweak: impl FnOnce(&mut ServeOptions)) -> ServerHandle {
    let mut opts = ServeOptions {
        served_model_name: "tiny".into(),
        ..ServeOptions::default()
    };
    tweak(&mut opts);
    rzero_serve::spawn(
        support::local(&loaded()),
        "127.0.0.1:0".parse().unwrap(),
        opts,
    )
    .unwrap()
}

/// One HTTP/1.1 call: (status, lower-case headers, body).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        msg.push_str(&format!("{k}: {v}\r\n"));
    }
    msg.push_str("\r\n");
    s.write_all(msg.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn post(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let (status, _, b) = call(addr, "POST", "/v1/completions", &[], &body.to_string());
    let v = serde_json::from_str(&b).unwrap_or(Value::String(b));
    (status, v)
}

/// A request that keeps the tiny model busy: `n` samples of 250 tokens.
fn long(n: usize) -> Value {
    json!({"model": "tiny", "prompt": "1 2 3", "n": n, "max_tokens": 250, "ignore_eos": true, "temperature": 1.0, "seed": 1})
}

fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn api_key_guards_the_v1_routes() {
    let s = start(|o| o.api_key = Some("sesame".into()));
    let a = s.addr();
    let (st, _, body) = call(a, "GET", "/v1/models", &[], "");
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let (st, _, _) = call(
        a,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer wrong")],
        "",
    );
    assert_eq!(st, 401);
    let req = json!({"model": "tiny", "prompt": "hi", "max_tokens": 2}).to_string();
    let (st, _, _) = call(a, "POST", "/v1/completions", &[], &req);
    assert_eq!(st, 401, "completions without the key");
    let (st, _, _) = call(
        a,
        "POST",
        "/v1/completions",
        &[("Authorization", "Bearer sesame")],
        &req,
    );
    assert_eq!(st, 200);
    // /health stays open (load balancers probe it), as in vLLM.
    assert_eq!(call(a, "GET", "/health", &[], "").0, 200);
    // The client sends the key.
    let cfg = |key: Option<&str>| RemoteConfig {
        base_urls: vec![s.base_url()],
        model: "tiny".into(),
        api_key: key.map(str::to_string),
        retries: 0,
        timeout_s: 60.0,
        ..RemoteConfig::default()
    };
    let req = [remote::TextRequest::text(
        "hi",
        remote::SamplingParams::greedy(2),
    )];
    let ok = OpenAiClient::new(cfg(Some("sesame")))
        .unwrap()
        .generate(&req);
    assert!(ok.is_ok(), "{ok:?}");
    let e = OpenAiClient::new(cfg(None))
        .unwrap()
        .generate(&req)
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
}

#[test]
fn a_public_address_needs_a_key_or_insecure() {
    let m = loaded();
    let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let opts = ServeOptions::default();
    let e = rzero_serve::spawn(support::local(&m), public, opts.clone())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("API key"), "{e}");
    let with_key = ServeOptions {
        api_key: Some("k".into()),
        ..opts.clone()
    };
    rzero_serve::spawn(support::local(&m), public, with_key)
        .unwrap()
        .shutdown()
        .unwrap();
    let insecure = ServeOptions {
        insecure: true,
        ..opts
    };
    rzero_serve::spawn(support::local(&m), public, insecure)
        .unwrap()
        .shutdown()
        .unwrap();
}

#[test]
fn models_does_not_expose_the_path_and_health_reports_a_dead_engine() {
    let s = start(|_| {});
    let (st, _, body) = call(s.addr(), "GET", "/v1/models", &[], "");
    assert_eq!(st, 200);
    let dir = fixture();
    assert!(!body.contains("fixtures"), "{body}");
    assert!(
        !body.contains(dir.file_name().unwrap().to_str().unwrap()),
        "{body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["root"], "tiny");

    assert_eq!(call(s.addr(), "GET", "/health", &[], "").0, 200);
    s.crash_engine_for_tests();
    wait_until("health says 503", 10, || {
        call(s.addr(), "GET", "/health", &[], "").0 == 503
    });
    let (st, v) = post(s.addr(), &json!({"prompt": "hi", "max_tokens": 2}));
    assert_eq!(st, 503, "{v}");
}

#[test]
fn a_full_queue_answers_429() {
    let s = start(|o| o.max_queued_samples = 4);
    let a = s.addr();
    let busy = std::thread::spawn(move || post(a, &long(4)));
    wait_until("the long request runs", 30, || {
        s.stats().queued_samples.load(Ordering::SeqCst) == 4
    });
    let (st, h, body) = call(
        a,
        "POST",
        "/v1/completions",
        &[],
        &json!({"prompt": "hi", "max_tokens": 2}).to_string(),
    );
    assert_eq!(st, 429, "{body}");
    assert!(h.iter().any(|(k, _)| k == "retry-after"), "{h:?}");
    assert!(body.contains("busy"), "{body}");
    assert_eq!(busy.join().unwrap().0, 200);
    assert_eq!(s.stats().rejected.load(Ordering::Relaxed), 1);
    assert_eq!(s.stats().queued_samples.load(Ordering::SeqCst), 0);
    // Room again.
    assert_eq!(post(a, &json!({"prompt": "hi", "max_tokens": 2})).0, 200);
}

#[test]
fn a_request_past_its_deadline_is_cancelled_with_504() {
    // 256 × 250 tokens take seconds even on a quiet machine; the deadline is 100 ms.
    let s = start(|o| o.request_timeout = Duration::from_millis(100));
    let t0 = Instant::now();
    let (st, v) = post(s.addr(), &long(256));
    assert_eq!(st, 504, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(v["error"]["message"].as_str().unwrap().contains("deadline"));
    wait_until("the engine drops the request", 10, || {
        s.stats().cancelled.load(Ordering::Relaxed) == 1
    });
    assert_eq!(s.stats().requests.load(Ordering::Relaxed), 0);
}

#[test]
fn a_client_that_disconnects_mid_generation_is_cancelled() {
    let s = start(|_| {});
    let a = s.addr();
    let body = long(16).to_string();
    let mut conn = TcpStream::connect(a).unwrap();
    write!(
        conn,
        "POST /v1/completions HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Its batch has started: the engine is stepping.
    wait_until("the request runs", 30, || {
        s.stats().steps.load(Ordering::Relaxed) > 5
    });
    drop(conn);
    wait_until("the engine cancels the running request", 10, || {
        s.stats().cancelled.load(Ordering::Relaxed) == 1
    });
    let steps = s.stats().steps.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.stats().steps.load(Ordering::Relaxed),
        steps,
        "the engine went on generating for nobody"
    );
    assert!(
        steps < 250,
        "cancelled only after it finished ({steps} steps)"
    );
    assert_eq!(s.stats().requests.load(Ordering::Relaxed), 0);
    assert_eq!(s.stats().queued_samples.load(Ordering::SeqCst), 0);
}

#[test]
fn a_new_request_joins_the_running_batch() {
    let s = start(|_| {});
    let a = s.addr();
    let busy = std::thread::spawn(move || post(a, &long(16)));
    wait_until("the long request runs", 30, || {
        s.stats().steps.load(Ordering::Relaxed) > 5
    });
    let (st, v) = post(
        a,
        &json!({"prompt": "hi", "max_tokens": 3, "ignore_eos": true}),
    );
    assert_eq!(st, 200, "{v}");
    assert!(
        !busy.is_finished(),
        "the short request waited for the whole running batch"
    );
    assert_eq!(busy.join().unwrap().0, 200);
    assert!(s.stats().peak_running.load(Ordering::Relaxed) >= 17);
}

#[test]
fn oversized_requests_are_refused_before_any_work() {
    let s = start(|o| {
        o.max_prompt_bytes = 1000;
        o.max_request_tokens = 100;
        o.max_body_bytes = 64 << 10;
    });
    let a = s.addr();
    let big = "x ".repeat(1000);
    let (st, v) = post(a, &json!({"prompt": big, "max_tokens": 1}));
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"]["param"], "prompt");
    let (st, v) = post(a, &json!({"prompt": [big.clone(), "y"], "max_tokens": 1}));
    assert_eq!(st, 413, "{v}");
    let (st, _, b) = call(
        a,
        "POST",
        "/v1/chat/completions",
        &[],
        &json!({"messages": [{"role": "user", "content": big}], "max_tokens": 1}).to_string(),
    );
    assert_eq!(st, 413, "{b}");
    // n × max_tokens over the cap.
    let (st, v) = post(a, &json!({"prompt": "hi", "n": 2, "max_tokens": 60}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["param"], "max_tokens");
    assert_eq!(
        post(a, &json!({"prompt": "hi", "n": 2, "max_tokens": 50})).0,
        200
    );
    // A body over the limit.
    let huge = json!({"prompt": "a".repeat(100 << 10)}).to_string();
    let (st, _, b) = call(a, "POST", "/v1/completions", &[], &huge);
    assert_eq!(st, 413, "{b}");
    let v: Value = serde_json::from_str(&b).expect("a JSON error body");
    assert!(v["error"]["message"].is_string(), "{b}");
    // Nothing was queued by the refused requests.
    assert_eq!(s.stats().requests.load(Ordering::Relaxed), 1);
}

#[test]
fn a_timeout_too_large_for_a_duration_is_an_error() {
    let cfg = RemoteConfig {
        base_urls: vec!["http://127.0.0.1:1".into()],
        model: "m".into(),
        timeout_s: 1e300,
        ..RemoteConfig::default()
    };
    let e = OpenAiClient::new(cfg).err().expect("refused");
    assert!(e.to_string().contains("timeout_s"), "{e}");
}
