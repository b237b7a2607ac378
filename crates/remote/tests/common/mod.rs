//! Test helpers: a hand-written HTTP/1.1 server whose answers a closure decides (drop the
//! connection, answer with a status and body, stall), a raw HTTP client, and the fixture
//! model paths.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake server does with one request.
pub enum Action {
    /// Close the connection without answering.
    Drop,
    /// Answer with this status and JSON body.
    Respond(u16, String),
    /// Keep the connection open, silent, for this long, then close it.
    Stall(Duration),
}

/// One request the fake server received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: String,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    /// Starts a server on 127.0.0.1 (ephemeral port); `act(k, &request)` decides the answer
    /// to the `k`-th request (0-based).
    pub fn start(act: impl Fn(usize, &Seen) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let act = Arc::new(act);
        let (s2, st2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (seen, act) = (s2.clone(), act.clone());
                std::thread::spawn(move || handle(conn, &seen, &*act));
            }
        });
        Self { addr, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn handle(
    conn: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    act: &(dyn Fn(usize, &Seen) -> Action + Send + Sync),
) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r) {
        let k = {
            let mut s = seen.lock().unwrap();
            s.push(req.clone());
            s.len() - 1
        };
        match act(k, &req) {
            Action::Drop => return,
            Action::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Action::Respond(status, body) => {
                let msg = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                    body.len()
                );
                if w.write_all(msg.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// A raw HTTP/1.1 call: (status, body).
pub fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A canned completion response with `k` choices.
pub fn ok_body(k: usize, text: &str) -> String {
    let choices: Vec<serde_json::Value> = (0..k)
        .map(|i| serde_json::json!({"index": i, "text": format!("{text}{i}"), "finish_reason": "stop"}))
        .collect();
    serde_json::json!({"object": "text_completion", "choices": choices}).to_string()
}

pub fn fixture(name: &str) -> Option<PathBuf> {
    let p = model::testing::fixtures_dir()
        .unwrap_or_else(|| PathBuf::from("<no fixtures folder>"))
        .join("models")
        .join(name);
    if p.join("config.json").is_file() {
        Some(p)
    } else {
        eprintln!("skipping: fixture model {} not found", p.display());
        None
    }
}
