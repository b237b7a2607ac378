//! The dataset sections: questions per iteration, the p̂ histograms with the kept band, and
//! a sample of generated questions.

use std::collections::BTreeMap;

use super::{figure, num, DatasetLine, Iter, Run};
use crate::error::Result;
use crate::svg::{bar_chart, Axes, BarGroup, PALETTE};

/// p̂ histogram (11 bins, bin k = round(10·p̂)) and counts of one iteration.
#[derive(Default)]
pub(super) struct DatasetStats {
    pub(super) hist: Option<Vec<f64>>,
    pub(super) generated: Option<f64>,
    pub(super) valid: Option<f64>,
    pub(super) kept: Option<f64>,
}

pub(super) fn dataset_stats(run: &Run, n: u64, it: &Iter) -> DatasetStats {
    let row = run.last_row("dataset", n);
    let mut st = DatasetStats {
        hist: None,
        generated: row.and_then(|r| num(r.generated)),
        valid: row.and_then(|r| num(r.valid)),
        kept: row.and_then(|r| num(r.kept)),
    };
    if let Some(ds) = &it.dataset {
        let mut h = vec![0.0; 11];
        for d in ds {
            if let Some(p) = num(d.p_hat) {
                h[((p * 10.0).round().max(0.0) as usize).min(10)] += 1.0;
            }
        }
        st.hist = Some(h);
        st.valid = st.valid.or(Some(ds.len() as f64));
        st.kept = st
            .kept
            .or(Some(ds.iter().filter(|d| is_kept(d)).count() as f64));
    } else if let Some(h) = row.and_then(|r| r.p_hat_hist.clone()) {
        st.hist = Some(h);
    }
    st
}

fn is_kept(d: &DatasetLine) -> bool {
    d.kept == Some(true)
}

pub(super) fn keep_band(run: &Run) -> (f64, f64) {
    for it in run.iters.values() {
        let band = it
            .audit
            .as_ref()
            .and_then(|a| a.options.as_ref()?.filter.as_ref());
        if let Some((Some(lo), Some(hi))) = band.map(|b| (b.low, b.high)) {
            return (lo, hi);
        }
    }
    (0.3, 0.8)
}

pub(super) fn section_dataset(run: &Run) -> Result<String> {
    let title = "Generated questions and the p̂ filter";
    let stats: Vec<(u64, DatasetStats)> = run
        .iters
        .iter()
        .filter(|(n, _)| **n > 0)
        .map(|(n, it)| (*n, dataset_stats(run, *n, it)))
        .filter(|(_, st)| st.hist.is_some() || st.kept.is_some() || st.valid.is_some())
        .collect();
    if stats.is_empty() {
        let missing = "no dataset (iter_N/dataset.jsonl or dataset rows in metrics.jsonl) yet";
        return super::section("dataset", title, Err(missing));
    }
    let cats: Vec<String> = stats.iter().map(|(n, _)| format!("iter {n}")).collect();
    let groups = vec![
        BarGroup {
            name: "generated".into(),
            color: PALETTE[7].into(),
            values: stats.iter().map(|(_, st)| st.generated).collect(),
        },
        BarGroup {
            name: "well-formed".into(),
            color: PALETTE[5].into(),
            values: stats.iter().map(|(_, st)| st.valid).collect(),
        },
        BarGroup {
            name: "kept".into(),
            color: PALETTE[2].into(),
            values: stats.iter().map(|(_, st)| st.kept).collect(),
        },
    ];
    let mut ax = Axes::new("kept-counts", "iteration", "questions");
    ax.width = 420.0;
    let mut s = String::from(r#"<div class="grid3">"#);
    s.push_str(&figure(
        "Questions per iteration",
        &bar_chart(&ax, &cats, &groups, None, true),
        "",
    ));
    let band = keep_band(run);
    let lo_bin = (band.0 * 10.0).round() as usize;
    let hi_bin = ((band.1 * 10.0).round() as usize).min(10);
    // Bin labels: every other bin's lower edge.
    let bins = |n: usize| -> Vec<String> {
        (0..n)
            .map(|k| match k % 2 {
                0 => format!("{:.1}", k as f64 / 10.0),
                _ => String::new(),
            })
            .collect()
    };
    for (n, st) in &stats {
        let Some(h) = &st.hist else { continue };
        let mut ax = Axes::new(
            &format!("p-hat-hist-iter-{n}"),
            "p̂ (agreement of the Solver's m answers)",
            "questions",
        );
        ax.width = 420.0;
        let g = vec![BarGroup {
            name: format!("iter {n}"),
            color: PALETTE[0].into(),
            values: h.iter().map(|x| Some(*x)).collect(),
        }];
        // A 10-bin `p_hat_hist` row (bin k = [k/10, (k+1)/10), 1.0 in the last bin) when
        // there is no dataset.jsonl to count from.
        let (cats, shade, note) = if h.len() == 10 {
            (
                bins(10),
                (lo_bin.min(9), hi_bin.min(9)),
                "bins [k/10, (k+1)/10) from metrics.jsonl",
            )
        } else {
            (bins(11), (lo_bin, hi_bin), "")
        };
        s.push_str(&figure(
            &format!("p̂ histogram, iteration {n}"),
            &bar_chart(&ax, &cats, &g, Some((shade.0, shade.1, "kept")), false),
            note,
        ));
    }
    s.push_str("</div>");
    super::section("dataset", title, Ok(s))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn answers_summary(answers: &[Option<String>]) -> String {
    let extracted: Vec<String> = answers.iter().flatten().cloned().collect();
    let none = answers.len() - extracted.len();
    let mut classes: Vec<(String, usize)> = grade::group_answers(&extracted)
        .into_iter()
        .filter_map(|c| c.first().map(|&f| (extracted[f].clone(), c.len())))
        .collect();
    classes.sort_by_key(|c| std::cmp::Reverse(c.1));
    let mut parts: Vec<String> = classes
        .iter()
        .take(4)
        .map(|(a, c)| format!("{} ×{c}", truncate(a, 24)))
        .collect();
    if classes.len() > 4 {
        parts.push(format!("+{} more", classes.len() - 4));
    }
    if none > 0 {
        parts.push(format!("none ×{none}"));
    }
    parts.join(" · ")
}

pub(super) fn section_questions(run: &Run) -> Result<String> {
    let sample = run
        .iters
        .iter()
        .rev()
        .find(|(_, it)| it.dataset.as_ref().is_some_and(|d| !d.is_empty()));
    let Some((n, it)) = sample else {
        return super::html("questions.html", minijinja::context! {});
    };
    let ds = it.dataset.as_ref().expect("checked above");
    let challenger_answer: BTreeMap<&str, &str> = it
        .questions
        .iter()
        .flatten()
        .filter_map(|q| Some((q.question.as_deref()?, q.answer.as_deref()?)))
        .collect();
    let kept: Vec<&DatasetLine> = ds.iter().filter(|d| is_kept(d)).take(6).collect();
    let dropped: Vec<&DatasetLine> = ds.iter().filter(|d| !is_kept(d)).take(4).collect();
    let rows: Vec<_> = kept
        .iter()
        .chain(dropped.iter())
        .map(|d| {
            let q = d.question.as_deref().unwrap_or("");
            let answer = challenger_answer.get(q).copied().unwrap_or("–");
            minijinja::context! {
                kept => is_kept(d),
                question => truncate(q, 360),
                answer => truncate(answer, 40),
                label => truncate(d.label.as_deref().unwrap_or("(none)"), 40),
                p_hat => num(d.p_hat).map(|p| format!("{p:.2}")).unwrap_or_else(|| "–".into()),
                answers => answers_summary(&d.answers),
            }
        })
        .collect();
    let ctx = minijinja::context! {
        n, rows, kept => kept.len(), dropped => dropped.len(), total => ds.len(),
    };
    super::html("questions.html", ctx)
}
