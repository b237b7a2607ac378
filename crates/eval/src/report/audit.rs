//! The pseudo-label audit section: majority-vote labels against known answers.

use std::fmt::Write;

use super::{figure, not_yet, num, pct, AuditFile, Band, Run};
use crate::svg::{bar_chart, esc, Axes, BarGroup, PALETTE};

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

pub(super) fn section_audit(run: &Run) -> String {
    let mut s = String::from(
        r#"<section id="audit"><h2>Pseudo-label accuracy (audit on benchmarks with known answers)</h2>"#,
    );
    let a = audits(run);
    if a.is_empty() {
        s.push_str(&not_yet("no audit (iter_N/audit.json) yet"));
        s.push_str("</section>");
        return s;
    }
    // Categories: the bands of the first report that has them, then "all" and "kept".
    let band_names: Vec<String> = a
        .iter()
        .find_map(|(_, v)| {
            v.bands
                .as_ref()
                .map(|b| b.iter().filter_map(|x| x.band.clone()).collect())
        })
        .unwrap_or_default();
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
    s.push_str(r#"<div class="row">"#);
    s.push_str(&figure(
        "Majority-vote labels vs known answers",
        &bar_chart(&ax, &cats, &groups, None, groups.len() <= 3),
        "benchmark questions labelled as the dataset stage labels Challenger questions; the middle band is the one the filter keeps",
    ));
    s.push_str(r#"<table data-table="audit"><thead><tr><th>Solver</th><th>questions</th><th>label acc.</th><th>kept</th><th>kept acc.</th>"#);
    for b in &band_names {
        let _ = write!(s, "<th>p̂ {}</th>", esc(b));
    }
    s.push_str("</tr></thead><tbody>");
    for (n, v) in &a {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            if *n == 0 {
                "base".into()
            } else {
                format!("iter {n}")
            },
            count(v.n),
            pct(num(v.label_accuracy)),
            count(v.kept),
            pct(num(v.kept_label_accuracy))
        );
        for b in &band_names {
            let cell = match band(v, b) {
                Some(x) => format!(
                    "{} <small>(n={})</small>",
                    pct(num(x.accuracy)),
                    x.n.unwrap_or(0)
                ),
                None => "–".into(),
            };
            let _ = write!(s, "<td>{cell}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div></section>");
    s
}
