//! The plain-text results table `rzero eval` prints.

use crate::results::{BenchResult, EvalResults};

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// A plain-text table of the results (percentages), for the terminal: math benchmarks and
/// their average, the general-domain benchmarks and theirs, then each general-domain
/// benchmark's categories.
pub fn format_table(r: &EvalResults) -> String {
    let k = r.options.samples;
    let h_mean = format!("mean@{k}");
    let h_maj = format!("maj@{k}");
    let mut rows: Vec<[String; 7]> = vec![[
        "benchmark".into(),
        "n".into(),
        "pass@1".into(),
        h_mean,
        h_maj,
        "no answer".into(),
        "guessed".into(),
    ]];
    let mut rules = vec![0];
    let row_of = |b: &BenchResult| -> [String; 7] {
        [
            b.name.clone(),
            b.n.to_string(),
            pct(b.pass_at_1),
            pct(b.mean_at_k),
            pct(b.maj_at_k),
            pct(b.no_answer_frac),
            pct(b.guessed_frac),
        ]
    };
    let (general, math): (Vec<&BenchResult>, Vec<_>) =
        r.benchmarks.iter().partition(|b| b.kind.is_general());
    if !math.is_empty() {
        rows.extend(math.iter().map(|b| row_of(b)));
        rules.push(rows.len() - 1);
        rows.push([
            "average".into(),
            String::new(),
            pct(r.average.pass_at_1),
            pct(r.average.mean_at_k),
            pct(r.average.maj_at_k),
            String::new(),
            String::new(),
        ]);
    }
    if !general.is_empty() {
        if !math.is_empty() {
            rules.push(rows.len() - 1);
        }
        rows.extend(general.iter().map(|b| row_of(b)));
        if general.len() > 1 {
            rules.push(rows.len() - 1);
            rows.push([
                "general average".into(),
                String::new(),
                pct(r.general_average),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    let mut cols = vec![0, 1, 2];
    if k > 0 && !math.is_empty() {
        cols.extend([3, 4]);
    }
    cols.push(5);
    if general.iter().any(|b| b.guessed_frac.is_some()) {
        cols.push(6);
    }
    let mut s = render_rows(&rows, &cols, &rules);
    for b in general {
        if !b.per_category.is_empty() {
            s.push('\n');
            s.push_str(&category_table(b));
        }
    }
    if let Some(judge) = &r.judge {
        s.push('\n');
        s.push_str(&judge_table(r, judge));
    }
    s
}

/// The categories of one general-domain benchmark.
fn category_table(b: &BenchResult) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        format!("{} category", b.name),
        "n".into(),
        "accuracy".into(),
        "no answer".into(),
        String::new(),
        String::new(),
        String::new(),
    ]];
    for c in &b.per_category {
        rows.push([
            c.name.clone(),
            c.n.to_string(),
            pct(Some(c.accuracy)),
            pct(Some(c.no_answer as f64 / c.n.max(1) as f64)),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    render_rows(&rows, &[0, 1, 2, 3], &[0])
}

/// The judge's re-check beside (never merged into) pass@1.
fn judge_table(r: &EvalResults, judge: &str) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        format!("judge {judge}"),
        "n".into(),
        "pass@1".into(),
        "pass@1+judge".into(),
        String::new(),
        String::new(),
        String::new(),
    ]];
    for b in r.benchmarks.iter().filter(|b| b.pass_at_1_judged.is_some()) {
        rows.push([
            b.name.clone(),
            b.n.to_string(),
            pct(b.pass_at_1),
            pct(b.pass_at_1_judged),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows.push([
        "average".into(),
        String::new(),
        pct(r.average.pass_at_1),
        pct(r.average.pass_at_1_judged),
        String::new(),
        String::new(),
        String::new(),
    ]);
    render_rows(&rows, &[0, 1, 2, 3], &[0, rows.len() - 2])
}

/// Aligned columns `cols` of `rows`, a dashed rule after each row index in `rules`.
fn render_rows(rows: &[[String; 7]], cols: &[usize], rules: &[usize]) -> String {
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let total: usize = cols.iter().map(|&c| widths[c]).sum::<usize>() + 2 * (cols.len() - 1);
    let mut s = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = cols
            .iter()
            .map(|&c| {
                if c == 0 {
                    format!("{:<w$}", row[c], w = widths[c])
                } else {
                    format!("{:>w$}", row[c], w = widths[c])
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if rules.contains(&i) {
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    s
}
