//! The benchmark sections: math benchmarks and, when evaluated, the general-domain ones
//! (with a per-category table).

use std::collections::{BTreeMap, BTreeSet};

use super::{figure, iter_of, num, pct, Run};
use crate::error::Result;
use crate::svg::{line_chart, Axes, Series, PALETTE};

/// Benchmark pass@1 per iteration: (bench → iter → (pass@1, maj@k)).
pub(super) type BenchTable = BTreeMap<String, BTreeMap<u64, (Option<f64>, Option<f64>)>>;

/// Whether a benchmark (the `kind` of its `results.json` entry or eval metrics row) is
/// general-domain: its `kind` is present and not `math`.
fn is_general(kind: &Option<String>) -> bool {
    kind.as_deref().is_some_and(|k| k != "math")
}

/// The math benchmarks (`general = false`, with `average`) or the general-domain ones
/// (`general = true`, with `general_average` as `average`).
pub(super) fn bench_table(run: &Run, general: bool) -> (Vec<String>, BenchTable) {
    let mut order: Vec<String> = Vec::new();
    let mut t: BenchTable = BTreeMap::new();
    let mut add = |order: &mut Vec<String>, name: &str, it: u64, p: Option<f64>, m: Option<f64>| {
        if !order.iter().any(|o| o == name) {
            order.push(name.to_string());
        }
        t.entry(name.to_string()).or_default().insert(it, (p, m));
    };
    for (&n, it) in &run.iters {
        if let Some(ev) = &it.eval {
            for b in ev
                .benchmarks
                .iter()
                .filter(|b| is_general(&b.kind) == general)
            {
                if let Some(name) = &b.name {
                    let sc = &b.scores;
                    add(&mut order, name, n, num(sc.pass_at_1), num(sc.maj_at_k));
                }
            }
            if general {
                if let Some(a) = num(ev.general_average) {
                    add(&mut order, "average", n, Some(a), None);
                }
            } else if let Some(a) = &ev.average {
                add(&mut order, "average", n, num(a.pass_at_1), num(a.maj_at_k));
            }
        } else {
            for r in run
                .phase("eval")
                .into_iter()
                .filter(|r| iter_of(r) == n && is_general(&r.kind) == general)
            {
                if let Some(name) = &r.bench {
                    add(&mut order, name, n, num(r.pass_at_1), num(r.maj_at_k));
                }
            }
        }
    }
    // The average goes last.
    if let Some(i) = order.iter().position(|o| o == "average") {
        let a = order.remove(i);
        order.push(a);
    }
    (order, t)
}

pub(super) fn section_benchmarks(run: &Run) -> Result<String> {
    section_bench_domain(run, false, Vec::new())
}

/// An iteration's column head: `base` or `iter N`.
fn iter_head(i: u64) -> String {
    if i == 0 {
        "base".to_string()
    } else {
        format!("iter {i}")
    }
}

/// Categories in reporting order, and category → iteration → accuracy.
type CategoryTable = (Vec<String>, BTreeMap<String, BTreeMap<u64, f64>>);

/// The general-domain section (MMLU-Pro, SuperGPQA, BBEH), beside the math one, with the
/// per-category accuracy of each benchmark per iteration; absent when the run evaluates
/// none of them.
pub(super) fn section_general(run: &Run) -> Result<String> {
    if bench_table(run, true).0.is_empty() {
        return Ok(String::new());
    }
    let mut cats: BTreeMap<String, CategoryTable> = BTreeMap::new();
    for (&n, it) in &run.iters {
        let Some(ev) = &it.eval else { continue };
        for b in ev.benchmarks.iter().filter(|b| is_general(&b.kind)) {
            let Some(name) = &b.name else {
                continue;
            };
            let entry = cats.entry(name.to_string()).or_default();
            for c in &b.per_category {
                if let (Some(cn), Some(acc)) = (c.name.as_deref(), num(c.accuracy)) {
                    if !entry.0.iter().any(|o| o == cn) {
                        entry.0.push(cn.to_string());
                    }
                    entry.1.entry(cn.to_string()).or_default().insert(n, acc);
                }
            }
        }
    }
    let tables = cats
        .iter()
        .filter(|(_, (order, _))| !order.is_empty())
        .map(|(bench, (order, t))| {
            let iters: BTreeSet<u64> = t.values().flat_map(|m| m.keys().copied()).collect();
            let rows: Vec<_> = order
                .iter()
                .map(|c| {
                    let cells: Vec<String> =
                        iters.iter().map(|i| pct(t[c].get(i).copied())).collect();
                    minijinja::context! { name => c, cells }
                })
                .collect();
            let iters: Vec<String> = iters.into_iter().map(iter_head).collect();
            minijinja::context! { bench, iters, rows }
        })
        .collect();
    section_bench_domain(run, true, tables)
}

/// The section of one domain: the chart, and the benchmark × iteration table with the
/// change from the first to the last iteration; then the `categories` tables.
fn section_bench_domain(
    run: &Run,
    general: bool,
    categories: Vec<minijinja::Value>,
) -> Result<String> {
    let (order, t) = bench_table(run, general);
    let (id, title, chart) = if general {
        (
            "general",
            "General-domain accuracy per iteration (MMLU-Pro, SuperGPQA, BBEH)",
            "general-accuracy",
        )
    } else {
        (
            "benchmarks",
            "Benchmark accuracy per iteration",
            "benchmark-accuracy",
        )
    };
    let iters: BTreeSet<u64> = t.values().flat_map(|m| m.keys().copied()).collect();
    let rows: Vec<_> = order
        .iter()
        .map(|name| {
            let pass = |i: &u64| t[name].get(i).and_then(|x| x.0);
            let cells: Vec<String> = iters.iter().map(|i| pct(pass(i))).collect();
            let first = iters.iter().find_map(pass);
            let last = iters.iter().rev().find_map(pass);
            let delta = first.zip(last).map(|(a, b)| {
                let d = (b - a) * 100.0;
                let c = if d > 0.05 {
                    "up"
                } else if d < -0.05 {
                    "down"
                } else {
                    "flat"
                };
                (c, format!("{d:+.1}"))
            });
            minijinja::context! { name, cells, delta }
        })
        .collect();
    let chart = if order.is_empty() {
        String::new()
    } else {
        bench_chart(&order, &t, chart, general)
    };
    let ctx = minijinja::context! {
        id, title, chart, rows, categories,
        delta => iters.len() > 1,
        iters => iters.into_iter().map(iter_head).collect::<Vec<_>>(),
    };
    super::html("bench.html", ctx)
}
/// The accuracy chart of one domain: a line per benchmark over the iterations, the average
/// thick and black.
fn bench_chart(order: &[String], t: &BenchTable, chart: &str, general: bool) -> String {
    let mut series = Vec::new();
    let mut ci = 0;
    for name in order {
        let bold = name == "average";
        let color = if bold {
            "#000000".to_string()
        } else {
            let c = PALETTE[ci % 6].to_string();
            ci += 1;
            c
        };
        let points = t[name]
            .iter()
            .filter_map(|(&i, &(p, _))| p.map(|p| (i as f64, p)))
            .collect();
        series.push(Series {
            name: name.clone(),
            color,
            points,
            bold,
        });
    }
    let mut ax = Axes::new(
        chart,
        "iteration (0 = base model)",
        if general {
            "accuracy (greedy, micro-averaged)"
        } else {
            "pass@1 (greedy)"
        },
    );
    ax.percent = true;
    let maxp = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    ax.y_range = Some((
        0.0,
        if maxp > 0.5 {
            1.0
        } else {
            (maxp * 1.25).max(0.05)
        },
    ));
    ax.width = 760.0;
    ax.height = 300.0;
    figure(
        if general { "accuracy" } else { "pass@1" },
        &line_chart(&ax, &series),
        "per benchmark; the thick black line is the unweighted average",
    )
}
