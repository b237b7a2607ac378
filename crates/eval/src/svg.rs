//! Hand-written SVG charts for the report: line charts and grouped bar charts, as strings.
//! Output is well-formed XML (every tag closed, every text escaped), inline in the HTML.
//! Every chart is `<svg class="plot" data-plot=NAME>`; series are `<polyline class="series"
//! data-series=NAME>` or `<rect class="bar" data-series=NAME>`, so tests can find them.

use std::fmt::Write;

/// Okabe–Ito colour-blind-safe palette (yellow left out: unreadable on white).
pub(crate) const PALETTE: &[&str] = &[
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#999999",
];

/// Escapes text for HTML/XML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters other than tab/newline are not allowed in XML.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// One line of a line chart.
pub(crate) struct Series {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn thicker (e.g. the benchmark average).
    pub bold: bool,
}

/// Layout and axes of a chart.
pub(crate) struct Axes {
    pub name: String,
    pub x_label: String,
    pub y_label: String,
    /// Fixed y range; otherwise fitted to the data.
    pub y_range: Option<(f64, f64)>,
    /// Show y values as percentages (values are fractions).
    pub percent: bool,
    /// Vertical markers (x, label), e.g. iteration boundaries.
    pub vlines: Vec<(f64, String)>,
    /// Integer x ticks only.
    pub integer_x: bool,
    pub width: f64,
    pub height: f64,
}

impl Axes {
    pub(crate) fn new(name: &str, x_label: &str, y_label: &str) -> Axes {
        Axes {
            name: name.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            y_range: None,
            percent: false,
            vlines: Vec::new(),
            integer_x: true,
            width: 620.0,
            height: 270.0,
        }
    }
}

const ML: f64 = 58.0;
const MR: f64 = 18.0;
const MT: f64 = 34.0;
const MB: f64 = 44.0;

/// "Nice" tick positions covering [lo, hi] (steps of 1, 2 or 5 × 10^k).
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    // The 1-2-5 step whose tick count is closest to the target (fewer ticks on ties).
    let count = |s: f64| ((hi / s).floor() - (lo / s).ceil() + 1.0).max(0.0);
    let step = [0.5, 1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .min_by(|a, b| {
            let da = (count(*a) - target as f64).abs();
            let db = (count(*b) - target as f64).abs();
            da.partial_cmp(&db)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal))
        })
        .unwrap_or(mag);
    let first = (lo / step).ceil() * step;
    let mut v = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && v.len() < 50 {
        v.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    v
}

fn fmt_tick(v: f64, percent: bool, step: f64) -> String {
    if percent {
        let p = v * 100.0;
        return if (step * 100.0) < 1.0 {
            format!("{p:.1}%")
        } else {
            format!("{p:.0}%")
        };
    }
    if step >= 1.0 || v == 0.0 {
        let r = v.round();
        if r.abs() >= 10000.0 {
            return format!("{:.0}k", r / 1000.0);
        }
        return format!("{r:.0}");
    }
    let dec = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.dec$}")
}

/// Short value label (for bars and tables).
pub(crate) fn fmt_value(v: f64, percent: bool) -> String {
    if percent {
        format!("{:.1}%", v * 100.0)
    } else if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn padded_range(lo: f64, hi: f64) -> (f64, f64) {
    if hi - lo < 1e-12 {
        let d = if lo.abs() < 1e-12 {
            1.0
        } else {
            lo.abs() * 0.1
        };
        (lo - d, hi + d)
    } else {
        let pad = (hi - lo) * 0.06;
        (lo - pad, hi + pad)
    }
}

fn legend(out: &mut String, items: &[(&str, &str)], width: f64) {
    let mut x = ML;
    let mut y = 14.0;
    for (name, color) in items {
        let w = 26.0 + 6.8 * name.chars().count() as f64;
        if x + w > width - MR && x > ML {
            x = ML;
            y += 14.0;
        }
        let _ = write!(
            out,
            r#"<g class="legend-item"><rect x="{x:.1}" y="{:.1}" width="12" height="8" fill="{color}"/><text x="{:.1}" y="{y:.1}" class="legend">{}</text></g>"#,
            y - 8.0,
            x + 16.0,
            esc(name)
        );
        x += w;
    }
}

fn open_svg(out: &mut String, ax: &Axes, extra_class: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="plot{extra_class}" data-plot="{}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" style="max-width:{w}px" role="img"><title>{}</title>"#,
        esc(&ax.name),
        esc(&ax.name),
        w = ax.width,
        h = ax.height
    );
}

/// Draws the frame, grid, ticks and axis labels; returns the data-to-pixel maps.
fn frame(
    out: &mut String,
    ax: &Axes,
    x: (f64, f64),
    y: (f64, f64),
    x_ticks: &[f64],
    x_names: Option<&[String]>,
) -> (impl Fn(f64) -> f64, impl Fn(f64) -> f64) {
    let (w, h) = (ax.width, ax.height);
    let (x0, x1) = x;
    let (y0, y1) = y;
    let px = move |v: f64| ML + (v - x0) / (x1 - x0) * (w - ML - MR);
    let py = move |v: f64| h - MB - (v - y0) / (y1 - y0) * (h - MT - MB);
    let yt = nice_ticks(y0, y1, 5);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    let _ = write!(
        out,
        r##"<rect class="bg" x="{ML}" y="{MT}" width="{:.1}" height="{:.1}" fill="#fafafa" stroke="#d0d0d0"/>"##,
        w - ML - MR,
        h - MT - MB
    );
    for t in &yt {
        let yy = py(*t);
        let _ = write!(
            out,
            r##"<line x1="{ML}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            w - MR,
            ML - 5.0,
            yy + 4.0,
            esc(&fmt_tick(*t, ax.percent, ystep))
        );
    }
    let xstep = if x_ticks.len() > 1 {
        x_ticks[1] - x_ticks[0]
    } else {
        1.0
    };
    for (i, t) in x_ticks.iter().enumerate() {
        let xx = px(*t);
        let label = match x_names {
            Some(n) => n.get(i).cloned().unwrap_or_default(),
            None => fmt_tick(*t, false, xstep),
        };
        let _ = write!(
            out,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"##,
            h - MB,
            h - MB + 4.0,
            h - MB + 16.0,
            esc(&label)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" class="axis-label" text-anchor="middle">{}</text><text transform="translate(14,{:.1}) rotate(-90)" class="axis-label" text-anchor="middle">{}</text>"#,
        ML + (w - ML - MR) / 2.0,
        h - 8.0,
        esc(&ax.x_label),
        MT + (h - MT - MB) / 2.0,
        esc(&ax.y_label)
    );
    (px, py)
}

/// A line chart. Series with no points are listed in the legend only.
pub(crate) fn line_chart(ax: &Axes, series: &[Series]) -> String {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let mut out = String::new();
    open_svg(&mut out, ax, " line-chart");
    let xmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    // Markers (iteration starts) stay inside the frame.
    let xmin = ax.vlines.iter().map(|v| v.0).fold(xmin, f64::min);
    let xmax = ax.vlines.iter().map(|v| v.0).fold(xmax, f64::max);
    let (xr0, xr1) = if pts.is_empty() {
        (0.0, 1.0)
    } else if xmax - xmin < 1e-12 {
        (xmin - 0.5, xmax + 0.5)
    } else {
        (xmin, xmax)
    };
    let (xr0, xr1) = if xr1 - xr0 > 0.0 {
        let pad = (xr1 - xr0) * 0.03;
        (xr0 - pad, xr1 + pad)
    } else {
        (xr0, xr1)
    };
    let (y0, y1) = match ax.y_range {
        Some(r) => r,
        None if pts.is_empty() => (0.0, 1.0),
        None => {
            let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            padded_range(lo, hi)
        }
    };
    let mut xt = nice_ticks(xr0, xr1, 8);
    if ax.integer_x {
        xt.retain(|t| (t - t.round()).abs() < 1e-9);
        if xt.is_empty() {
            xt = vec![xmin.round()];
        }
    }
    let (px, py) = frame(&mut out, ax, (xr0, xr1), (y0, y1), &xt, None);
    for (x, label) in &ax.vlines {
        let xx = px(*x);
        let _ = write!(
            out,
            r##"<line class="vline" x1="{xx:.1}" x2="{xx:.1}" y1="{MT}" y2="{:.1}" stroke="#888" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" class="vlabel">{}</text>"##,
            ax.height - MB,
            xx + 3.0,
            MT + 11.0,
            esc(label)
        );
    }
    for s in series {
        let p: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if p.is_empty() {
            continue;
        }
        let coords: Vec<String> = p
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(y.clamp(y0, y1))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="series" data-series="{}" fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round" points="{}"/>"#,
            esc(&s.name),
            s.color,
            if s.bold { 3.2 } else { 1.8 },
            coords.join(" ")
        );
        if p.len() <= 40 {
            for (x, y) in &p {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{}"><title>{}: {}</title></circle>"#,
                    px(*x),
                    py(y.clamp(y0, y1)),
                    if s.bold { 3.6 } else { 2.6 },
                    s.color,
                    esc(&s.name),
                    esc(&fmt_value(*y, ax.percent))
                );
            }
        }
    }
    let items: Vec<(&str, &str)> = series
        .iter()
        .map(|s| (s.name.as_str(), s.color.as_str()))
        .collect();
    legend(&mut out, &items, ax.width);
    out.push_str("</svg>");
    out
}

/// One group of bars (one colour), one value per category.
pub(crate) struct BarGroup {
    pub name: String,
    pub color: String,
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart: categories along x, one bar per group in each category.
/// `shade` highlights a range of category indices (inclusive), e.g. the kept p̂ band.
pub(crate) fn bar_chart(
    ax: &Axes,
    categories: &[String],
    groups: &[BarGroup],
    shade: Option<(usize, usize, &str)>,
    value_labels: bool,
) -> String {
    let mut out = String::new();
    open_svg(&mut out, ax, " bar-chart");
    let maxv = groups
        .iter()
        .flat_map(|g| g.values.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (y0, y1) = ax
        .y_range
        .unwrap_or((0.0, if maxv > 0.0 { maxv * 1.12 } else { 1.0 }));
    let nc = categories.len().max(1) as f64;
    let xt: Vec<f64> = (0..categories.len()).map(|i| i as f64).collect();
    let (px, py) = frame(
        &mut out,
        ax,
        (-0.5, nc - 0.5),
        (y0, y1),
        &xt,
        Some(categories),
    );
    let slot = px(1.0) - px(0.0);
    if let Some((a, b, label)) = shade {
        let xa = px(a as f64 - 0.5);
        let xb = px(b as f64 + 0.5);
        let _ = write!(
            out,
            r##"<rect class="shade" x="{xa:.1}" y="{MT}" width="{:.1}" height="{:.1}" fill="#2e8b57" fill-opacity="0.10"/><text x="{:.1}" y="{:.1}" class="vlabel" text-anchor="middle">{}</text>"##,
            xb - xa,
            ax.height - MT - MB,
            (xa + xb) / 2.0,
            MT + 11.0,
            esc(label)
        );
    }
    let ng = groups.len().max(1) as f64;
    let bw = (slot * 0.8 / ng).min(46.0);
    for (gi, g) in groups.iter().enumerate() {
        for (ci, v) in g.values.iter().enumerate() {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            let x = px(ci as f64) - bw * ng / 2.0 + bw * gi as f64;
            let top = py(v.clamp(y0, y1));
            let base = py(y0.max(0.0).min(y1));
            let (yy, hh) = if top < base {
                (top, base - top)
            } else {
                (base, top - base)
            };
            let _ = write!(
                out,
                r#"<rect class="bar" data-series="{}" x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} / {}: {}</title></rect>"#,
                esc(&g.name),
                (bw - 1.5).max(1.0),
                hh.max(0.5),
                g.color,
                esc(&g.name),
                esc(categories.get(ci).map(String::as_str).unwrap_or("")),
                esc(&fmt_value(v, ax.percent))
            );
            if value_labels {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" class="barlabel" text-anchor="middle">{}</text>"#,
                    x + bw / 2.0,
                    yy - 3.0,
                    esc(&fmt_value(v, ax.percent))
                );
            }
        }
    }
    if groups.len() > 1 {
        let items: Vec<(&str, &str)> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.color.as_str()))
            .collect();
        legend(&mut out, &items, ax.width);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(-0.93, 0.41, 5);
        assert!(
            t.first().unwrap() >= &-0.93 && t.last().unwrap() <= &0.41 && t.len() >= 4,
            "{t:?}"
        );
        assert_eq!(nice_ticks(3.0, 3.0, 5), vec![3.0]);
    }

    #[test]
    fn escaping_covers_markup_and_controls() {
        assert_eq!(
            esc("a<b & \"c\" 'd'>\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;\u{FFFD}"
        );
    }
}
