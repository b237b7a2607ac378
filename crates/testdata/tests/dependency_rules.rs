//! The dependency rules of ARCHITECTURE.md ("X never depends on Y"), each checked on the
//! graph `cargo metadata --format-version 1 --offline --all-features` resolves (every feature
//! on, so a rule holds for every build). "Links" means reachable through normal (not dev or
//! build) dependencies; "uses" means a direct normal dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The resolved graph: package name -> names of its normal dependencies. A name with
/// several versions in the graph keeps the union of their dependencies.
struct Graph {
    normal: BTreeMap<String, BTreeSet<String>>,
    dev: BTreeMap<String, BTreeSet<String>>,
    members: BTreeSet<String>,
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let root = testdata::repo_root();
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--all-features",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running {cargo} metadata: {e}"));
    assert!(
        out.status.success(),
        "{cargo} metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The graph, read once per test binary.
fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(read_graph)
}

fn read_graph() -> Graph {
    let m = metadata();
    let name_of: BTreeMap<&str, &str> = m["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let members = m["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].to_string())
        .collect();
    let mut normal: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dev: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in m["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let from = name_of[node["id"].as_str().unwrap()].to_string();
        normal.entry(from.clone()).or_default();
        for dep in node["deps"].as_array().unwrap() {
            let to = name_of[dep["pkg"].as_str().unwrap()].to_string();
            for kind in dep["dep_kinds"].as_array().unwrap() {
                match kind["kind"].as_str() {
                    None => normal.get_mut(&from).unwrap().insert(to.clone()),
                    Some("dev") => dev.entry(from.clone()).or_default().insert(to.clone()),
                    Some(_) => false,
                };
            }
        }
    }
    Graph {
        normal,
        dev,
        members,
    }
}

impl Graph {
    /// Direct normal dependencies of `krate`.
    fn uses(&self, krate: &str) -> &BTreeSet<String> {
        self.normal
            .get(krate)
            .unwrap_or_else(|| panic!("crate {krate} is not in the resolved graph"))
    }

    /// Every package `krate` links (normal dependencies, transitively), without itself.
    fn links(&self, krate: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = vec![krate];
        while let Some(k) = todo.pop() {
            for d in self.uses(k) {
                if seen.insert(d.clone()) {
                    todo.push(d);
                }
            }
        }
        seen
    }

    /// The workspace crates `krate` links.
    fn links_members(&self, krate: &str) -> BTreeSet<String> {
        self.links(krate)
            .into_iter()
            .filter(|d| self.members.contains(d))
            .collect()
    }

    /// The workspace crates that link `target`.
    fn members_linking(&self, target: &str) -> BTreeSet<String> {
        self.members
            .iter()
            .filter(|m| *m == target || self.links(m).contains(target))
            .cloned()
            .collect()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Packages whose name starts with one of `prefixes`.
fn matching(deps: &BTreeSet<String>, prefixes: &[&str]) -> Vec<String> {
    deps.iter()
        .filter(|d| prefixes.iter().any(|p| d.starts_with(p)))
        .cloned()
        .collect()
}

/// Tensor, weight and tokenizer libraries: what "touching tensors" links.
const TENSOR_LIBS: &[&str] = &["candle-", "safetensors", "tokenizers", "hf-hub", "cudarc"];
/// The HTTP stack (server and client).
const HTTP_LIBS: &[&str] = &["axum", "tokio", "hyper", "reqwest", "tower"];

#[test]
fn the_workspace_is_the_expected_crates() {
    let g = graph();
    assert_eq!(
        g.members,
        set(&[
            "engine",
            "eval",
            "fsutil",
            "grade",
            "model",
            "remote",
            "reward",
            "rzero",
            "rzero-cli",
            "rzero-serve",
            "testdata",
            "train"
        ]),
        "a crate was added or renamed: give it its rules here and in ARCHITECTURE.md"
    );
}

/// Each library links exactly the workspace crates listed (dependencies point down).
#[test]
fn layering_between_workspace_crates() {
    let g = graph();
    let expected: &[(&str, &[&str])] = &[
        ("fsutil", &[]),
        ("grade", &[]),
        ("reward", &["grade"]),
        ("eval", &["fsutil", "grade", "reward"]),
        ("model", &["fsutil"]),
        // engine uses grade's `\boxed{}` extraction for forced final answers.
        ("engine", &["fsutil", "grade", "model"]),
        ("train", &["fsutil", "model"]),
        (
            "remote",
            &["engine", "eval", "fsutil", "grade", "model", "reward"],
        ),
        (
            "rzero",
            &[
                "engine", "eval", "fsutil", "grade", "model", "remote", "reward", "train",
            ],
        ),
        (
            "rzero-serve",
            &[
                "engine", "eval", "fsutil", "grade", "model", "remote", "reward",
            ],
        ),
        ("testdata", &[]),
    ];
    for (krate, allowed) in expected {
        assert_eq!(
            g.links_members(krate),
            set(allowed),
            "{krate} links other workspace crates than its layer allows"
        );
    }
    // Only the binary depends on rzero; nothing depends on the binary.
    assert_eq!(g.members_linking("rzero"), set(&["rzero", "rzero-cli"]));
    assert_eq!(g.members_linking("rzero-cli"), set(&["rzero-cli"]));
    // Only the binary depends on the server.
    assert_eq!(
        g.members_linking("rzero-serve"),
        set(&["rzero-serve", "rzero-cli"])
    );
}

#[test]
fn grade_reward_and_eval_never_touch_tensors() {
    let g = graph();
    // The check sees tensor libraries where they are.
    assert!(g.links("model").contains("candle-core"));
    assert!(g.links("rzero").contains("candle-core"));
    for krate in ["grade", "reward", "eval"] {
        let bad = matching(&g.links(krate), TENSOR_LIBS);
        assert!(bad.is_empty(), "{krate} links tensor libraries: {bad:?}");
    }
}

#[test]
fn train_never_names_the_method_nor_the_serving() {
    let g = graph();
    let linked = g.links("train");
    for forbidden in ["rzero", "eval", "remote", "engine", "reward", "grade"] {
        assert!(!linked.contains(forbidden), "train links {forbidden}");
    }
}

#[test]
fn model_knows_no_sampling_no_training_no_method() {
    let g = graph();
    let linked = g.links("model");
    for forbidden in [
        "engine", "train", "rzero", "eval", "remote", "reward", "grade",
    ] {
        assert!(!linked.contains(forbidden), "model links {forbidden}");
    }
}

/// The HTTP client lives in `remote` (reqwest on tokio), the server in `rzero-serve` (axum
/// on tokio); no other crate uses the HTTP stack directly, and only the server and the
/// binary link axum.
#[test]
fn only_remote_and_serve_use_the_http_stack() {
    let g = graph();
    for krate in &g.members {
        let direct = matching(g.uses(krate), HTTP_LIBS);
        match krate.as_str() {
            "remote" => assert!(
                direct.iter().any(|d| d == "reqwest") && !direct.iter().any(|d| d == "axum"),
                "remote is the HTTP client, not the server: {direct:?}"
            ),
            "rzero-serve" => assert!(
                direct.iter().any(|d| d == "axum"),
                "rzero-serve is where `rzero serve` lives"
            ),
            _ => assert!(direct.is_empty(), "{krate} uses {direct:?} directly"),
        }
    }
    assert_eq!(
        g.members_linking("axum"),
        set(&["rzero-serve", "rzero-cli"]),
        "the crates that link axum changed: update this rule and ARCHITECTURE.md"
    );
    assert!(!g.links("rzero").contains("axum"), "rzero links axum");
    for krate in ["grade", "reward", "eval", "model", "engine", "train"] {
        let bad = matching(&g.links(krate), HTTP_LIBS);
        assert!(bad.is_empty(), "{krate} links the HTTP stack: {bad:?}");
    }
}

/// The engine items `rzero serve` may name: the sampling seam (`engine::Sampler` and what
/// its methods take and return). No `Engine`, `Feed`, `Request`, `LocalSampler`: the binary
/// builds the sampler.
const SERVE_MAY_NAME: &[&str] = &[
    "Sampler",
    "SampleFeed",
    "ServeEvent",
    "ModelInfo",
    "Prompt",
    "TextRequest",
    "TextCompletion",
    "SamplingParams",
    "FinishReason",
    "ForceAnswer",
    "Error",
    "Result",
];

/// The names a source file reaches through `engine::` (comments left out): `engine::X` and
/// the top-level names of `engine::{X, Y::Z}` groups (a glob counts as `*`).
fn engine_names(src: &str) -> BTreeSet<String> {
    let code: String = src
        .lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        let id: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if id.is_empty() && s.starts_with('*') {
            "*".into()
        } else {
            id
        }
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("engine::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `my_engine::`
        }
        let rest = &code[i + "engine::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.insert(ident(rest));
            continue;
        };
        let (mut depth, mut start) = (0, true);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => start = true,
                c if start && depth == 0 && !c.is_whitespace() => {
                    out.insert(ident(&group[j..]));
                    start = false;
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn the_engine_name_scanner_sees_paths_and_groups() {
    let src = "use engine::{Sampler, SampleFeed as F,\n    params::{Request}};\n\
               fn f(e: engine::Engine<M>) { my_engine::x(); } // engine::Feed\nuse engine::*;";
    assert_eq!(
        engine_names(src),
        set(&["*", "Engine", "SampleFeed", "Sampler", "params"])
    );
}

/// `rzero serve` samples through `engine::Sampler` only: it does not use `model` directly,
/// and its source names no engine item outside the sampling seam.
#[test]
fn serve_uses_the_engine_only_through_the_sampler() {
    let g = graph();
    let uses = g.uses("rzero-serve");
    assert!(uses.contains("engine"), "rzero-serve no longer uses engine");
    assert!(
        !uses.contains("model"),
        "rzero-serve uses model directly: it samples through engine::Sampler"
    );
    let dir = testdata::repo_root().join("crates/serve/src");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "rs") {
            files += 1;
            let src = std::fs::read_to_string(&path).unwrap();
            for name in engine_names(&src) {
                assert!(
                    SERVE_MAY_NAME.contains(&name.as_str()),
                    "{} names engine::{name}: the server uses the engine only through \
                     engine::Sampler ({SERVE_MAY_NAME:?})",
                    path.display()
                );
            }
        }
    }
    assert!(
        files >= 4,
        "the server's sources are not in {}",
        dir.display()
    );
}

/// Binary-only crates (anyhow, clap, indicatif, tracing-subscriber) stay out of the
/// libraries: libraries return thiserror enums, log through `tracing`, take callbacks.
#[test]
fn binary_only_crates_stay_in_the_binary() {
    let g = graph();
    for krate in g.members.iter().filter(|m| *m != "rzero-cli") {
        let bad = matching(
            g.uses(krate),
            &["anyhow", "clap", "indicatif", "tracing-subscriber"],
        );
        assert!(bad.is_empty(), "library {krate} uses {bad:?}");
    }
    let cli = g.uses("rzero-cli");
    for needed in ["anyhow", "clap", "indicatif", "tracing-subscriber"] {
        assert!(cli.contains(needed), "rzero-cli no longer uses {needed}");
    }
}

/// `fsutil` (the one atomic write) sits under every crate that writes files, so it uses
/// nothing but `thiserror`.
#[test]
fn fsutil_is_a_leaf() {
    let g = graph();
    assert_eq!(g.uses("fsutil"), &set(&["thiserror"]));
    for krate in ["model", "eval", "rzero", "rzero-cli"] {
        assert!(
            g.uses(krate).contains("fsutil"),
            "{krate} writes through fsutil"
        );
    }
}

/// `testdata` (fixture paths, the Python peer) is a dev-dependency only.
#[test]
fn testdata_is_only_a_dev_dependency() {
    let g = graph();
    assert_eq!(g.members_linking("testdata"), set(&["testdata"]));
    let users: Vec<&String> = g
        .dev
        .iter()
        .filter(|(_, deps)| deps.contains("testdata"))
        .map(|(k, _)| k)
        .collect();
    assert!(
        users.len() >= 5,
        "the fixture tests find fixtures through testdata: {users:?}"
    );
}
