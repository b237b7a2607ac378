//! `rzero bench cluster`: time of R-Zero's repetition-penalty clustering (all-pairs BLEU,
//! then average linkage) at several batch sizes, and the same batches through
//! `bench/cluster_peer.py` (NLTK and scikit-learn, as R-Zero computes it) when python has
//! `nltk` and `scikit-learn`, with a check that both give the same partition.
//!
//! The peer is quadratic in pure Python (about 0.1–0.3 ms per BLEU pair), so a size it
//! does not finish within `--peer-timeout` is stopped and reported with an estimate scaled
//! by the number of pairs from the largest size it finished.
//!
//! Questions are drawn deterministically from the benchmark question texts
//! (`data/benchmarks/*.jsonl`): 70% verbatim, 30% lightly edited (a number changed,
//! a word dropped, or both), so that the batch has near-duplicates to cluster, as a
//! Challenger's batch does. Without that folder a template generator stands in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Arguments of `rzero bench cluster`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Batch sizes to time, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![64usize, 2000, 8000])]
    pub sizes: Vec<usize>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// BLEU-distance threshold.
    #[arg(long, default_value_t = reward::cluster::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Folder of benchmark JSONL files whose `question` texts seed the batches.
    #[arg(long)]
    pub questions_from: Option<PathBuf>,
    /// Python interpreter for the peer (default: $RZERO_PYTHON or python3).
    #[arg(long)]
    pub python: Option<String>,
    /// Seconds the Python peer may take per size before it is stopped.
    #[arg(long, default_value_t = 300)]
    pub peer_timeout: u64,
    /// Skip the Python peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Append the figures as JSON lines to this file (rewritten atomically).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Seed of the question sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// splitmix64: a tiny deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn load_pool(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut pool = Vec::new();
    for f in files {
        for row in crate::io::read_jsonl(Some(&f))? {
            if let Some(Value::String(q)) = row.get("question") {
                pool.push(q.clone());
            }
        }
    }
    Ok(pool)
}

fn synthetic_pool(rng: &mut Rng) -> Vec<String> {
    let subjects = [
        "integers",
        "primes",
        "triangles",
        "circles",
        "polynomials",
        "sequences",
        "matrices",
    ];
    let verbs = [
        "Find the number of",
        "Compute the sum of all",
        "Determine the largest",
        "How many",
    ];
    (0..3000)
        .map(|_| {
            format!(
                "{} {} $n$ less than {} such that {} divides $n^{} + {}$ and the {} condition holds for {}.",
                verbs[rng.below(verbs.len())],
                subjects[rng.below(subjects.len())],
                rng.below(1000),
                rng.below(50) + 2,
                rng.below(5) + 2,
                rng.below(100),
                subjects[rng.below(subjects.len())],
                rng.below(10_000)
            )
        })
        .collect()
}

fn edit(q: &str, rng: &mut Rng) -> String {
    let mut toks: Vec<String> = q.split_whitespace().map(str::to_string).collect();
    if toks.len() < 2 {
        return q.to_string();
    }
    let kind = rng.below(3);
    if kind != 1 {
        let k = rng.below(toks.len());
        toks[k] = rng.below(100).to_string();
    }
    if kind != 0 {
        let k = rng.below(toks.len());
        toks.remove(k);
    }
    toks.join(" ")
}

fn batch(pool: &[String], n: usize, rng: &mut Rng) -> Vec<String> {
    (0..n)
        .map(|_| {
            let q = &pool[rng.below(pool.len())];
            if rng.below(10) < 3 {
                edit(q, rng)
            } else {
                q.clone()
            }
        })
        .collect()
}

/// Whether two labelings describe the same partition.
fn same_partition(a: &[usize], b: &[usize]) -> bool {
    use std::collections::HashMap;
    let (mut ab, mut ba) = (HashMap::new(), HashMap::new());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(&x, &y)| *ab.entry(x).or_insert(y) == y && *ba.entry(y).or_insert(x) == x)
}

enum Peer {
    Ok {
        bleu_s: f64,
        cluster_s: f64,
        total_s: f64,
        labels: Vec<usize>,
    },
    Timeout(u64),
    Unavailable(String),
}

fn run_peer(
    python: &str,
    questions: &[String],
    threshold: f64,
    timeout: u64,
) -> anyhow::Result<Peer> {
    let script = repo_path("bench/cluster_peer.py");
    let probe = Command::new(python)
        .args(["-c", "import nltk, sklearn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Ok(Peer::Unavailable(format!(
            "{python} without nltk + scikit-learn"
        )));
    }
    let mut input = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    for q in questions {
        writeln!(input, "{}", json!({ "question": q }))?;
    }
    input.flush()?;
    let out_file = tempfile::NamedTempFile::new()?;
    let mut child = Command::new(python)
        .arg(&script)
        .arg(input.path())
        .arg("--threshold")
        .arg(threshold.to_string())
        .stdout(out_file.reopen()?)
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {} {}", python, script.display()))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{} failed with {status}", script.display());
            }
            break;
        }
        if start.elapsed() > Duration::from_secs(timeout) {
            child.kill().ok();
            child.wait().ok();
            return Ok(Peer::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(out_file.path())?;
    let v: Value = serde_json::from_str(text.trim()).context("parsing the peer's output")?;
    let f = |k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .with_context(|| format!("peer output lacks `{k}`"))
    };
    let labels = v
        .get("labels")
        .and_then(Value::as_array)
        .context("peer output lacks `labels`")?
        .iter()
        .map(|x| {
            x.as_u64()
                .map(|x| x as usize)
                .context("label is not an integer")
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    Ok(Peer::Ok {
        bleu_s: f("bleu_seconds")?,
        cluster_s: f("cluster_seconds")?,
        total_s: f("seconds")?,
        labels,
    })
}

/// The table header of the human-readable output.
fn print_header(source: &str, cores: usize, threshold: f64) {
    println!("questions from {source}; {cores} cores; threshold {threshold}");
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>7} {:>9} | {:>11} {:>11} {:>11} {:>8} {:>9}",
        "n",
        "bleu s",
        "link s",
        "rzero s",
        "cpu s",
        "clusters",
        "peer bleu s",
        "peer link s",
        "peer s",
        "speedup",
        "same"
    );
}

/// The peer's columns of one row, with its result added to the JSON record `rec`
/// (`last_peer`: the largest completed peer run, to extrapolate a timed-out one).
fn peer_columns(
    peer: &Peer,
    n: usize,
    total_s: f64,
    labels: &[usize],
    rec: &mut serde_json::Value,
    last_peer: &mut Option<(usize, f64, f64)>,
) -> String {
    match peer {
        Peer::Ok {
            bleu_s: pb,
            cluster_s: pc,
            total_s: pt,
            labels: pl,
        } => {
            let same = same_partition(labels, pl);
            rec["peer"] = json!({ "status": "ok", "bleu_s": pb, "linkage_s": pc, "total_s": pt, "same_partition": same });
            *last_peer = Some((n, *pb, *pc));
            format!(
                "{pb:>11.3} {pc:>11.3} {pt:>11.3} {:>7.0}x {:>9}",
                pt / total_s,
                same
            )
        }
        Peer::Timeout(t) => {
            // Both parts are quadratic: scale by the number of pairs.
            let est = last_peer.map(|(n0, b0, l0)| {
                let r =
                    (n * n.saturating_sub(1)) as f64 / (n0 * n0.saturating_sub(1)).max(1) as f64;
                (b0 * r + l0 * r, n0)
            });
            rec["peer"] = json!({
                "status": "timeout", "timeout_s": t,
                "estimated_total_s": est.map(|e| e.0), "estimated_from_n": est.map(|e| e.1),
            });
            let est_col = est.map_or("-".to_string(), |(e, _)| format!("~{e:.0} (est.)"));
            format!(
                "{:>23} {:>11} {:>8} {:>9}",
                format!("> {t} s, stopped"),
                est_col,
                "-",
                "-"
            )
        }
        Peer::Unavailable(why) => {
            rec["peer"] = json!({ "status": "unavailable", "reason": why });
            format!("{:>35} {:>8} {:>9}", "unavailable", "-", "-")
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args
        .questions_from
        .clone()
        .unwrap_or_else(|| repo_path("data/benchmarks"));
    let mut rng = Rng(args.seed);
    let (pool, source) = match load_pool(&dir) {
        Ok(p) if !p.is_empty() => (p, dir.display().to_string()),
        _ => (synthetic_pool(&mut rng), "synthetic".to_string()),
    };
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var("RZERO_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut records = Vec::new();
    // Largest completed peer run: (n, bleu s, linkage s), to extrapolate timed-out ones.
    let mut last_peer: Option<(usize, f64, f64)> = None;
    if !args.json {
        print_header(&source, cores, args.threshold);
    }
    for &n in &args.sizes {
        let questions = batch(&pool, n, &mut rng);
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let dist = reward::distance::bleu_distances(&questions);
        let t1 = Instant::now();
        let labels = reward::cluster::cluster_distances(dist, args.threshold);
        let t2 = Instant::now();
        let cpu_s = cpu0.zip(cpu_seconds()).map(|(a, b)| b - a);
        let (bleu_s, link_s, total_s) = (
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t2 - t0).as_secs_f64(),
        );
        let clusters = labels.iter().copied().max().map_or(0, |m| m + 1);
        let peer = if args.no_peer {
            Peer::Unavailable("--no-peer".into())
        } else {
            run_peer(&python, &questions, args.threshold, args.peer_timeout)?
        };
        let mut rec = json!({
            "bench": "cluster", "n": n, "cores": cores, "source": source, "threshold": args.threshold,
            "rzero": { "bleu_s": bleu_s, "linkage_s": link_s, "total_s": total_s, "cpu_s": cpu_s, "clusters": clusters },
            "load_avg_1m": load_average(),
        });
        let peer_cols = peer_columns(&peer, n, total_s, &labels, &mut rec, &mut last_peer);
        if args.json {
            println!("{rec}");
        } else {
            let cpu = cpu_s.map_or("-".to_string(), |c| format!("{c:.2}"));
            println!("{n:>6} {bleu_s:>9.3} {link_s:>9.3} {total_s:>9.3} {cpu:>7} {clusters:>9} | {peer_cols}");
        }
        if let Peer::Ok { labels: pl, .. } = &peer {
            if !same_partition(&labels, pl) {
                tracing::warn!(n, "rzero and the python peer disagree on the partition");
            }
        }
        records.push(rec);
    }
    if let Some(path) = &args.results {
        append_atomic(path, &records)?;
    }
    Ok(())
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux, 100
/// ticks per second); `None` elsewhere. Shows the work done when other jobs share the cores.
pub(super) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The 1-minute load average (Linux), recorded because the timings are wall-clock.
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Appends JSON lines to `path` by rewriting it through a temporary file and a rename.
fn append_atomic(path: &Path, records: &[Value]) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for r in records {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    fsutil::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
