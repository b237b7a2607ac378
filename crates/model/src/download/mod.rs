//! Downloading a model from the Hugging Face Hub into the standard cache, with `hf-hub`'s
//! synchronous (`ureq`) API.
//!
//! [`snapshot`] returns the local snapshot folder of `repo@revision`:
//!
//! 1. If the cache already holds a complete snapshot (config.json, tokenizer.json and every
//!    weight file), it is returned with no network request.
//! 2. With [`HubOptions::offline`] (`HF_HUB_OFFLINE=1`) the cache is all there is: a missing
//!    model is an error that says so.
//! 3. Otherwise one request for the repository's file list
//!    (`/api/models/{repo}/revision/{revision}?blobs=true`) pins the revision to a commit, and
//!    only what a model needs is fetched, each file at that commit: [`MODEL_FILES`] (those
//!    the repository has) and the weights (`model.safetensors`, or
//!    `model.safetensors.index.json` and the shards named in its `weight_map`). Never
//!    `*.bin`, `*.pt`, other formats or other shards.
//!
//! Files land where `huggingface_hub` puts them (`models--Org--Name/blobs/<etag>`, symlinked
//! from `snapshots/<commit>/<file>`, and `refs/<revision>` holding the commit), so Python
//! tools see rzero's downloads and rzero sees theirs. A file is written to
//! `blobs/<etag>.part` and renamed only once complete, and `refs/<revision>` is written
//! (atomically) only after every file is in place, so an interrupted download never looks
//! complete. The next call resumes each `.part` file with an HTTP range request; a
//! connection dropped mid-file is also retried (and resumed) within the call
//! ([`HubOptions::retries`]). Each finished file's size is checked against the hub's listing.
//!
//! Errors are [`Error::Hub`] sentences a user can act on: a gated or private model (HTTP
//! 401/403) names the model page and `HF_TOKEN`; HTTP 404 says the model or revision does not
//! exist; an unreachable endpoint suggests `HF_HUB_OFFLINE=1`; a full disk (checked before
//! the transfer with the listed sizes, and on a write error) names the cache folder and
//! `HF_HUB_CACHE`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Repo, RepoType};
use serde_json::Value;

use crate::error::{Error, Result};

mod fetch;
#[cfg(test)]
use fetch::is_transient;
use fetch::{fetch_file, repo_info, Ctx, Sibling};

/// The public hub, used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The non-weight files fetched when the repository has them (`config.json` and
/// `tokenizer.json` are required).
pub const MODEL_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// Where and how to download: the endpoint, cache folder, token and retry policy.
#[derive(Clone)]
pub struct HubOptions {
    /// Hub base URL (`HF_ENDPOINT`, default [`DEFAULT_ENDPOINT`]), without a trailing `/`.
    pub endpoint: String,
    /// The hub cache folder ([`crate::cache::cache_dir`]).
    pub cache: PathBuf,
    /// Access token for gated or private models.
    pub token: Option<String>,
    /// Where the token came from (`HF_TOKEN`, or the token file's path), for messages.
    pub token_source: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// How many times a file whose transfer broke off is resumed within one call.
    pub retries: usize,
    /// Wait before the first retry (doubled for each further one).
    pub retry_delay: Duration,
}

impl std::fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubOptions")
            .field("endpoint", &self.endpoint)
            .field("cache", &self.cache)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("token_source", &self.token_source)
            .field("offline", &self.offline)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .finish()
    }
}

impl HubOptions {
    /// Options for the cache folder `cache` and endpoint `endpoint`, no token, online, 3
    /// retries.
    pub fn new(endpoint: impl Into<String>, cache: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            cache: cache.into(),
            token: None,
            token_source: None,
            offline: false,
            retries: 3,
            retry_delay: Duration::from_secs(1),
        }
    }

    /// Options from the environment, as `huggingface_hub` reads it: `HF_ENDPOINT`,
    /// `HF_HUB_CACHE` / `HF_HOME`, `HF_TOKEN` (else the token file `HF_TOKEN_PATH`, else
    /// `HF_HOME/token`, else `~/.cache/huggingface/token`), `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let mut o = Self::new(endpoint.trim(), crate::cache::cache_dir());
        if let Some((token, source)) = token_from_env() {
            o.token = Some(token);
            o.token_source = Some(source);
        }
        o.offline = crate::cache::offline();
        o
    }
}

/// The token from `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`), else from the token file
/// (`HF_TOKEN_PATH`, else `HF_HOME/token`, else `~/.cache/huggingface/token`), with where it
/// came from.
pub fn token_from_env() -> Option<(String, String)> {
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Ok(t) = std::env::var(var) {
            if !t.trim().is_empty() {
                return Some((t.trim().to_string(), var.to_string()));
            }
        }
    }
    let path = token_path();
    let t = std::fs::read_to_string(&path).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| (t.to_string(), path.display().to_string()))
}

/// The token file: `HF_TOKEN_PATH`, else `HF_HOME/token`, else `~/.cache/huggingface/token`.
pub fn token_path() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_TOKEN_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("token");
    }
    crate::cache::home_dir()
        .join(".cache")
        .join("huggingface")
        .join("token")
}

/// Download progress, reported per file. The library only calls it; the binary draws bars.
pub trait Progress {
    /// The transfer of `file` (`size` bytes) starts or restarts: the position is 0 again, and
    /// bytes already on disk from an earlier attempt are reported through [`Progress::advance`]
    /// right after.
    fn start(&mut self, file: &str, size: u64);
    /// `bytes` more of the current file are on disk.
    fn advance(&mut self, bytes: u64);
    /// `file` is complete and checked.
    fn finish(&mut self, file: &str);
}

/// Progress as log lines (one at the start and end of each file).
#[derive(Debug, Default)]
pub struct LogProgress {
    size: u64,
}

impl Progress for LogProgress {
    fn start(&mut self, file: &str, size: u64) {
        if self.size != size {
            tracing::info!(file, bytes = size, "downloading");
        }
        self.size = size;
    }
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self, file: &str) {
        tracing::info!(file, bytes = self.size, "downloaded");
        self.size = 0;
    }
}

/// Forwards hf-hub's progress calls (it calls `init` twice per attempt, then `update` with the
/// bytes already on disk) to a [`Progress`].
struct Adapter<'a> {
    inner: &'a mut dyn Progress,
    file: &'a str,
}

impl hf_hub::api::Progress for Adapter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.inner.start(self.file, size as u64);
    }
    fn update(&mut self, size: usize) {
        if size > 0 {
            self.inner.advance(size as u64);
        }
    }
    fn finish(&mut self) {}
}

/// The cache folder of one model repository (`models--Org--Name`).
pub fn repo_folder(cache: &Path, repo_id: &str) -> PathBuf {
    cache.join(Repo::model(repo_id.to_string()).folder_name())
}

/// The snapshot folder of `repo_id@revision` if the cache holds every file a model needs
/// (config.json, tokenizer.json and all weight files, or a `.gguf` file); no network.
pub fn complete_snapshot(cache: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    let folder = repo_folder(cache, repo_id);
    let direct = folder.join("snapshots").join(revision);
    let snap = if is_commit_hash(revision) && direct.is_dir() {
        direct
    } else {
        let hash = std::fs::read_to_string(folder.join("refs").join(revision)).ok()?;
        folder.join("snapshots").join(hash.trim())
    };
    snapshot_is_complete(&snap).then_some(snap)
}

fn snapshot_is_complete(snap: &Path) -> bool {
    if !snap.is_dir() {
        return false;
    }
    if !snap.join("config.json").is_file() {
        return std::fs::read_dir(snap).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "gguf") && e.path().is_file())
        });
    }
    if !REQUIRED.iter().all(|f| snap.join(f).is_file()) {
        return false;
    }
    if snap.join(SINGLE).is_file() {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(snap.join(INDEX)) else {
        return false;
    };
    match serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| shards_of_index(&v).ok())
    {
        Some(shards) => !shards.is_empty() && shards.iter().all(|s| snap.join(s).is_file()),
        None => false,
    }
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The distinct shard file names in a `model.safetensors.index.json` (`weight_map` values),
/// sorted; each must be a plain `.safetensors` file name.
pub fn shards_of_index(index: &Value) -> std::result::Result<Vec<String>, String> {
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or("missing object `weight_map`")?;
    let mut shards = std::collections::BTreeSet::new();
    for (name, file) in map {
        let f = file
            .as_str()
            .ok_or_else(|| format!("weight_map[{name:?}] is not a file name"))?;
        if f.contains('/') || f.contains('\\') || f.starts_with('.') || !f.ends_with(".safetensors")
        {
            return Err(format!(
                "weight_map[{name:?}] = {f:?} is not a plain .safetensors file name"
            ));
        }
        shards.insert(f.to_string());
    }
    Ok(shards.into_iter().collect())
}

/// Download (or find in the cache) what `repo_id` at `revision` needs to load, and return its
/// snapshot folder. See the module documentation.
pub fn snapshot(
    repo_id: &str,
    revision: &str,
    opts: &HubOptions,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    if !crate::cache::looks_like_hub_id(repo_id) || repo_id.contains('@') {
        return Err(Error::Hub(format!(
            "{repo_id:?} is not a hub id of the form org/name"
        )));
    }
    if revision.is_empty() {
        return Err(Error::Hub("empty --revision".into()));
    }
    if let Some(snap) = complete_snapshot(&opts.cache, repo_id, revision) {
        tracing::debug!(model = repo_id, revision, snapshot = %snap.display(), "found in the cache");
        return Ok(snap);
    }
    if opts.offline {
        return crate::cache::resolve_cached(repo_id, revision, &opts.cache, true);
    }
    let mut ctx = Ctx {
        repo_id,
        revision,
        opts,
        commit: String::new(),
    };
    let api = ApiBuilder::new()
        .with_endpoint(opts.endpoint.clone())
        .with_cache_dir(opts.cache.clone())
        .with_token(opts.token.clone())
        .with_progress(false)
        .with_retries(0)
        .with_user_agent("rzero", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| ctx.error("the client", e))?;

    let (commit, siblings) = repo_info(&api, &ctx)?;
    ctx.commit = commit.clone();
    let has = |f: &str| siblings.iter().find(|s| s.name == f);
    for f in REQUIRED {
        if has(f).is_none() {
            return Err(Error::Hub(format!(
                "model {repo_id} at revision {revision:?} has no {f} on {}: rzero loads \
                 transformers-style safetensors models (config.json, tokenizer.json, \
                 *.safetensors)",
                opts.endpoint
            )));
        }
    }
    let folder = repo_folder(&opts.cache, repo_id);
    let sha_ref = folder.join("refs").join(&commit);
    let sha_ref_existed = sha_ref.exists();
    let repo = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        commit.clone(),
    ));
    tracing::info!(model = repo_id, revision, commit = %commit, cache = %opts.cache.display(), "downloading from {}", opts.endpoint);

    let mut snap = None;
    let weights = weight_files(&repo, &siblings, &ctx, progress, &mut snap)?;
    // Disk space for what is not here yet, with the sizes from the listing.
    let needed: u64 = MODEL_FILES
        .iter()
        .filter_map(|f| has(f))
        .chain(weights.iter().copied())
        .filter(|s| !ctx.snapshot_dir().join(&s.name).is_file())
        .filter_map(|s| s.size)
        .sum();
    check_space(&ctx, needed)?;
    for f in MODEL_FILES {
        if let Some(s) = has(f) {
            snap = Some(fetch_file(&repo, s, &ctx, progress)?);
        }
    }
    for s in weights {
        snap = Some(fetch_file(&repo, s, &ctx, progress)?);
    }
    let snap_dir = snap
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| folder.join("snapshots").join(&commit));

    // The revision's ref last, so an interrupted download never looks complete. It names the
    // snapshot the files went to (the commit the server answered with).
    let commit = snap_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&commit)
        .to_string();
    if !sha_ref_existed {
        // hf-hub writes refs/<commit> for the pinned revision; huggingface_hub does not.
        let _ = std::fs::remove_file(&sha_ref);
    }
    if revision != commit {
        write_ref(&folder, revision, &commit).map_err(|e| ctx.io_error("refs", &e))?;
    }
    if !snapshot_is_complete(&snap_dir) {
        return Err(Error::Hub(format!(
            "downloaded {repo_id} into {}, but the snapshot is incomplete (a file is missing); \
             run again",
            snap_dir.display()
        )));
    }
    Ok(snap_dir)
}

/// The weight files to fetch: the single file, or the index (fetched now, it is small; its
/// path goes to `snap`) and the shards it names.
fn weight_files<'s>(
    repo: &ApiRepo,
    siblings: &'s [Sibling],
    ctx: &Ctx,
    progress: &mut dyn Progress,
    snap: &mut Option<PathBuf>,
) -> Result<Vec<&'s Sibling>> {
    let (repo_id, revision, commit) = (ctx.repo_id, ctx.revision, &ctx.commit);
    let has = |f: &str| siblings.iter().find(|s| s.name == f);
    if let Some(s) = has(SINGLE) {
        return Ok(vec![s]);
    }
    let Some(s) = has(INDEX) else {
        return Err(Error::Hub(format!(
            "model {repo_id} at revision {revision:?} has neither {SINGLE} nor {INDEX} on {}: \
             rzero loads safetensors weights (or a local .gguf file)",
            ctx.opts.endpoint
        )));
    };
    let index_path = fetch_file(repo, s, ctx, progress)?;
    *snap = Some(index_path.clone());
    let index: Value = std::fs::read_to_string(&index_path)
        .map_err(|e| ctx.io_error(INDEX, &e))
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| Error::BadFile {
                path: index_path.clone(),
                msg: e.to_string(),
            })
        })?;
    let shards = shards_of_index(&index).map_err(|msg| Error::BadFile {
        path: index_path.clone(),
        msg,
    })?;
    let mut out = Vec::new();
    for name in &shards {
        out.push(has(name).ok_or_else(|| {
            Error::Hub(format!(
                "{INDEX} of {repo_id} names the shard {name}, which the repository at \
                 commit {commit} does not have"
            ))
        })?);
    }
    Ok(out)
}

/// Fails if the disk of the cache folder has less free space than `needed` bytes, less what
/// partial downloads already hold.
fn check_space(ctx: &Ctx, needed: u64) -> Result<()> {
    let blobs = repo_folder(&ctx.opts.cache, ctx.repo_id).join("blobs");
    let partial: u64 = std::fs::read_dir(&blobs)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0);
    let needed = needed.saturating_sub(partial);
    // The nearest existing folder (the cache itself may not exist yet).
    let mut probe = ctx.opts.cache.as_path();
    while !probe.exists() {
        match probe.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe = p,
            _ => return Ok(()),
        }
    }
    match free_bytes(probe) {
        Some(free) if free < needed => Err(Error::Hub(format!(
            "disk full: {} needs {} more in {}, but only {} is free there; free some space or \
             point HF_HUB_CACHE at a larger disk",
            ctx.repo_id,
            human_bytes(needed),
            ctx.opts.cache.display(),
            human_bytes(free)
        ))),
        _ => Ok(()),
    }
}

/// Bytes available to this user on the file system holding `path`.
#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `refs/<revision>` = `commit`, written atomically.
fn write_ref(folder: &Path, revision: &str, commit: &str) -> std::io::Result<()> {
    let path = folder.join("refs").join(revision);
    fsutil::write_atomic(&path, commit.as_bytes()).map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hf_hub::api::sync::ApiError;

    fn ctx_opts() -> HubOptions {
        HubOptions::new("http://127.0.0.1:9", "/tmp/hub-cache")
    }

    #[test]
    fn disk_full_names_the_cache_and_hf_hub_cache() {
        let opts = ctx_opts();
        let ctx = Ctx {
            repo_id: "Org/M",
            revision: "main",
            opts: &opts,
            commit: String::new(),
        };
        let e = ctx.error(
            "model.safetensors",
            ApiError::IoError(std::io::Error::from_raw_os_error(28)),
        );
        let msg = e.to_string();
        assert!(msg.contains("disk full"), "{msg}");
        assert!(
            msg.contains("/tmp/hub-cache") && msg.contains("HF_HUB_CACHE"),
            "{msg}"
        );
        // A broken transfer is retried; a full disk is not.
        assert!(!is_transient(&ApiError::IoError(
            std::io::Error::from_raw_os_error(28)
        )));
        assert!(is_transient(&ApiError::IoError(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof
        ))));
    }

    #[test]
    fn index_shards_are_plain_safetensors_names() {
        let v: Value = serde_json::json!({"weight_map": {
            "a": "model-00002-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors",
            "c": "model-00001-of-00002.safetensors"}});
        assert_eq!(
            shards_of_index(&v).unwrap(),
            vec![
                "model-00001-of-00002.safetensors".to_string(),
                "model-00002-of-00002.safetensors".to_string()
            ]
        );
        for bad in ["../x.safetensors", "sub/x.safetensors", "pytorch_model.bin"] {
            let v = serde_json::json!({"weight_map": {"a": bad}});
            assert!(shards_of_index(&v).is_err(), "{bad}");
        }
        assert!(shards_of_index(&serde_json::json!({})).is_err());
    }
}
