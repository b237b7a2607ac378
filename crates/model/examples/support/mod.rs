//! Measuring helpers shared by the examples' benchmarks (not an example itself).

/// CPU time of all the process's threads (`/proc/self/task/*/schedstat`), seconds: a busy
/// machine disturbs it less than wall time (run with RAYON_NUM_THREADS=1 so that no thread
/// spins).
pub fn cpu_s() -> f64 {
    let mut ns = 0u64;
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 * 1e-9
}

/// The 1-minute load average (Linux), recorded beside the timings.
#[allow(dead_code)] // ops_bench does not record it
pub fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
