//! Downloading from the Hugging Face Hub (`model::download`), against a fake hub on
//! 127.0.0.1 that speaks the hub's file API: `/api/models/{repo}/revision/{rev}` (the file
//! list) and `/{repo}/resolve/{rev}/{file}` with the headers `hf-hub` reads (`ETag`,
//! `X-Repo-Commit`, `X-Linked-Etag`, `Content-Range`, `Content-Length`, ranges). Safetensors
//! files are served as the hub serves LFS files: a 302 to a CDN URL. The served model is the
//! qwen3-tiny fixture, so a download is checked by its log-probs.

mod common;

#[path = "support/fake_hub.rs"]
mod fake_hub;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use candle_core::DType;
use model::download::{self, HubOptions, Progress};
use model::{load::load_folder, LoadOptions};
use serde_json::Value;

use fake_hub::{etag_of, sharded_repo, tiny_repo, FakeHub, Seen, COMMIT, TOKEN};

fn fixture_dir() -> PathBuf {
    let d = common::fixtures_dir().join("models").join("qwen3-tiny");
    assert!(
        d.join("model.safetensors").is_file(),
        "fixture {} is missing (the hub tests serve it)",
        d.display()
    );
    d
}

/// Counts what the library reports.
#[derive(Default)]
struct Recorder {
    started: Vec<(String, u64)>,
    bytes: u64,
    finished: Vec<String>,
}

impl Progress for Recorder {
    fn start(&mut self, file: &str, size: u64) {
        self.started.push((file.to_string(), size));
    }
    fn advance(&mut self, bytes: u64) {
        self.bytes += bytes;
    }
    fn finish(&mut self, file: &str) {
        self.finished.push(file.to_string());
    }
}

/// The fixture's continuation log-probs from the model in `dir`.
fn assert_fixture_logprobs(dir: &Path) {
    let m = load_folder(dir, &LoadOptions::default()).unwrap();
    assert_eq!(m.config.num_hidden_layers, 3);
    let model = m.model().unwrap();
    assert_eq!(model.dtype(), DType::F32);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    let lp = &expected["logprobs"];
    let p = common::ids(&lp["prompt_ids"]);
    let c = common::ids(&lp["continuation_ids"]);
    let want = common::floats(&lp["token_logprobs"]);
    let got = model::logprobs::score(&model, &[(p, c)], 1).unwrap();
    common::assert_close("downloaded model log-probs", &got[0], &want, 1e-4, 0.0);
    // And the tokenizer came along: it encodes the fixture's prompt to its ids.
    let ids = m
        .tokenizer
        .encode(lp["prompt"].as_str().unwrap(), false)
        .unwrap();
    assert_eq!(ids, common::ids(&lp["prompt_ids"]));
}

#[test]
fn fresh_download_loads_with_the_fixture_logprobs_and_the_second_run_makes_no_request() {
    let hub = FakeHub::start();
    let files = tiny_repo(&fixture_dir());
    hub.add_repo("Org/Tiny", files.clone(), false);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let opts = hub.opts(&cache);

    let mut rec = Recorder::default();
    let snap = download::snapshot("Org/Tiny", "main", &opts, &mut rec).unwrap();
    let repo = cache.join("models--Org--Tiny");
    assert_eq!(snap, repo.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    assert!(
        !repo.join("refs").join(COMMIT).exists(),
        "no ref named after the commit (huggingface_hub writes none)"
    );
    // Standard layout: snapshot entries link into blobs/, no partial files left.
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let p = snap.join(f);
        assert_eq!(std::fs::read(&p).unwrap(), files[f], "{f}");
        #[cfg(unix)]
        {
            let target = std::fs::read_link(&p).unwrap();
            assert!(target.starts_with("../../blobs"), "{f} -> {target:?}");
        }
    }
    let blobs: Vec<String> = std::fs::read_dir(repo.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        blobs.iter().all(|b| !b.ends_with(".part")),
        "partial files left: {blobs:?}"
    );
    assert_eq!(
        std::fs::read_dir(repo.join("blobs"))
            .unwrap()
            .filter(|e| !e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".lock"))
            .count(),
        5
    );
    // Only what a model needs was fetched; the LFS file through the CDN redirect.
    let seen = hub.seen();
    for s in &seen {
        assert!(
            !s.path.contains("pytorch_model.bin")
                && !s.path.contains("README")
                && !s.path.contains("onnx"),
            "fetched {}",
            s.path
        );
        assert!(s.auth.is_none(), "no token configured, none sent");
    }
    assert!(seen.iter().any(|s| s.path.starts_with("/cdn/")));
    assert!(seen[0]
        .path
        .starts_with("/api/models/Org/Tiny/revision/main"));
    // Progress: each file started and finished, every byte reported.
    assert_eq!(rec.finished.len(), 5, "{:?}", rec.finished);
    let total: usize = rec.finished.iter().map(|f| files[f].len()).sum();
    assert_eq!(rec.bytes, total as u64);
    assert!(rec
        .started
        .iter()
        .any(|(f, n)| f == "model.safetensors" && *n == files["model.safetensors"].len() as u64));

    assert_fixture_logprobs(&snap);
    // The cache-only resolver (what Python-populated caches go through) sees it too.
    assert_eq!(model::hub::resolve_in("Org/Tiny", &cache).unwrap(), snap);

    // Second run: from the cache, no request at all.
    let before = hub.count();
    let again = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default()).unwrap();
    assert_eq!(again, snap);
    let by_commit =
        download::snapshot("Org/Tiny", COMMIT, &opts, &mut Recorder::default()).unwrap();
    assert_eq!(by_commit, snap);
    assert_eq!(hub.count(), before, "the cached model made a request");
}

#[test]
fn sharded_model_fetches_the_index_and_only_the_shards_it_names() {
    let hub = FakeHub::start();
    hub.add_repo("Org/Sharded", sharded_repo(&fixture_dir()), false);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let snap = download::snapshot(
        "Org/Sharded",
        "main",
        &hub.opts(&cache),
        &mut Recorder::default(),
    )
    .unwrap();
    let seen = hub.seen();
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ] {
        assert!(snap.join(shard).is_file(), "{shard}");
        assert!(seen.iter().any(|s| s.path.ends_with(shard)), "{shard}");
    }
    assert!(!seen.iter().any(|s| s.path.contains("stray")));
    assert!(!snap.join("model-stray.safetensors").exists());
    assert_fixture_logprobs(&snap);
}

#[test]
fn a_download_cut_off_halfway_never_looks_complete_and_resumes() {
    let hub = FakeHub::start();
    let files = tiny_repo(&fixture_dir());
    let size = files["model.safetensors"].len() as u64;
    hub.add_repo("Org/Tiny", files.clone(), false);
    hub.state.lock().unwrap().drop_once = Some("model.safetensors".into());
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let opts = hub.opts(&cache); // no retries: the first call fails

    let e = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("resume"),
        "{msg}"
    );
    let repo = cache.join("models--Org--Tiny");
    let parts: Vec<PathBuf> = std::fs::read_dir(repo.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "part"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let partial = std::fs::metadata(&parts[0]).unwrap().len();
    assert!(partial > 0 && partial < size, "partial {partial} of {size}");
    // Nothing looks complete: no weights in the snapshot, no ref, not resolvable.
    assert!(!repo
        .join("snapshots")
        .join(COMMIT)
        .join("model.safetensors")
        .exists());
    assert!(!repo.join("refs/main").exists());
    assert!(download::complete_snapshot(&cache, "Org/Tiny", "main").is_none());

    let before = hub.count();
    let mut rec = Recorder::default();
    let snap = download::snapshot("Org/Tiny", "main", &opts, &mut rec).unwrap();
    // The weights resumed from the partial file with a range request; nothing else of the
    // finished small files was fetched again.
    let seen = hub.seen()[before..].to_vec();
    let cdn: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/cdn/") && s.range.as_deref() != Some("bytes=0-0"))
        .collect();
    assert_eq!(cdn.len(), 1, "{seen:?}");
    assert_eq!(
        cdn[0].range.as_deref(),
        Some(format!("bytes={partial}-").as_str())
    );
    assert!(
        !seen.iter().any(|s| s.path.ends_with("/tokenizer.json")),
        "{seen:?}"
    );
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        files["model.safetensors"]
    );
    assert!(
        !parts[0].exists(),
        "the partial file was renamed into place"
    );
    // Progress: only the weights were transferred, the bytes already on disk counted first.
    assert_eq!(rec.finished, vec!["model.safetensors".to_string()]);
    assert_eq!(rec.bytes, size);
    assert!(rec
        .started
        .iter()
        .all(|(f, n)| f == "model.safetensors" && *n == size));
    assert_fixture_logprobs(&snap);
}

#[test]
fn a_transfer_that_breaks_off_is_resumed_within_the_call() {
    let hub = FakeHub::start();
    let files = tiny_repo(&fixture_dir());
    hub.add_repo("Org/Tiny", files.clone(), false);
    hub.state.lock().unwrap().drop_once = Some("model.safetensors".into());
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = hub.opts(&tmp.path().join("hub"));
    opts.retries = 2;
    let snap = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default()).unwrap();
    let ranges: Vec<Option<String>> = hub
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/cdn/") && s.range.as_deref() != Some("bytes=0-0"))
        .map(|s| s.range.clone())
        .collect();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0].as_deref(), Some("bytes=0-"));
    assert_ne!(ranges[1].as_deref(), Some("bytes=0-"), "{ranges:?}");
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        files["model.safetensors"]
    );
}

#[test]
fn gated_model_needs_a_token_and_names_the_model_page() {
    let hub = FakeHub::start();
    hub.add_repo("Org/Gated", tiny_repo(&fixture_dir()), true);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let mut opts = hub.opts(&cache);
    let e = download::snapshot("Org/Gated", "main", &opts, &mut Recorder::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("401"), "{msg}");
    assert!(msg.contains(&format!("{}/Org/Gated", hub.url)), "{msg}");
    assert!(msg.contains("HF_TOKEN") && msg.contains("gated"), "{msg}");
    assert!(!msg.contains('\n'));
    assert!(download::complete_snapshot(&cache, "Org/Gated", "main").is_none());

    // A wrong token: 403, and the message says which token was refused.
    opts.token = Some("hf_wrong".into());
    opts.token_source = Some("HF_TOKEN".into());
    let msg = download::snapshot("Org/Gated", "main", &opts, &mut Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("403") && msg.contains("token from HF_TOKEN"),
        "{msg}"
    );

    // The right token: downloads, and every file request carried it.
    opts.token = Some(TOKEN.into());
    let before = hub.count();
    let snap = download::snapshot("Org/Gated", "main", &opts, &mut Recorder::default()).unwrap();
    assert!(snap.join("model.safetensors").is_file());
    assert!(hub.seen()[before..]
        .iter()
        .filter(|s| !s.path.starts_with("/cdn/"))
        .all(|s| s.auth.as_deref() == Some(&format!("Bearer {TOKEN}"))));
}

#[test]
fn missing_model_or_revision_is_a_404_message() {
    let hub = FakeHub::start();
    hub.add_repo("Org/Tiny", tiny_repo(&fixture_dir()), false);
    let tmp = tempfile::tempdir().unwrap();
    let opts = hub.opts(&tmp.path().join("hub"));
    let msg = download::snapshot("Org/Nope", "main", &opts, &mut Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("404") && msg.contains("no model Org/Nope"),
        "{msg}"
    );
    let msg = download::snapshot("Org/Tiny", "v9", &opts, &mut Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("404") && msg.contains("no revision \"v9\"") && msg.contains("--revision"),
        "{msg}"
    );
}

#[test]
fn unreachable_endpoint_suggests_offline_mode() {
    // A port nothing listens on.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = HubOptions::new(format!("http://127.0.0.1:{port}"), tmp.path());
    opts.retries = 0;
    let msg = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot reach") && msg.contains(&format!("127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(msg.contains("HF_HUB_OFFLINE=1"), "{msg}");
}

#[test]
fn offline_mode_never_touches_the_network() {
    let hub = FakeHub::start();
    hub.add_repo("Org/Tiny", tiny_repo(&fixture_dir()), false);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let mut opts = hub.opts(&cache);
    opts.offline = true;
    // Not cached: an error that says why, and no request.
    let msg = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
    assert!(msg.contains(&cache.display().to_string()), "{msg}");
    assert_eq!(hub.count(), 0);
    // Cached (downloaded online once): offline finds it, still with no request.
    opts.offline = false;
    let snap = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default()).unwrap();
    let before = hub.count();
    assert!(before > 0);
    opts.offline = true;
    assert_eq!(
        download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default()).unwrap(),
        snap
    );
    // Even a snapshot missing its weights is not completed over the network when offline.
    std::fs::remove_file(snap.join("model.safetensors")).unwrap();
    let _ = download::snapshot("Org/Tiny", "main", &opts, &mut Recorder::default());
    assert_eq!(hub.count(), before);
    assert!(!snap.join("model.safetensors").exists());
}

#[test]
fn a_python_style_cache_is_used_as_is() {
    // A snapshot laid out by huggingface_hub (refs/main, snapshots/<commit>, blobs), complete:
    // resolved with no server at all (the endpoint does not exist).
    let src = fixture_dir();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let repo = cache.join("models--Py--Tiny");
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let mut data = Vec::new();
        std::fs::File::open(src.join(f))
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        let blob = repo.join("blobs").join(etag_of(&data));
        std::fs::write(&blob, &data).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(Path::new("../../blobs").join(etag_of(&data)), snap.join(f))
            .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snap.join(f)).unwrap();
    }
    let opts = HubOptions::new("http://127.0.0.1:9", &cache);
    let got = download::snapshot("Py/Tiny", "main", &opts, &mut Recorder::default()).unwrap();
    assert_eq!(got, snap);
    assert_fixture_logprobs(&got);
}

#[test]
fn not_enough_disk_space_is_said_before_anything_is_fetched() {
    let hub = FakeHub::start();
    hub.add_repo("Org/Huge", tiny_repo(&fixture_dir()), false);
    // The listing claims 1 PB of weights.
    hub.state
        .lock()
        .unwrap()
        .listed_size
        .insert("model.safetensors".into(), 1_000_000_000_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let msg = download::snapshot(
        "Org/Huge",
        "main",
        &hub.opts(&cache),
        &mut Recorder::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("disk full") && msg.contains("1.0 PB"), "{msg}");
    assert!(
        msg.contains("HF_HUB_CACHE") && msg.contains(&cache.display().to_string()),
        "{msg}"
    );
    // Only the file list was requested.
    let seen = hub.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].path.starts_with("/api/models/"));
}
