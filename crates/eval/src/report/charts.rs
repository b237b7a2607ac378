//! Pieces every section draws with: step series, iteration markers, figures, "not yet".

use super::{iter_of, num, Row};
use crate::svg::{esc, Series};

/// One figure of a metric row.
pub(super) type Field = fn(&Row) -> Option<f64>;

/// Step series over a phase's rows: x = global step (1-based, across iterations).
pub(super) fn step_series(rows: &[&Row], field: Field, name: &str, color: &str) -> Series {
    let points = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| num(field(r)).map(|y| ((i + 1) as f64, y)))
        .collect();
    Series {
        name: name.into(),
        color: color.into(),
        points,
        bold: false,
    }
}

/// Dashed markers where a new iteration starts.
pub(super) fn iter_marks(rows: &[&Row]) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mut last = None;
    for (i, r) in rows.iter().enumerate() {
        let it = iter_of(r);
        if last != Some(it) {
            out.push((i as f64 + 0.5, format!("iter {it}")));
            last = Some(it);
        }
    }
    out
}

pub(super) fn not_yet(what: &str) -> String {
    format!(r#"<p class="not-yet">Not yet: {}.</p>"#, esc(what))
}

pub(super) fn figure(title: &str, svg: &str, caption: &str) -> String {
    format!(
        r#"<figure class="chart"><figcaption><b>{}</b> {}</figcaption>{svg}</figure>"#,
        esc(title),
        esc(caption)
    )
}

pub(super) fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}
