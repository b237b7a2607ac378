//! The evaluation's LLM re-check end to end: `eval::run_eval_judged` with a scripted model
//! and `remote::OpenAiJudge` against a local chat-completions server (axum on 127.0.0.1) that
//! answers "Yes" or "No". Checks the reference's prompt and temperature on the wire, that
//! only answers graded wrong are sent, `pass@1` and `pass@1+judge` side by side, the API key
//! header, resuming from `judge.jsonl`, and that a failing judge stops the eval.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use eval::{Benchmark, EvalOptions, GenParams, Generator};
use remote::{JudgeConfig, OpenAiJudge};
use serde_json::{json, Value};

/// One request the judge server received: (authorization header, body).
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

struct JudgeServer {
    url: String,
    seen: Seen,
    _rt: tokio::runtime::Runtime,
}

/// A chat-completions server that replies "Yes" when the user message contains `yes_if`,
/// "No" otherwise, and HTTP 401 when `status` says so.
fn judge_server(yes_if: &'static str, status: StatusCode) -> JudgeServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let seen: Seen = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                move |State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    seen.lock().unwrap().push((auth, body.clone()));
                    if status != StatusCode::OK {
                        return (status, Json(json!({"error": {"message": "bad key"}})));
                    }
                    let user = body["messages"][1]["content"].as_str().unwrap_or("");
                    let reply = if user.contains(yes_if) { "Yes" } else { "No" };
                    (
                        StatusCode::OK,
                        Json(json!({
                            "id": "x", "object": "chat.completion", "model": body["model"],
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": reply}}]
                        })),
                    )
                },
            ),
        )
        .with_state(seen.clone());
    rt.spawn(async move { axum::serve(listener, app).await });
    JudgeServer { url, seen, _rt: rt }
}

/// Answers each question with a fixed response.
struct Scripted(Vec<(&'static str, &'static str)>);

impl Generator for Scripted {
    fn generate(
        &mut self,
        prompts: &[String],
        n: usize,
        _: &GenParams,
    ) -> eval::Result<Vec<Vec<String>>> {
        Ok(prompts
            .iter()
            .map(|p| {
                let (_, r) = self
                    .0
                    .iter()
                    .find(|(q, _)| p.contains(q))
                    .expect("scripted question");
                vec![r.to_string(); n]
            })
            .collect())
    }
}

const BENCH: &str = r#"{"question": "Q-one: 2+2?", "answer": "4"}
{"question": "Q-two: 3*4?", "answer": "12"}
{"question": "Q-three: 10+2?", "answer": "12"}
{"question": "Q-four: 1+1?", "answer": "2"}
{"question": "Q-five: 5+5?", "answer": "10"}
"#;

fn model() -> Scripted {
    Scripted(vec![
        // correct
        ("Q-one", "2+2 = \\boxed{4}"),
        // wrong box, the judge is persuaded ("twelve")
        ("Q-two", "3*4 is twelve, so \\boxed{13}"),
        // no box at all, the judge is persuaded
        ("Q-three", "ten plus two is twelve"),
        // wrong, the judge says No
        ("Q-four", "\\boxed{3}"),
        // correct under first-boxed, wrong under last-boxed
        ("Q-five", "\\boxed{10}\nHmm, maybe \\boxed{11}"),
    ])
}

fn opts(answer: eval::AnswerRule) -> EvalOptions {
    EvalOptions {
        model: "scripted".into(),
        max_new_tokens: 32,
        batch_size: 2,
        answer,
        ..EvalOptions::default()
    }
}

fn bench() -> Benchmark {
    Benchmark::from_jsonl_str("mini", BENCH).unwrap()
}

#[test]
fn judge_rechecks_only_wrong_answers_and_reports_both_scores() {
    let server = judge_server("twelve", StatusCode::OK);
    let mut judge = OpenAiJudge::new(&JudgeConfig::new(
        &server.url,
        "gpt-4o",
        Some("sk-test".into()),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut gen = model();
    let r = eval::run_eval_judged(
        &mut gen,
        Some(&mut judge),
        &[bench()],
        &opts(eval::AnswerRule::FirstBoxed),
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    let b = &r.benchmarks[0];
    // Without the judge: Q-one and Q-five (first box 10) are right.
    assert_eq!(b.pass_at_1, Some(2.0 / 5.0));
    // With it: Q-two and Q-three flip, Q-four stays wrong.
    assert_eq!(b.pass_at_1_judged, Some(4.0 / 5.0));
    assert!(b.pass_at_1_judged >= b.pass_at_1);
    assert_eq!((b.judge_rechecked, b.judge_flipped), (Some(3), Some(2)));
    assert_eq!(
        r.judge.as_deref(),
        Some(format!("gpt-4o @ {}", server.url).as_str())
    );

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "only the three wrong answers are sent: {seen:?}"
    );
    for (auth, body) in &seen {
        assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
        assert_eq!(body["model"], "gpt-4o");
        assert!((body["temperature"].as_f64().unwrap() - 0.1).abs() < 1e-6);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(
            body["messages"][0]["content"],
            "You are a math answer checker."
        );
        let user = body["messages"][1]["content"].as_str().unwrap();
        // Correct answers are never re-checked.
        assert!(
            !user.contains("\\boxed{4}") && !user.contains("\\boxed{10}"),
            "{user}"
        );
    }
    let users: Vec<&str> = seen
        .iter()
        .map(|(_, b)| b["messages"][1]["content"].as_str().unwrap())
        .collect();
    // The reference's exact text: gold in the "answer" slot, the whole response in the
    // "ground truth" slot.
    assert!(users.contains(
        &"Hi, there is a answer: 2\n\n, and the ground truth answer is: \\boxed{3}\n\n, please check whether the answer is correct or not, and return the **only** Yes or No."
    ));

    // results.json holds both scores, separately.
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(v["benchmarks"][0]["pass@1"], json!(0.4));
    assert_eq!(v["benchmarks"][0]["pass@1+judge"], json!(0.8));
    assert_eq!(v["average"]["pass@1+judge"], json!(0.8));
    let table = eval::format_table(&r);
    assert!(table.contains("pass@1+judge") && table.contains("80.0") && table.contains("40.0"));

    // A rerun reuses judge.jsonl: no new call.
    let r2 = eval::run_eval_judged(
        &mut model(),
        Some(&mut judge),
        &[bench()],
        &opts(eval::AnswerRule::FirstBoxed),
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r2.benchmarks, r.benchmarks);
    assert_eq!(server.seen.lock().unwrap().len(), 3);

    // Under last-boxed Q-five is wrong too, and only it is new to the judge.
    let r3 = eval::run_eval_judged(
        &mut model(),
        Some(&mut judge),
        &[bench()],
        &opts(eval::AnswerRule::LastBoxed),
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r3.benchmarks[0].pass_at_1, Some(1.0 / 5.0));
    assert_eq!(r3.benchmarks[0].pass_at_1_judged, Some(3.0 / 5.0));
    assert_eq!(server.seen.lock().unwrap().len(), 4);

    // Without a judge: no judged score at all.
    let plain = eval::run_eval(
        &mut model(),
        &[bench()],
        &opts(eval::AnswerRule::FirstBoxed),
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(plain.benchmarks[0].pass_at_1_judged, None);
    assert_eq!(plain.judge, None);
    assert!(!eval::format_table(&plain).contains("judge"));
}

#[test]
fn a_failing_judge_stops_the_eval() {
    let server = judge_server("twelve", StatusCode::UNAUTHORIZED);
    let mut judge = OpenAiJudge::new(&JudgeConfig::new(&server.url, "gpt-4o", None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = eval::run_eval_judged(
        &mut model(),
        Some(&mut judge),
        &[bench()],
        &opts(eval::AnswerRule::FirstBoxed),
        dir.path(),
        &mut |_| {},
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("judge") && msg.contains("401"), "{msg}");
    assert!(!dir.path().join("results.json").exists());
    // No key configured: no Authorization header.
    assert_eq!(server.seen.lock().unwrap()[0].0, None);
}
