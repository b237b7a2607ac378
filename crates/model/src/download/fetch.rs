//! The transfers of [`super::snapshot`]: the repository listing, one file at a time into
//! the cache (resumed, retried), and the errors a user can act on.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiError, ApiRepo};
use hf_hub::{Repo, RepoType};

use serde_json::Value;

use super::{repo_folder, token_path, Adapter, HubOptions, Progress};
use crate::error::{Error, Result};

/// What the message builders need to know.
pub(super) struct Ctx<'a> {
    pub(super) repo_id: &'a str,
    pub(super) revision: &'a str,
    pub(super) opts: &'a HubOptions,
    /// The commit the revision points at, once known.
    pub(super) commit: String,
}

impl Ctx<'_> {
    pub(super) fn snapshot_dir(&self) -> PathBuf {
        repo_folder(&self.opts.cache, self.repo_id)
            .join("snapshots")
            .join(&self.commit)
    }

    fn page(&self) -> String {
        format!("{}/{}", self.opts.endpoint, self.repo_id)
    }

    fn token_note(&self) -> String {
        match &self.opts.token_source {
            Some(src) => format!(
                "the token from {src} was sent and has no access: accept the terms at {} with \
                 the account the token belongs to, or use another token",
                self.page()
            ),
            None => format!(
                "no token was sent: accept the terms at {} if it is gated, then set HF_TOKEN \
                 (or run `huggingface-cli login`, which writes {})",
                self.page(),
                token_path().display()
            ),
        }
    }

    /// The user-facing error for a failure of `what` (a file name, or "the file list").
    pub(super) fn error(&self, what: &str, err: ApiError) -> Error {
        match err {
            ApiError::RequestError(e) => self.request_error(what, *e),
            ApiError::IoError(e) => self.io_error(what, &e),
            ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => Error::Hub(format!(
                "{what} of {}: the server at {} did not send a valid {h} header as the Hugging \
                 Face Hub does (is HF_ENDPOINT right?)",
                self.repo_id, self.opts.endpoint
            )),
            ApiError::LockAcquisition(p) => Error::Hub(format!(
                "{what} of {}: another process is downloading it (lock {} held); wait for it \
                 to finish",
                self.repo_id,
                p.display()
            )),
            ApiError::InvalidResume => Error::Hub(format!(
                "{what} of {}: the partial download in {} is longer than the file; it was \
                 removed, run again",
                self.repo_id,
                repo_folder(&self.opts.cache, self.repo_id)
                    .join("blobs")
                    .display()
            )),
            other => Error::Hub(format!(
                "downloading {what} of {} from {}: {other}",
                self.repo_id, self.opts.endpoint
            )),
        }
    }

    fn request_error(&self, what: &str, err: ureq::Error) -> Error {
        let id = self.repo_id;
        let rev = self.revision;
        let ep = &self.opts.endpoint;
        match err {
            ureq::Error::Status(code, resp) => {
                let kind = resp.header("x-error-code").unwrap_or("").to_string();
                let detail = resp
                    .header("x-error-message")
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                match code {
                    401 | 403 if kind == "RepoNotFound" => Error::Hub(format!(
                        "no model {id} on {ep} (HTTP {code}{detail}): check the id at {}, or \
                         if it is private, {}",
                        self.page(),
                        self.token_note()
                    )),
                    401 | 403 => Error::Hub(format!(
                        "access to {id} refused (HTTP {code}{detail}) while fetching {what}: \
                         the model is gated or private; {}",
                        self.token_note()
                    )),
                    404 if kind == "RevisionNotFound" => Error::Hub(format!(
                        "model {id} has no revision {rev:?} on {ep} (HTTP 404{detail}): check \
                         --revision (a branch, tag or commit hash) at {}/tree/{rev}",
                        self.page()
                    )),
                    404 if kind == "EntryNotFound" => Error::Hub(format!(
                        "model {id} at revision {rev:?} has no file {what} on {ep} (HTTP \
                         404{detail})"
                    )),
                    404 => Error::Hub(format!(
                        "no model {id} at revision {rev:?} on {ep} (HTTP 404{detail}) while \
                         fetching {what}: check the id at {} and the --revision",
                        self.page()
                    )),
                    416 => Error::Hub(format!(
                        "{what} of {id}: the server refused to resume the partial download \
                         (HTTP 416); it was removed, run again"
                    )),
                    429 | 500..=599 => Error::Hub(format!(
                        "{ep} answered HTTP {code}{detail} for {what} of {id}; try again later \
                         (finished files are kept and partial ones resume)"
                    )),
                    _ => Error::Hub(format!(
                        "{ep} answered HTTP {code}{detail} for {what} of {id}"
                    )),
                }
            }
            ureq::Error::Transport(t) => {
                use ureq::ErrorKind as K;
                match t.kind() {
                    K::Dns | K::ConnectionFailed | K::ProxyConnect | K::InvalidProxyUrl => {
                        Error::Hub(format!(
                            "cannot reach the Hugging Face Hub at {ep} to fetch {id} ({t}): \
                             check the network (or HF_ENDPOINT); to use only models already in \
                             the cache {}, set HF_HUB_OFFLINE=1",
                            self.opts.cache.display()
                        ))
                    }
                    _ => Error::Hub(format!(
                        "fetching {what} of {id} from {ep} failed ({t}); run again to resume"
                    )),
                }
            }
        }
    }

    pub(super) fn io_error(&self, what: &str, e: &std::io::Error) -> Error {
        if is_disk_full(e) {
            return Error::Hub(format!(
                "disk full while downloading {what} of {} into {}: free some space or point \
                 HF_HUB_CACHE at a larger disk, then run again (the partial file resumes)",
                self.repo_id,
                self.opts.cache.display()
            ));
        }
        if is_transfer_break(e) {
            return Error::Hub(format!(
                "the download of {what} of {} from {} broke off ({e}); run again to resume \
                 it from the partial file",
                self.repo_id, self.opts.endpoint
            ));
        }
        Error::Hub(format!(
            "downloading {what} of {} into {}: {e}",
            self.repo_id,
            self.opts.cache.display()
        ))
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

fn is_transfer_break(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
    )
}

/// Whether retrying the same file may help (a transfer that broke off, a server hiccup); not
/// for refusals, missing files, unreachable hosts or a full disk.
pub(super) fn is_transient(err: &ApiError) -> bool {
    match err {
        ApiError::IoError(e) => is_transfer_break(e),
        ApiError::RequestError(e) => match e.as_ref() {
            ureq::Error::Status(code, _) => *code == 429 || *code >= 500,
            ureq::Error::Transport(t) => matches!(t.kind(), ureq::ErrorKind::Io),
        },
        _ => false,
    }
}

/// Whether a partial file must be dropped before a retry (the server refused the range, or
/// the partial file is longer than the file).
fn is_bad_resume(err: &ApiError) -> bool {
    match err {
        ApiError::InvalidResume => true,
        ApiError::RequestError(e) => matches!(e.as_ref(), ureq::Error::Status(416, _)),
        _ => false,
    }
}

/// One sibling of the repository listing.
#[derive(Debug, Clone)]
pub(super) struct Sibling {
    pub(super) name: String,
    pub(super) size: Option<u64>,
}

/// The commit the revision points at and the repository's files (with sizes when the hub
/// lists them).
pub(super) fn repo_info(api: &Api, ctx: &Ctx) -> Result<(String, Vec<Sibling>)> {
    let repo = api.repo(Repo::with_revision(
        ctx.repo_id.to_string(),
        RepoType::Model,
        ctx.revision.to_string(),
    ));
    let resp = repo
        .info_request()
        .query("blobs", "true")
        .call()
        .map_err(|e| ctx.error("the file list", ApiError::RequestError(Box::new(e))))?;
    let url = resp.get_url().to_string();
    let v: Value = serde_json::from_reader(resp.into_reader()).map_err(|e| {
        Error::Hub(format!(
            "{url}: not a Hugging Face Hub model listing ({e}); is HF_ENDPOINT right?"
        ))
    })?;
    let commit = v
        .get("sha")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && !s.contains('/') && !s.contains(".."))
        .ok_or_else(|| Error::Hub(format!("{url}: the listing has no commit `sha`")))?
        .to_string();
    let siblings = v
        .get("siblings")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Hub(format!("{url}: the listing has no `siblings`")))?
        .iter()
        .filter_map(|s| {
            Some(Sibling {
                name: s.get("rfilename")?.as_str()?.to_string(),
                size: s.get("size").and_then(Value::as_u64),
            })
        })
        .collect();
    Ok((commit, siblings))
}

/// Fetch one file at the pinned commit (resuming a partial one), retrying transfers that
/// broke off, and check its size. Returns its path in the snapshot.
pub(super) fn fetch_file(
    repo: &ApiRepo,
    file: &Sibling,
    ctx: &Ctx,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    // Already in the snapshot (an earlier, interrupted run, or Python): hf-hub would fetch it
    // again.
    let have = ctx.snapshot_dir().join(&file.name);
    if let Ok(m) = std::fs::metadata(&have) {
        if m.is_file() && file.size.is_none_or(|s| s == m.len()) {
            tracing::debug!(file = %file.name, "already in the cache");
            return Ok(have);
        }
    }
    let mut attempt = 0usize;
    let mut dropped_partial = false;
    loop {
        let res = repo.download_with_progress(
            &file.name,
            Adapter {
                inner: &mut *progress,
                file: &file.name,
            },
        );
        match res {
            Ok(path) => {
                if let Some(want) = file.size {
                    let got = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    if got != want {
                        remove_downloaded(&path);
                        return Err(Error::Hub(format!(
                            "{} of {}: downloaded {got} bytes but the hub lists {want}; the file \
                             was removed, run again",
                            file.name, ctx.repo_id
                        )));
                    }
                }
                progress.finish(&file.name);
                return Ok(path);
            }
            Err(e) if is_bad_resume(&e) && !dropped_partial => {
                dropped_partial = true;
                drop_partials(
                    &repo_folder(&ctx.opts.cache, ctx.repo_id).join("blobs"),
                    file.size,
                );
                tracing::warn!(file = %file.name, "partial download could not be resumed; starting it over");
            }
            Err(e) if is_transient(&e) && attempt < ctx.opts.retries => {
                let wait = ctx.opts.retry_delay * 2u32.saturating_pow(attempt as u32);
                attempt += 1;
                tracing::warn!(file = %file.name, attempt, error = %e, "transfer broke off; resuming in {wait:?}");
                std::thread::sleep(wait);
            }
            Err(e) => {
                if is_bad_resume(&e) {
                    drop_partials(
                        &repo_folder(&ctx.opts.cache, ctx.repo_id).join("blobs"),
                        file.size,
                    );
                }
                return Err(ctx.error(&file.name, e));
            }
        }
    }
}

/// Remove a finished file whose size is wrong: the snapshot link and the blob it points at.
fn remove_downloaded(path: &Path) {
    if let Ok(blob) = std::fs::canonicalize(path) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(path);
}

/// Remove `.part` files in `blobs` that cannot be a valid partial of a `size`-byte file (at
/// least that long), or all of them when the size is unknown.
fn drop_partials(blobs: &Path, size: Option<u64>) {
    let Ok(rd) = std::fs::read_dir(blobs) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "part") {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if size.is_none_or(|s| len >= s) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}
