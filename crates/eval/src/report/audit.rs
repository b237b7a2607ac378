//! The pseudo-label audit section: majority-vote labels against known answers.

use super::{figure, num, pct, AuditFile, Band, Run};
use crate::error::Result;
use crate::svg::{bar_chart, Axes, BarGroup, PALETTE};

/// Audit summaries per iteration: `audit.json`, else the iteration's last audit row.
pub(super) fn audits(run: &Run) -> Vec<(u64, AuditFile)> {
    let mut out = Vec::new();
    for (&n, it) in &run.iters {
        if let Some(a) = &it.audit {
            out.push((n, a.clone()));
        } else if let Some(r) = run.last_row("audit", n) {
            out.push((n, AuditFile::from(r)));
        }
    }
    out
}

/// The band of an audit named `name`.
fn band<'a>(a: &'a AuditFile, name: &str) -> Option<&'a Band> {
    a.bands
        .iter()
        .flatten()
        .find(|x| x.band.as_deref() == Some(name))
}

/// A count as the tables print it.
fn count(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into())
}

pub(super) fn section_audit(run: &Run) -> Result<String> {
    let a = audits(run);
    // Categories: the bands of the first report that has them, then "all" and "kept".
    let band_names: Vec<String> = a
        .iter()
        .find_map(|(_, v)| {
            v.bands
                .as_ref()
                .map(|b| b.iter().filter_map(|x| x.band.clone()).collect())
        })
        .unwrap_or_default();
    let rows: Vec<_> = a
        .iter()
        .map(|(n, v)| {
            let bands: Vec<_> = band_names
                .iter()
                .map(|b| band(v, b).map(|x| (pct(num(x.accuracy)), x.n.unwrap_or(0))))
                .collect();
            minijinja::context! {
                name => if *n == 0 { "base".into() } else { format!("iter {n}") },
                n => count(v.n),
                acc => pct(num(v.label_accuracy)),
                kept => count(v.kept),
                kept_acc => pct(num(v.kept_label_accuracy)),
                bands,
            }
        })
        .collect();
    let chart = if a.is_empty() {
        String::new()
    } else {
        chart(&a, &band_names)
    };
    let ctx = minijinja::context! { rows, chart, bands => band_names };
    super::html("audit.html", ctx)
}

/// The bar chart of label accuracy per band, one group of bars per audited Solver.
fn chart(a: &[(u64, AuditFile)], band_names: &[String]) -> String {
    let mut cats: Vec<String> = band_names.iter().map(|b| format!("p̂ {b}")).collect();
    cats.push("all labels".into());
    cats.push("kept labels".into());
    let groups: Vec<BarGroup> = a
        .iter()
        .enumerate()
        .map(|(gi, (n, v))| {
            let mut values: Vec<Option<f64>> = band_names
                .iter()
                .map(|b| band(v, b).and_then(|x| num(x.accuracy)))
                .collect();
            values.push(num(v.label_accuracy));
            values.push(num(v.kept_label_accuracy));
            BarGroup {
                name: if *n == 0 {
                    "base Solver".into()
                } else {
                    format!("Solver iter {n}")
                },
                color: PALETTE[gi % PALETTE.len()].into(),
                values,
            }
        })
        .collect();
    let mut ax = Axes::new(
        "label-accuracy",
        "agreement band of the majority vote",
        "label accuracy",
    );
    ax.percent = true;
    ax.y_range = Some((0.0, 1.0));
    ax.width = 760.0;
    ax.height = 300.0;
    figure(
        "Majority-vote labels vs known answers",
        &bar_chart(&ax, &cats, &groups, None, groups.len() <= 3),
        "benchmark questions labelled as the dataset stage labels Challenger questions; the middle band is the one the filter keeps",
    )
}
