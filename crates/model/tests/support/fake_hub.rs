//! A fake Hugging Face Hub on 127.0.0.1 for the download tests (included with `#[path]` by
//! the model and cli tests). It speaks the hub's file API: `/api/models/{repo}/revision/{rev}`
//! (the file list, with sizes) and `/{repo}/resolve/{rev}/{file}` with the headers `hf-hub`
//! reads (`ETag`, `X-Repo-Commit`, `X-Linked-Etag`, `Content-Range`, `Content-Length`, ranges).
//! Safetensors files are served as the hub serves LFS files: a 302 to a CDN URL
//! (`/cdn/{etag}`). Errors carry the hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
//! `GatedRepo`, `EntryNotFound`). Every request is recorded.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::download::HubOptions;
use serde_json::{json, Value};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
pub const TOKEN: &str = "hf_test_token";

/// One request the fake hub received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub auth: Option<String>,
}

pub struct RepoData {
    pub files: BTreeMap<String, Vec<u8>>,
    pub gated: bool,
}

#[derive(Default)]
pub struct State {
    pub repos: BTreeMap<String, RepoData>,
    pub seen: Vec<Seen>,
    /// A file whose next full transfer is cut off halfway (then served normally).
    pub drop_once: Option<String>,
    /// Sizes the file list claims instead of the real ones (file name -> bytes).
    pub listed_size: BTreeMap<String, u64>,
}

pub struct FakeHub {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl FakeHub {
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let base = url.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                let base = base.clone();
                std::thread::spawn(move || handle(conn, &st, &base));
            }
        });
        FakeHub { url, state }
    }

    pub fn add_repo(&self, id: &str, files: BTreeMap<String, Vec<u8>>, gated: bool) {
        self.state
            .lock()
            .unwrap()
            .repos
            .insert(id.to_string(), RepoData { files, gated });
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    pub fn opts(&self, cache: &Path) -> HubOptions {
        let mut o = HubOptions::new(self.url.clone(), cache);
        o.retries = 0;
        o.retry_delay = Duration::from_millis(10);
        o
    }
}

pub fn etag_of(data: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    let a = h.finish();
    data.len().hash(&mut h);
    format!("{a:016x}{:016x}", h.finish())
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

fn error(s: &mut TcpStream, status: &str, code: &str, msg: &str) {
    respond(
        s,
        status,
        &[
            ("X-Error-Code", code.to_string()),
            ("X-Error-Message", msg.to_string()),
        ],
        msg.as_bytes(),
    );
}

fn handle(mut s: TcpStream, st: &Mutex<State>, base: &str) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mut range, mut auth) = (None, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let path = target.split('?').next().unwrap().to_string();
    let mut st = st.lock().unwrap();
    st.seen.push(Seen {
        path: path.clone(),
        range: range.clone(),
        auth: auth.clone(),
    });
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // CDN: /cdn/{etag} (where LFS files redirect to).
    if parts.len() == 2 && parts[0] == "cdn" {
        let found = st
            .repos
            .values()
            .flat_map(|r| r.files.iter())
            .find(|(_, d)| etag_of(d) == parts[1])
            .map(|(n, d)| (n.clone(), d.clone()));
        let Some((name, data)) = found else {
            return error(&mut s, "404 Not Found", "EntryNotFound", "no such blob");
        };
        return serve_bytes(&mut s, &mut st, &name, &data, range.as_deref(), vec![]);
    }
    // File list: /api/models/{org}/{name}/revision/{rev}
    if parts.len() == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision" {
        let id = format!("{}/{}", parts[2], parts[3]);
        let Some(repo) = st.repos.get(&id) else {
            return error(
                &mut s,
                "404 Not Found",
                "RepoNotFound",
                "Repository not found",
            );
        };
        if parts[5] != "main" && parts[5] != COMMIT {
            return error(
                &mut s,
                "404 Not Found",
                "RevisionNotFound",
                "Invalid rev id",
            );
        }
        let siblings: Vec<Value> = repo
            .files
            .iter()
            .map(|(n, d)| {
                let size = st.listed_size.get(n).copied().unwrap_or(d.len() as u64);
                json!({"rfilename": n, "size": size})
            })
            .collect();
        let body = json!({"id": id, "sha": COMMIT, "gated": repo.gated, "siblings": siblings});
        return respond(
            &mut s,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.to_string().as_bytes(),
        );
    }
    // File: /{org}/{name}/resolve/{rev}/{file}
    if parts.len() == 5 && parts[2] == "resolve" {
        let id = format!("{}/{}", parts[0], parts[1]);
        let Some(repo) = st.repos.get(&id) else {
            return error(
                &mut s,
                "404 Not Found",
                "RepoNotFound",
                "Repository not found",
            );
        };
        if parts[3] != "main" && parts[3] != COMMIT {
            return error(
                &mut s,
                "404 Not Found",
                "RevisionNotFound",
                "Invalid rev id",
            );
        }
        if repo.gated && auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
            let status = if auth.is_some() {
                "403 Forbidden"
            } else {
                "401 Unauthorized"
            };
            return error(
                &mut s,
                status,
                "GatedRepo",
                &format!("Access to model {id} is restricted."),
            );
        }
        let Some(data) = repo.files.get(parts[4]).cloned() else {
            return error(&mut s, "404 Not Found", "EntryNotFound", "Entry not found");
        };
        let etag = etag_of(&data);
        let commit = ("X-Repo-Commit", COMMIT.to_string());
        if parts[4].ends_with(".safetensors") {
            // LFS: a redirect to the CDN, with the file's real etag and size.
            return respond(
                &mut s,
                "302 Found",
                &[
                    ("Location", format!("{base}/cdn/{etag}")),
                    ("ETag", "\"lfs-pointer\"".into()),
                    ("X-Linked-Etag", format!("\"{etag}\"")),
                    ("X-Linked-Size", data.len().to_string()),
                    commit,
                ],
                b"",
            );
        }
        let name = parts[4].to_string();
        return serve_bytes(
            &mut s,
            &mut st,
            &name,
            &data,
            range.as_deref(),
            vec![("ETag", format!("\"{etag}\"")), commit],
        );
    }
    error(&mut s, "404 Not Found", "", "no route")
}

/// 200 with the whole file, or 206 for `Range: bytes=a-[b]`; cuts the transfer halfway
/// if `name` is the file to drop once.
fn serve_bytes(
    s: &mut TcpStream,
    st: &mut State,
    name: &str,
    data: &[u8],
    range: Option<&str>,
    mut headers: Vec<(&str, String)>,
) {
    let len = data.len();
    let (status, start, end) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap();
            let a: usize = a.parse().unwrap();
            let b: usize = if b.is_empty() {
                len - 1
            } else {
                b.parse::<usize>().unwrap().min(len - 1)
            };
            if a >= len {
                headers.push(("Content-Range", format!("bytes */{len}")));
                return respond(s, "416 Range Not Satisfiable", &headers, b"");
            }
            headers.push(("Content-Range", format!("bytes {a}-{b}/{len}")));
            ("206 Partial Content", a, b + 1)
        }
        None => ("200 OK", 0, len),
    };
    let body = &data[start..end];
    if body.len() > 1 && st.drop_once.as_deref() == Some(name) {
        st.drop_once = None;
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body[..body.len() / 2]);
        let _ = s.flush();
        let _ = s.shutdown(std::net::Shutdown::Both);
        return;
    }
    respond(s, status, &headers, body);
}

/// The qwen3-tiny fixture as a hub repository, plus files a download must leave alone.
pub fn tiny_repo(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        files.insert(f.to_string(), std::fs::read(dir.join(f)).unwrap());
    }
    files.insert("README.md".into(), b"# tiny".to_vec());
    files.insert("pytorch_model.bin".into(), vec![7u8; 1000]);
    files.insert("onnx/model.onnx".into(), vec![8u8; 100]);
    files
}

/// The same model with its weights in two shards and an index (and a stray third shard the
/// index does not name).
pub fn sharded_repo(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = tiny_repo(dir);
    files.remove("model.safetensors");
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let names: Vec<String> = {
        let mut n: Vec<String> = tensors.keys().cloned().collect();
        n.sort();
        n
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut map = serde_json::Map::new();
    for (i, chunk) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let shard = format!("model-0000{}-of-00002.safetensors", i + 1);
        let part: std::collections::HashMap<String, candle_core::Tensor> = chunk
            .iter()
            .map(|n| (n.clone(), tensors[n].clone()))
            .collect();
        let p = tmp.path().join(&shard);
        candle_core::safetensors::save(&part, &p).unwrap();
        files.insert(shard.clone(), std::fs::read(&p).unwrap());
        for n in chunk {
            map.insert(n.clone(), Value::String(shard.clone()));
        }
    }
    let index = json!({"metadata": {}, "weight_map": map});
    files.insert(
        "model.safetensors.index.json".into(),
        index.to_string().into_bytes(),
    );
    files.insert("model-stray.safetensors".into(), vec![9u8; 64]);
    files
}
