//! The client against misbehaving servers (a hand-written HTTP server in the test): dropped
//! connections, 500s, stalls past the timeout, a server that dies mid-batch, 4xx answers,
//! servers that ignore `n`, and load spread / failover across several servers.

mod common;

use std::time::{Duration, Instant};

use common::{ok_body, Action, FakeServer};
use remote::{Error, OpenAiClient, RemoteConfig, SamplingParams, TextRequest};
use serde_json::Value;

fn client(urls: Vec<String>, retries: usize, timeout_s: f64) -> OpenAiClient {
    OpenAiClient::new(RemoteConfig {
        base_urls: urls,
        model: "m".into(),
        retries,
        backoff_ms: 10,
        timeout_s,
        max_concurrency: 4,
        ..RemoteConfig::default()
    })
    .unwrap()
}

fn reqs(k: usize, n: usize) -> Vec<TextRequest> {
    (0..k)
        .map(|i| {
            TextRequest::text(
                format!("prompt {i}"),
                SamplingParams {
                    n,
                    seed: 50,
                    max_new_tokens: 4,
                    ..SamplingParams::default()
                },
            )
        })
        .collect()
}

/// Asserts an `Unavailable` error naming `url`, with `attempts` attempts and a cause
/// containing `cause`.
fn assert_unavailable(
    r: remote::Result<Vec<Vec<remote::TextCompletion>>>,
    url: &str,
    attempts: usize,
    cause: &str,
) {
    match r {
        Err(e @ Error::Unavailable { .. }) => {
            let msg = e.to_string();
            let Error::Unavailable {
                url: u,
                attempts: a,
                cause: c,
            } = e
            else {
                unreachable!()
            };
            assert!(u.contains(url), "{msg}");
            assert_eq!(a, attempts, "{msg}");
            assert!(
                c.contains(cause),
                "cause {c:?} should mention {cause:?} ({msg})"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn dropped_connections_are_retried_then_fail() {
    let s = FakeServer::start(|_, _| Action::Drop);
    let r = client(vec![s.url()], 2, 5.0).generate(&reqs(1, 1));
    assert_unavailable(r, &s.url(), 3, "connection");
    assert_eq!(s.count(), 3, "1 attempt + 2 retries");
}

#[test]
fn http_500_is_retried_then_fails() {
    let s = FakeServer::start(|_, _| {
        Action::Respond(500, r#"{"error":{"message":"CUDA out of memory"}}"#.into())
    });
    let r = client(vec![s.url()], 3, 5.0).generate(&reqs(1, 1));
    assert_unavailable(r, &s.url(), 4, "HTTP 500: CUDA out of memory");
    assert_eq!(s.count(), 4);
}

#[test]
fn stalls_time_out_and_are_retried() {
    let s = FakeServer::start(|_, _| Action::Stall(Duration::from_secs(5)));
    let t = Instant::now();
    let r = client(vec![s.url()], 1, 0.3).generate(&reqs(1, 1));
    assert_unavailable(r, &s.url(), 2, "timed out");
    assert_eq!(s.count(), 2);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the timeout bounds each attempt"
    );
}

#[test]
fn refused_connection_names_the_url() {
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let r = client(vec![url.clone()], 1, 2.0).generate(&reqs(1, 1));
    assert_unavailable(r, &url, 2, "");
}

#[test]
fn transient_failures_recover() {
    let s = FakeServer::start(|k, _| match k {
        0 => Action::Drop,
        1 => Action::Respond(503, "overloaded".into()),
        _ => Action::Respond(200, ok_body(1, "ok")),
    });
    let r = client(vec![s.url()], 2, 5.0).generate(&reqs(1, 1)).unwrap();
    assert_eq!(r[0][0].text, "ok0");
    assert_eq!(s.count(), 3);
}

#[test]
fn a_server_dying_mid_batch_fails_the_whole_batch() {
    // The first two requests succeed, then the server answers 500 forever: no partial batch.
    let s = FakeServer::start(|k, _| {
        if k < 2 {
            Action::Respond(200, ok_body(1, "ok"))
        } else {
            Action::Respond(500, "dead".into())
        }
    });
    let r = client(vec![s.url()], 1, 5.0).generate(&reqs(6, 1));
    assert_unavailable(r, &s.url(), 2, "HTTP 500");
}

#[test]
fn client_errors_are_not_retried() {
    let s = FakeServer::start(|_, _| {
        Action::Respond(
            400,
            r#"{"error":{"message":"top_k is not allowed","param":"top_k"}}"#.into(),
        )
    });
    match client(vec![s.url()], 3, 5.0).generate(&reqs(1, 1)) {
        Err(Error::Rejected {
            status,
            message,
            url,
        }) => {
            assert_eq!(status, 400);
            assert_eq!(message, "top_k is not allowed");
            assert_eq!(url, format!("{}/v1/completions", s.url()));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(s.count(), 1);
}

#[test]
fn malformed_success_is_a_bad_response() {
    let s = FakeServer::start(|_, _| Action::Respond(200, r#"{"choices":[{"index":0}]}"#.into()));
    let r = client(vec![s.url()], 3, 5.0).generate(&reqs(1, 1));
    assert!(matches!(r, Err(Error::BadResponse { .. })), "{r:?}");
}

#[test]
fn servers_ignoring_n_get_one_call_per_sample_with_seed_plus_j() {
    // Like llama.cpp: always one choice, whatever n.
    let s = FakeServer::start(|_, req| {
        let v: Value = serde_json::from_str(&req.body).unwrap();
        Action::Respond(200, ok_body(1, &format!("seed{}-", v["seed"])))
    });
    let r = client(vec![s.url()], 0, 5.0).generate(&reqs(1, 4)).unwrap();
    let texts: Vec<&str> = r[0].iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["seed50-0", "seed51-0", "seed52-0", "seed53-0"]);
    assert_eq!(s.count(), 4, "one n=4 call, then 3 single calls");
    // From now on the server is known to ignore n: n single calls at once.
    let c = client(vec![s.url()], 0, 5.0);
    c.generate(&reqs(1, 2)).unwrap();
    c.generate(&reqs(1, 2)).unwrap();
    let ns: Vec<u64> = s.requests()[4..]
        .iter()
        .map(|q| {
            serde_json::from_str::<Value>(&q.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        ns,
        [2, 1, 1, 1],
        "detected on the first call, split afterwards"
    );
}

#[test]
fn load_spreads_and_fails_over_across_servers() {
    let slow_ok = |_: usize, _: &common::Seen| {
        std::thread::sleep(Duration::from_millis(20));
        Action::Respond(200, ok_body(1, "ok"))
    };
    let a = FakeServer::start(slow_ok);
    let b = FakeServer::start(slow_ok);
    let r = client(vec![a.url(), b.url()], 0, 5.0)
        .generate(&reqs(40, 1))
        .unwrap();
    assert_eq!(r.len(), 40);
    assert!(
        a.count() >= 10 && b.count() >= 10,
        "spread: {} / {}",
        a.count(),
        b.count()
    );
    // One server down: every request still succeeds through the other.
    let dead = FakeServer::start(|_, _| Action::Drop);
    let good = FakeServer::start(slow_ok);
    let r = client(vec![dead.url(), good.url()], 2, 5.0)
        .generate(&reqs(10, 1))
        .unwrap();
    assert!(r.iter().all(|x| x[0].text == "ok0"));
    assert_eq!(good.count(), 10);
}

#[test]
fn the_request_body_carries_every_parameter() {
    let s = FakeServer::start(|_, _| Action::Respond(200, ok_body(2, "x")));
    let c = OpenAiClient::new(RemoteConfig {
        base_urls: vec![format!("{}/v1/", s.url())],
        model: "m".into(),
        api_key: Some("k".into()),
        extra_body: serde_json::from_str(r#"{"repeat_penalty": 1.0}"#).unwrap(),
        ..RemoteConfig::default()
    })
    .unwrap();
    let p = SamplingParams {
        n: 2,
        temperature: 0.7,
        top_p: 0.9,
        top_k: 20,
        min_p: 0.05,
        max_new_tokens: 33,
        stop: vec!["</s>".into()],
        stop_token_ids: vec![7],
        ignore_eos: true,
        seed: 9,
        logprobs: true,
        force_answer: None,
    };
    let r = c.generate(&[TextRequest::text("hi", p)]);
    // ok_body has no logprobs: fine, they are reported when present.
    assert_eq!(r.unwrap()[0].len(), 2);
    let q = &s.requests()[0];
    assert_eq!(q.path, "/v1/completions");
    let v: Value = serde_json::from_str(&q.body).unwrap();
    let expect: Value = serde_json::from_str(
        r#"{"model":"m","prompt":"hi","n":2,"temperature":0.7,"top_p":0.9,"top_k":20,"min_p":0.05,
            "max_tokens":33,"stop":["</s>"],"stop_token_ids":[7],"ignore_eos":true,"seed":9,
            "logprobs":1,"stream":false,"repeat_penalty":1.0}"#,
    )
    .unwrap();
    for (k, want) in expect.as_object().unwrap() {
        let got = &v[k];
        let same = match (got.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-6,
            _ => got == want,
        };
        assert!(same, "{k}: {got} vs {want}");
    }
}
