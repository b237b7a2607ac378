//! The benchmark sections: math benchmarks and, when evaluated, the general-domain ones
//! (with a per-category table).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::{figure, iter_of, not_yet, num, pct, Run};
use crate::svg::{esc, line_chart, Axes, Series, PALETTE};

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

pub(super) fn section_benchmarks(run: &Run) -> String {
    section_bench_domain(run, false)
}

/// Categories in reporting order, and category → iteration → accuracy.
type CategoryTable = (Vec<String>, BTreeMap<String, BTreeMap<u64, f64>>);

/// The general-domain section (MMLU-Pro, SuperGPQA, BBEH), beside the math one; absent when
/// the run evaluates none of them.
pub(super) fn section_general(run: &Run) -> String {
    if bench_table(run, true).0.is_empty() {
        return String::new();
    }
    let mut s = section_bench_domain(run, true);
    // Per-category accuracy of each general benchmark, per iteration.
    s.truncate(s.len() - "</section>".len());
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
    for (bench, (order, t)) in &cats {
        if order.is_empty() {
            continue;
        }
        let iters: BTreeSet<u64> = t.values().flat_map(|m| m.keys().copied()).collect();
        let _ = write!(
            s,
            r#"<h3>{} per category</h3><table data-table="categories-{}"><thead><tr><th>category</th>"#,
            esc(bench),
            esc(bench)
        );
        for i in &iters {
            let _ = write!(
                s,
                "<th>{}</th>",
                if *i == 0 {
                    "base".to_string()
                } else {
                    format!("iter {i}")
                }
            );
        }
        s.push_str("</tr></thead><tbody>");
        for c in order {
            let _ = write!(s, "<tr><td>{}</td>", esc(c));
            for i in &iters {
                let _ = write!(s, "<td>{}</td>", pct(t[c].get(i).copied()));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section>");
    s
}

fn section_bench_domain(run: &Run, general: bool) -> String {
    let (order, t) = bench_table(run, general);
    let (id, title, chart, what) = if general {
        (
            "general",
            "General-domain accuracy per iteration (MMLU-Pro, SuperGPQA, BBEH)",
            "general-accuracy",
            "general",
        )
    } else {
        (
            "benchmarks",
            "Benchmark accuracy per iteration",
            "benchmark-accuracy",
            "benchmarks",
        )
    };
    let mut s = format!(r#"<section id="{id}"><h2>{title}</h2>"#);
    if order.is_empty() {
        s.push_str(&not_yet(
            "no evaluation results (iter_N/eval/results.json) yet",
        ));
        s.push_str("</section>");
        return s;
    }
    s.push_str(r#"<div class="row">"#);
    s.push_str(&bench_chart(&order, &t, chart, general));
    s.push_str(&bench_rows(&order, &t, what));
    s.push_str("</div></section>");
    s
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

/// The benchmark × iteration table of one domain, with the change from the first to the
/// last iteration.
fn bench_rows(order: &[String], t: &BenchTable, what: &str) -> String {
    let iters: BTreeSet<u64> = t.values().flat_map(|m| m.keys().copied()).collect();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<table data-table="{what}"><thead><tr><th>benchmark</th>"#
    );
    for i in &iters {
        let _ = write!(
            s,
            "<th>{}</th>",
            if *i == 0 {
                "base".to_string()
            } else {
                format!("iter {i}")
            }
        );
    }
    if iters.len() > 1 {
        s.push_str("<th>Δ</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for name in order {
        let cls = if name == "average" {
            r#" class="avg""#
        } else {
            ""
        };
        let _ = write!(s, "<tr{cls}><td>{}</td>", esc(name));
        for i in &iters {
            let v = t[name].get(i).and_then(|x| x.0);
            let _ = write!(s, "<td>{}</td>", pct(v));
        }
        if iters.len() > 1 {
            let first = iters.iter().find_map(|i| t[name].get(i).and_then(|x| x.0));
            let last = iters
                .iter()
                .rev()
                .find_map(|i| t[name].get(i).and_then(|x| x.0));
            let d = match (first, last) {
                (Some(a), Some(b)) => {
                    let d = (b - a) * 100.0;
                    let c = if d > 0.05 {
                        "up"
                    } else if d < -0.05 {
                        "down"
                    } else {
                        "flat"
                    };
                    format!(r#"<span class="{c}">{d:+.1}</span>"#)
                }
                _ => "–".into(),
            };
            let _ = write!(s, "<td>{d}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}
