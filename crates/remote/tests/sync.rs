//! Weight sync against fake servers: the reload command + `/v1/models` polling, and vLLM's
//! LoRA adapter endpoints.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Action, FakeServer};
use remote::sync::{load_lora_adapter, reload_command, replace_lora_adapter, wait_for_model};
use serde_json::{json, Value};

/// A server whose `/v1/models` lists the contents of `file` (nothing while it is absent),
/// like a vLLM server restarted with `--served-model-name`.
fn models_server(file: std::path::PathBuf) -> FakeServer {
    FakeServer::start(move |_, req| {
        assert_eq!(req.path, "/v1/models");
        let ids: Vec<Value> = std::fs::read_to_string(&file)
            .ok()
            .map(|s| vec![json!({"id": s.trim(), "object": "model"})])
            .unwrap_or_default();
        Action::Respond(200, json!({"object": "list", "data": ids}).to_string())
    })
}

#[test]
fn reload_runs_the_command_and_waits_for_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("served");
    let a = models_server(state.clone());
    let b = models_server(state.clone());
    // A checkpoint path with a space and a quote: it must reach the command as one argument.
    let ck = dir.path().join("iter 1's solver");
    std::fs::create_dir(&ck).unwrap();
    // The "restart" writes the served name after a delay, in the background, as a real
    // restart would become ready later.
    let cmd = format!(
        "(sleep 0.5; printf %s {{checkpoint}} > {}) &",
        state.display()
    );
    let t = Instant::now();
    reload_command(
        &cmd,
        &ck,
        &[a.url(), b.url()],
        ck.to_str().unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "it waited for the model"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        ck.to_str().unwrap()
    );
    assert!(a.count() >= 2, "polled until ready");
}

#[test]
fn reload_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("served");
    let s = models_server(state.clone());
    let ck = dir.path().join("ck");
    // The server comes back with another model: timeout naming the URL and what it lists.
    let cmd = format!("printf other > {} # {{checkpoint}}", state.display());
    let e = reload_command(&cmd, &ck, &[s.url()], "wanted", Duration::from_millis(800))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&s.url()) && e.contains("wanted") && e.contains("other"),
        "{e}"
    );
    // The command fails: its status and stderr.
    let e = reload_command(
        "echo boom >&2; exit 3 # {checkpoint}",
        &ck,
        &[s.url()],
        "x",
        Duration::from_secs(5),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("boom") && e.contains('3'), "{e}");
    // The command hangs: killed at the timeout.
    let t = Instant::now();
    let e = reload_command(
        "sleep 30 # {checkpoint}",
        &ck,
        &[s.url()],
        "x",
        Duration::from_millis(300),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("did not finish"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // No placeholder.
    assert!(reload_command("true", &ck, &[s.url()], "x", Duration::from_secs(1)).is_err());
    // A server that never answers.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = wait_for_model(
        &format!("http://127.0.0.1:{port}"),
        "x",
        Duration::from_millis(300),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&port.to_string()), "{e}");
}

#[test]
fn lora_adapters_use_the_vllm_endpoints() {
    let s = FakeServer::start(|k, req| match (k, req.path.as_str()) {
        (_, "/v1/load_lora_adapter") if k < 3 => Action::Respond(200, "\"Success\"".into()),
        (_, "/v1/unload_lora_adapter") => {
            Action::Respond(404, r#"{"message":"not loaded"}"#.into())
        }
        _ => Action::Respond(
            400,
            r#"{"error":{"message":"adapter already loaded"}}"#.into(),
        ),
    });
    load_lora_adapter(&s.url(), "solver", Path::new("/ck/iter_1/solver_lora")).unwrap();
    // Replace: an unload that fails (not loaded) is fine.
    replace_lora_adapter(&format!("{}/v1", s.url()), "solver", Path::new("/ck/2")).unwrap();
    let seen = s.requests();
    assert_eq!(seen[0].path, "/v1/load_lora_adapter");
    let v: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        v,
        json!({"lora_name": "solver", "lora_path": "/ck/iter_1/solver_lora"})
    );
    assert_eq!(seen[1].path, "/v1/unload_lora_adapter");
    assert_eq!(
        serde_json::from_str::<Value>(&seen[1].body).unwrap(),
        json!({"lora_name": "solver"})
    );
    assert_eq!(seen[2].path, "/v1/load_lora_adapter");
    // A refusal carries the server's message and the URL.
    let e = load_lora_adapter(&s.url(), "solver", Path::new("/x"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter already loaded") && e.contains("/v1/load_lora_adapter"),
        "{e}"
    );
}

#[test]
fn client_sync_to_reloads_and_switches_model() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("served");
    let s = models_server(state.clone());
    let ck = dir.path().join("iter_2").join("solver");
    let cfg: remote::RemoteConfig = serde_json::from_value(json!({
        "base_urls": [s.url()],
        "model": "base",
        "reload_command": format!("printf %s {{checkpoint}} > {}", state.display()),
        "reload_timeout_s": 10.0,
    }))
    .unwrap();
    let mut c = remote::OpenAiClient::new(cfg).unwrap();
    c.sync_to(&ck).unwrap();
    assert_eq!(c.config().model, ck.to_str().unwrap());
    // Unknown config fields are refused, naming the field.
    let e = serde_json::from_value::<remote::RemoteConfig>(json!({"base_urls": [], "bogus": 1}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
    // A reload command without the placeholder is refused up front.
    let bad = remote::RemoteConfig {
        base_urls: vec![s.url()],
        model: "m".into(),
        reload_command: Some("systemctl restart vllm".into()),
        ..remote::RemoteConfig::default()
    };
    assert!(remote::OpenAiClient::new(bad).is_err());
}
