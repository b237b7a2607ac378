//! The client against a real llama.cpp server (`llama_cpp.server` on the SmolLM2 GGUF).
//! Marked `#[ignore]` (counted as "ignored" by `cargo test`, never silently passed): building
//! llama.cpp takes 10-15 minutes, more than CI's budget. Run it with
//! `scripts/llamacpp-server.sh --background`, then
//! `RZERO_LLAMACPP_URL=http://127.0.0.1:8081 cargo test -p remote --test llamacpp -- --ignored`;
//! run that way without `RZERO_LLAMACPP_URL` it fails. `RZERO_LLAMACPP_MODEL` is the model id
//! (default `smollm2`, the script's alias).

use remote::{ChatMessage, FinishReason, OpenAiClient, RemoteConfig, SamplingParams, TextRequest};

fn client() -> OpenAiClient {
    let url = std::env::var("RZERO_LLAMACPP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("RZERO_LLAMACPP_URL is not set (start a server with scripts/llamacpp-server.sh)");
    let model = std::env::var("RZERO_LLAMACPP_MODEL").unwrap_or_else(|_| "smollm2".into());
    OpenAiClient::new(RemoteConfig {
        base_urls: vec![url],
        model,
        timeout_s: 120.0,
        retries: 1,
        // llama.cpp applies a repetition penalty of 1.1 unless told otherwise.
        extra_body: serde_json::from_str(r#"{"repeat_penalty": 1.0}"#).unwrap(),
        ..RemoteConfig::default()
    })
    .unwrap()
}

fn p(temperature: f32, max: usize) -> SamplingParams {
    SamplingParams {
        temperature,
        max_new_tokens: max,
        ..SamplingParams::default()
    }
}

const Q: &str = "<|im_start|>user\nWhat is 7 times 6?<|im_end|>\n<|im_start|>assistant\n";

#[test]
#[ignore = "needs a llama.cpp server: scripts/llamacpp-server.sh, then RZERO_LLAMACPP_URL=.. cargo test -- --ignored"]
fn llamacpp_server_end_to_end() {
    let c = client();
    let model = c.config().model.clone();
    let models = c.models().unwrap();
    assert!(models[0].contains(&model), "{models:?}");

    // Greedy: deterministic.
    let g1 = c.generate(&[TextRequest::text(Q, p(0.0, 24))]).unwrap();
    let g2 = c.generate(&[TextRequest::text(Q, p(0.0, 24))]).unwrap();
    assert_eq!(g1, g2);
    let greedy = g1[0][0].text.clone();
    assert!(!greedy.trim().is_empty());
    eprintln!("greedy: {greedy:?}");

    // n = 3 (llama.cpp ignores n: the client detects it and splits, seed + j).
    let sp = |seed| SamplingParams {
        n: 3,
        seed,
        ..p(1.0, 16)
    };
    let a = c.generate(&[TextRequest::text(Q, sp(11))]).unwrap();
    let b = c.generate(&[TextRequest::text(Q, sp(11))]).unwrap();
    let other = c.generate(&[TextRequest::text(Q, sp(12))]).unwrap();
    assert_eq!(a[0].len(), 3);
    assert_eq!(a, b, "same seed, same samples");
    assert_ne!(a, other, "another seed, other samples");
    eprintln!(
        "samples: {:?}",
        a[0].iter().map(|c| &c.text).collect::<Vec<_>>()
    );

    // top_k = 1 and min_p = 1 at temperature 1 reduce to greedy.
    for (name, q) in [
        (
            "top_k",
            SamplingParams {
                top_k: 1,
                seed: 4,
                ..p(1.0, 24)
            },
        ),
        (
            "min_p",
            SamplingParams {
                min_p: 1.0,
                seed: 4,
                ..p(1.0, 24)
            },
        ),
    ] {
        let r = c.generate(&[TextRequest::text(Q, q)]).unwrap();
        assert_eq!(r[0][0].text, greedy, "{name}");
    }
    // top_p is accepted.
    let r = c
        .generate(&[TextRequest::text(
            Q,
            SamplingParams {
                top_p: 0.5,
                ..p(0.7, 8)
            },
        )])
        .unwrap();
    assert_eq!(r[0].len(), 1);

    // max_tokens -> length.
    let r = c
        .generate(&[TextRequest::text("Count: 1, 2, 3, 4,", p(0.0, 3))])
        .unwrap();
    assert_eq!(r[0][0].finish_reason, FinishReason::Length);

    // A stop string from the middle of the greedy text cuts it there.
    let chars: Vec<char> = greedy.chars().collect();
    if chars.len() >= 8 {
        let stop: String = chars[4..7].iter().collect();
        let expect = &greedy[..greedy.find(&stop).unwrap()];
        let r = c
            .generate(&[TextRequest::text(
                Q,
                SamplingParams {
                    stop: vec![stop.clone()],
                    ..p(0.0, 24)
                },
            )])
            .unwrap();
        assert_eq!(r[0][0].text, expect, "stop {stop:?}");
        assert_eq!(r[0][0].finish_reason, FinishReason::Stop);
    }

    // logprobs (completions).
    let r = c
        .generate(&[TextRequest::text(
            Q,
            SamplingParams {
                logprobs: true,
                ..p(0.0, 6)
            },
        )])
        .unwrap();
    let lp = r[0][0].logprobs.as_ref().expect("logprobs");
    assert!(
        !lp.is_empty() && lp.iter().all(|x| x.is_finite() && *x <= 0.0),
        "{lp:?}"
    );

    // Chat completions: the server applies the GGUF's chat template; same answer as the
    // hand-templated prompt.
    let r = c
        .generate(&[TextRequest::chat(
            vec![ChatMessage::user("What is 7 times 6?")],
            p(0.0, 24),
        )])
        .unwrap();
    eprintln!("chat: {:?}", r[0][0].text);
    assert!(!r[0][0].text.trim().is_empty());

    // Concurrency: 8 requests at once all come back, in order.
    let reqs: Vec<TextRequest> = (0..8)
        .map(|i| TextRequest::text(format!("{i} + {i} ="), p(0.0, 4)))
        .collect();
    let r = c.generate(&reqs).unwrap();
    let single = c.generate(&reqs[5..6]).unwrap();
    assert_eq!(r.len(), 8);
    assert_eq!(r[5], single[0]);
}
