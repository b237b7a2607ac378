//! The HTML report of the recorded run directory `tests/data/run_small` (2 iterations),
//! parsed as XML: sections, plots, series, bars and tables must carry the recorded numbers.
//! Set `RZERO_REPORT_OUT=path.html` to also write the rendered report there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::Reader;

fn run_small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_small")
}

/// One element: name, attributes, text inside it (all descendants), and nesting.
#[derive(Debug, Clone)]
struct El {
    name: String,
    attrs: HashMap<String, String>,
    text: String,
    parent: Option<usize>,
}

/// Parses the document strictly: every start tag must have its matching end tag.
fn parse(html: &str) -> Vec<El> {
    let mut r = Reader::from_str(html);
    r.config_mut().check_end_names = true;
    let mut els: Vec<El> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    loop {
        match r
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}", r.buffer_position()))
        {
            Event::Start(e) => {
                let el = element(&e, stack.last().copied());
                els.push(el);
                stack.push(els.len() - 1);
            }
            Event::Empty(e) => {
                let el = element(&e, stack.last().copied());
                els.push(el);
            }
            Event::End(_) => {
                stack.pop().expect("an end tag closes an open element");
            }
            Event::Text(t) => {
                let s = t.unescape().expect("text unescapes").into_owned();
                for &i in &stack {
                    els[i].text.push_str(&s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(
        stack.is_empty(),
        "unclosed elements: {:?}",
        stack.iter().map(|&i| &els[i].name).collect::<Vec<_>>()
    );
    els
}

fn element(e: &quick_xml::events::BytesStart, parent: Option<usize>) -> El {
    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
    let attrs = e
        .attributes()
        .map(|a| {
            let a = a.expect("attribute parses");
            (
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.unescape_value().unwrap().into_owned(),
            )
        })
        .collect();
    El {
        name,
        attrs,
        text: String::new(),
        parent,
    }
}

fn attr<'a>(e: &'a El, k: &str) -> Option<&'a str> {
    e.attrs.get(k).map(String::as_str)
}

fn inside(els: &[El], mut i: usize, ancestor: usize) -> bool {
    while let Some(p) = els[i].parent {
        if p == ancestor {
            return true;
        }
        i = p;
    }
    false
}

fn find(els: &[El], name: &str, key: &str, value: &str) -> usize {
    els.iter()
        .position(|e| e.name == name && attr(e, key) == Some(value))
        .unwrap_or_else(|| panic!("no <{name} {key}={value:?}>"))
}

/// The polylines of a plot: series name -> number of points.
fn series(els: &[El], plot: &str) -> HashMap<String, usize> {
    let p = find(els, "svg", "data-plot", plot);
    els.iter()
        .enumerate()
        .filter(|(i, e)| e.name == "polyline" && inside(els, *i, p))
        .map(|(_, e)| {
            (
                attr(e, "data-series").unwrap().to_string(),
                attr(e, "points").unwrap().split_whitespace().count(),
            )
        })
        .collect()
}

/// The bars of a plot: (series, value parsed from the bar's tooltip).
fn bars(els: &[El], plot: &str) -> Vec<(String, f64)> {
    let p = find(els, "svg", "data-plot", plot);
    els.iter()
        .enumerate()
        .filter(|(i, e)| e.name == "rect" && attr(e, "class") == Some("bar") && inside(els, *i, p))
        .map(|(_, e)| {
            let v = e
                .text
                .rsplit(": ")
                .next()
                .unwrap()
                .trim_end_matches('%')
                .parse::<f64>()
                .unwrap();
            (attr(e, "data-series").unwrap().to_string(), v)
        })
        .collect()
}

fn table_rows(els: &[El], table: &str) -> Vec<Vec<String>> {
    let t = find(els, "table", "data-table", table);
    let rows: Vec<usize> = (0..els.len())
        .filter(|&i| els[i].name == "tr" && inside(els, i, t))
        .collect();
    rows.iter()
        .skip(1)
        .map(|&r| {
            (0..els.len())
                .filter(|&i| els[i].name == "td" && els[i].parent == Some(r))
                .map(|i| els[i].text.clone())
                .collect()
        })
        .collect()
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn report_of_the_recorded_run_has_every_section_with_its_numbers() {
    let html = eval::report::render(&run_small()).unwrap();
    if let Ok(out) = std::env::var("RZERO_REPORT_OUT") {
        std::fs::write(&out, &html).unwrap();
    }
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        !html.contains("https://") && !html.contains("src=\"http"),
        "no network references"
    );
    let els = parse(&html);

    let sections: Vec<&str> = els
        .iter()
        .filter(|e| e.name == "section")
        .filter_map(|e| attr(e, "id"))
        .collect();
    assert_eq!(
        sections,
        [
            "summary",
            "benchmarks",
            "audit",
            "challenger",
            "dataset",
            "solver",
            "lengths",
            "questions",
            "config"
        ]
    );
    assert!(
        !els.iter().any(|e| attr(e, "class") == Some("not-yet")),
        "a complete run has no 'not yet' section"
    );

    // Benchmarks: one line per benchmark and the average, one point per iteration 0..=2.
    let s = series(&els, "benchmark-accuracy");
    assert_eq!(s.len(), 4);
    for b in ["gsm8k", "math500", "amc23", "average"] {
        assert_eq!(s[b], 3, "{b}");
    }
    let rows = table_rows(&els, "benchmarks");
    assert_eq!(rows.len(), 4);
    let res: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_small().join("iter_2/eval/results.json")).unwrap(),
    )
    .unwrap();
    let gsm_last = res["benchmarks"][0]["pass@1"].as_f64().unwrap();
    assert_eq!(rows[0][0], "gsm8k");
    assert_eq!(rows[0][3], format!("{:.1}%", gsm_last * 100.0));

    // Challenger and Solver: one point per GRPO step, iteration boundaries marked.
    let c = series(&els, "challenger-rewards");
    for k in [
        "reward",
        "uncertainty r_unc",
        "repetition r_rep",
        "well-formed fraction",
    ] {
        assert_eq!(c[k], 10, "{k}");
    }
    let cp = find(&els, "svg", "data-plot", "challenger-rewards");
    let vlines = (0..els.len())
        .filter(|&i| attr(&els[i], "class") == Some("vline") && inside(&els, i, cp))
        .count();
    assert_eq!(vlines, 2);
    let s = series(&els, "solver-reward");
    assert_eq!((s["reward"], s["accuracy vs pseudo-label"]), (16, 16));
    assert_eq!(series(&els, "solver-kl")["KL to reference"], 16);
    assert_eq!(series(&els, "challenger-loss")["loss"], 10);
    let l = series(&els, "response-lengths");
    assert_eq!((l["Challenger"], l["Solver"]), (10, 16));

    // Dataset: p̂ histograms count every question of dataset.jsonl in the right bin.
    for it in [1, 2] {
        let ds = jsonl(&run_small().join(format!("iter_{it}/dataset.jsonl")));
        let mut expect = [0.0; 11];
        for d in &ds {
            expect[(d["p_hat"].as_f64().unwrap() * 10.0).round() as usize] += 1.0;
        }
        let b = bars(&els, &format!("p-hat-hist-iter-{it}"));
        let got: f64 = b.iter().map(|x| x.1).sum();
        assert_eq!(got, ds.len() as f64);
        let mut nonzero: Vec<f64> = expect.iter().copied().filter(|&x| x > 0.0).collect();
        let mut got_nonzero: Vec<f64> = b.iter().map(|x| x.1).filter(|&x| x > 0.0).collect();
        nonzero.sort_by(f64::total_cmp);
        got_nonzero.sort_by(f64::total_cmp);
        assert_eq!(got_nonzero, nonzero);
        let kept = ds.iter().filter(|d| d["kept"] == true).count() as f64;
        let kb = bars(&els, "kept-counts");
        assert_eq!(
            kb.iter()
                .filter(|(s, _)| s == "kept")
                .nth(it - 1)
                .unwrap()
                .1,
            kept
        );
    }

    // Audit: base + 2 Solvers × (3 bands + all + kept) bars, table with the recorded values.
    let ab = bars(&els, "label-accuracy");
    assert_eq!(ab.len(), 15);
    let audit: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_small().join("iter_1/audit.json")).unwrap(),
    )
    .unwrap();
    let mid = audit["bands"][1]["accuracy"].as_f64().unwrap();
    assert!(ab
        .iter()
        .any(|(s, v)| s == "Solver iter 1" && (v - mid * 100.0).abs() < 0.051));
    let rows = table_rows(&els, "audit");
    assert_eq!(
        rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["base", "iter 1", "iter 2"]
    );
    assert_eq!(
        rows[1][2],
        format!("{:.1}%", audit["label_accuracy"].as_f64().unwrap() * 100.0)
    );

    // Question sample: kept ones first, at most 10, from the last iteration, with labels.
    let rows = table_rows(&els, "questions");
    assert!(!rows.is_empty() && rows.len() <= 10);
    let ds2 = jsonl(&run_small().join("iter_2/dataset.jsonl"));
    let first_kept = ds2.iter().find(|d| d["kept"] == true).unwrap();
    assert_eq!(rows[0][0], first_kept["question"].as_str().unwrap());
    assert_eq!(rows[0][2], first_kept["label"].as_str().unwrap());
    assert_eq!(rows[0][5], "✓");
    let kept_flags: Vec<bool> = rows.iter().map(|r| r[5] == "✓").collect();
    assert!(
        kept_flags.windows(2).all(|w| w[0] >= w[1]),
        "kept rows first: {kept_flags:?}"
    );

    // Config shown verbatim.
    let pre = &els[find(&els, "pre", "class", "config")];
    assert!(pre.text.contains("seed = 42") && pre.text.contains("[solver]"));
}

#[test]
fn report_of_a_run_in_progress_says_not_yet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "seed = 1 # <b>&\n").unwrap();
    std::fs::write(
        dir.path().join("state.json"),
        r#"{"iteration": 1, "stage": "challenger"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        "{\"iter\":1,\"phase\":\"challenger\",\"step\":0,\"reward_mean\":-0.5,\"r_unc_mean\":0.1}\n{\"iter\":1,\"phase\":\"challenger\",\"step\":1,\"reward_mean\":-0.4,\"r_unc_mean\":0.2}\n{\"iter\":1,\"pha",
    )
    .unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    let els = parse(&html);
    let not_yet: Vec<&str> = els
        .iter()
        .enumerate()
        .filter(|(_, e)| attr(e, "class") == Some("not-yet"))
        .map(|(i, _)| {
            let mut j = i;
            while els[j].name != "section" {
                j = els[j].parent.unwrap();
            }
            attr(&els[j], "id").unwrap()
        })
        .collect();
    // No response_len_mean in these rows either, so "lengths" waits too.
    assert_eq!(
        not_yet,
        [
            "benchmarks",
            "audit",
            "dataset",
            "solver",
            "lengths",
            "questions"
        ]
    );
    let c = series(&els, "challenger-rewards");
    assert_eq!((c["reward"], c["uncertainty r_unc"]), (2, 2));
    assert!(
        !c.contains_key("repetition r_rep"),
        "absent fields draw no line"
    );
    assert!(els
        .iter()
        .any(|e| e.name == "li" && e.text.contains("1 line(s) of metrics.jsonl")));
    assert!(
        els[find(&els, "pre", "class", "config")]
            .text
            .contains("<b>&"),
        "config text is escaped, not markup"
    );
    assert!(els
        .iter()
        .any(|e| attr(e, "class") == Some("v") && e.text == "challenger"));

    // The base model's results in `base_eval/` (where `rzero run` puts them) count as iteration 0,
    // an audit in `iter_N/eval/` as iteration N's.
    let base = dir.path().join("base_eval");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::copy(
        run_small().join("iter_0/eval/results.json"),
        base.join("results.json"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("iter_1/eval")).unwrap();
    std::fs::copy(
        run_small().join("iter_1/audit.json"),
        dir.path().join("iter_1/eval/audit.json"),
    )
    .unwrap();
    // A dataset row with the loop's 10-bin histogram and no dataset.jsonl.
    let mut m = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    m.truncate(m.rfind('\n').unwrap() + 1);
    m.push_str("{\"iter\":1,\"phase\":\"dataset\",\"step\":0,\"generated\":30,\"valid\":25,\"kept\":9,\"p_hat_hist\":[0,1,2,3,4,5,4,3,2,1]}\n");
    std::fs::write(dir.path().join("metrics.jsonl"), m).unwrap();
    let els = parse(&eval::report::render(dir.path()).unwrap());
    assert_eq!(series(&els, "benchmark-accuracy")["gsm8k"], 1);
    let h = bars(&els, "p-hat-hist-iter-1");
    assert_eq!(h.iter().map(|b| b.1).sum::<f64>(), 25.0);
    assert_eq!(h.len(), 10);
    assert!(bars(&els, "kept-counts").contains(&("kept".to_string(), 9.0)));
    assert_eq!(
        table_rows(&els, "audit")
            .iter()
            .map(|r| r[0].as_str())
            .collect::<Vec<_>>(),
        ["iter 1"]
    );

    let empty = tempfile::tempdir().unwrap();
    let els = parse(&eval::report::render(empty.path()).unwrap());
    assert_eq!(
        els.iter()
            .filter(|e| attr(e, "class") == Some("not-yet"))
            .count(),
        9,
        "every section of an empty run, the summary included, says not yet"
    );
    assert!(eval::report::render(&empty.path().join("missing")).is_err());
}

/// Update rows (`"update": u`) are plotted per optimizer update (clip fraction, ppo_kl) and
/// kept out of the per-step charts; the step rows' `adv_nonzero_frac` gets its chart.
#[test]
fn update_rows_are_plotted_per_update_and_not_as_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for step in 1..=3 {
        for u in 1..=2 {
            text.push_str(&format!(
                "{{\"iter\":1,\"phase\":\"challenger\",\"step\":{step},\"update\":{u},\"pg_clipfrac_higher\":{},\"pg_clipfrac_lower\":0.0,\"ppo_kl\":{},\"loss\":0.5,\"kl\":0.01}}\n",
                if u == 1 { 0.0 } else { 0.2 },
                if u == 1 { 0.0 } else { 0.01 }
            ));
        }
        text.push_str(&format!(
            "{{\"iter\":1,\"phase\":\"challenger\",\"step\":{step},\"reward_mean\":0.1,\"r_unc_mean\":0.2,\"r_rep_mean\":0.1,\"format_valid_frac\":0.5,\"loss\":0.5,\"kl\":0.01,\"adv_nonzero_frac\":0.75}}\n"
        ));
    }
    std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    let els = parse(&html);
    // per step: 3 points; per update: 6 points
    assert_eq!(series(&els, "challenger-rewards")["reward"], 3);
    assert_eq!(series(&els, "challenger-loss")["loss"], 3);
    let clip = series(&els, "challenger-clip");
    assert_eq!(clip.values().copied().max(), Some(6), "{clip:?}");
    assert_eq!(series(&els, "challenger-ppo-kl").values().next(), Some(&6));
    assert_eq!(series(&els, "challenger-adv").values().next(), Some(&3));
}

/// A key written into an (older) run's config.toml never reaches the report.
#[test]
fn report_redacts_secrets_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "seed = 1\n[remote]\napi_key = \"s3cr3t-value\"\napi_key_env = \"OPENAI_API_KEY\"\n\
         model = \"sk-abcdefgh12345678\"\nmax_new_tokens = 64\nnote = \"hf_token in a sentence\"\n",
    )
    .unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    assert!(!html.contains("s3cr3t-value"), "api_key leaked");
    assert!(!html.contains("sk-abcdefgh12345678"), "sk- key leaked");
    let els = parse(&html);
    let pre = &els[find(&els, "pre", "class", "config")].text;
    // Names of environment variables, numbers and ordinary text stay.
    assert!(pre.contains("api_key_env = \"OPENAI_API_KEY\""), "{pre}");
    assert!(pre.contains("max_new_tokens = 64"), "{pre}");
    assert!(pre.contains("hf_token in a sentence"), "{pre}");
    assert!(pre.contains("api_key = \"<redacted>\""), "{pre}");
}

/// The first screen, from a synthetic two-iteration run: the table's figures with their
/// trends, one plain-words paragraph per iteration, and the note that 135M is tiny.
#[test]
fn first_screen_says_what_happened_per_iteration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "model = \"smollm2\"\niterations = 2\n\n[dataset]\nmin_p_hat = 0.3\n",
    )
    .unwrap();
    let rows = [
        r#"{"iter":0,"phase":"eval","bench":"gsm8k","pass@1":0.1,"n":30,"kind":"math"}"#,
        r#"{"iter":0,"phase":"audit","n":10,"label_accuracy":0.2,"kept":3,"kept_label_accuracy":0.33}"#,
        r#"{"iter":1,"phase":"challenger","step":0,"reward_mean":-0.8,"format_valid_frac":0.25,"adv_nonzero_frac":0.5}"#,
        r#"{"iter":1,"phase":"challenger","step":1,"reward_mean":-0.5,"format_valid_frac":0.5,"adv_nonzero_frac":1.0}"#,
        r#"{"iter":1,"phase":"dataset","generated":32,"valid":19,"kept":6}"#,
        r#"{"iter":1,"phase":"solver","step":0,"reward_mean":0.3,"adv_nonzero_frac":0.75}"#,
        r#"{"iter":1,"phase":"solver","step":0,"update":0,"loss":0.1,"adv_nonzero_frac":0.75}"#,
        r#"{"iter":1,"phase":"solver","step":1,"reward_mean":0.5,"adv_nonzero_frac":0.5}"#,
        r#"{"iter":1,"phase":"eval","bench":"gsm8k","pass@1":0.1333,"n":30,"kind":"math"}"#,
        r#"{"iter":1,"phase":"audit","n":10,"label_accuracy":0.3,"kept":4,"kept_label_accuracy":0.5}"#,
        r#"{"iter":2,"phase":"challenger","step":0,"reward_mean":-0.5,"format_valid_frac":0.5}"#,
        r#"{"iter":2,"phase":"challenger","step":1,"reward_mean":-0.3,"format_valid_frac":0.75}"#,
        r#"{"iter":2,"phase":"dataset","generated":32,"valid":25,"kept":4}"#,
        r#"{"iter":2,"phase":"solver","step":0,"reward_mean":0.6,"adv_nonzero_frac":1.0}"#,
        r#"{"iter":2,"phase":"solver","step":1,"reward_mean":0.4,"adv_nonzero_frac":0.0}"#,
        r#"{"iter":2,"phase":"eval","bench":"gsm8k","pass@1":0.1,"n":30,"kind":"math"}"#,
        r#"{"iter":2,"phase":"audit","n":10,"label_accuracy":0.3,"kept":4,"kept_label_accuracy":0.5}"#,
    ];
    std::fs::write(dir.path().join("metrics.jsonl"), rows.join("\n") + "\n").unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    let els = parse(&html);
    // the summary is the first section
    let first = els.iter().find(|e| e.name == "section").unwrap();
    assert_eq!(attr(first, "id"), Some("summary"));
    let note = &els[find(&els, "p", "id", "summary-model")].text;
    assert!(note.contains("SmolLM2-135M-Instruct"), "{note}");
    assert!(note.contains("135M parameters"), "{note}");
    assert!(note.contains("tiny model"), "{note}");
    let t = table_rows(&els, "summary");
    let row = |label: &str| -> Vec<String> {
        t.iter()
            .find(|r| r[0] == label)
            .unwrap_or_else(|| panic!("no row {label:?} in {t:?}"))
            .clone()
    };
    assert_eq!(
        row("Challenger: questions in the required format")[1..],
        ["–", "37.5%", "62.5% ↑"]
    );
    assert_eq!(
        row("Challenger: reward (mean over steps)")[1..],
        ["–", "-0.65", "-0.40 ↑"]
    );
    assert_eq!(row("questions kept for the Solver")[1..], ["–", "6", "4 ↓"]);
    assert_eq!(
        row("Solver: reward (mean over steps)")[1..],
        ["–", "0.40", "0.50 ↑"]
    );
    assert_eq!(
        row("Solver: samples with a non-zero advantage (lowest step)")[1..],
        ["–", "50.0%", "0.0% ↓"]
    );
    assert_eq!(
        row("label accuracy of all audited questions")[1..],
        ["20.0%", "30.0% ↑", "30.0% ="]
    );
    assert_eq!(row("GSM8K pass@1")[1..], ["10.0%", "13.3% ↑", "10.0% ↓"]);
    // The header card is the last audit's kept questions, not the summary's all questions.
    let cards: Vec<&str> = els
        .iter()
        .filter(|e| attr(e, "class") == Some("card"))
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        cards.contains(&"label accuracy of kept questions (audit)50.0%"),
        "{cards:?}"
    );
    let it1 = &els[find(&els, "li", "id", "summary-iter-1")].text;
    for want in [
        "trained for 2 GRPO steps",
        "37.5% of its samples were questions in the required format (25.0% at the first step → 50.0% at the last ↑)",
        "It then wrote 32 questions, 19 well-formed; 6 kept for the Solver",
        "between 0.3 and 0.8",
        "Samples with a non-zero advantage per step: 75.0%, 50.0%; every step had a learning signal",
        "right on 30.0% of 10 benchmark questions with known answers ↑ (20.0% before training)",
        "it solved 13.3% of 30 GSM8K problems ↑ (10.0% before training)",
    ] {
        assert!(it1.contains(want), "iteration 1 lacks {want:?}: {it1}");
    }
    let it2 = &els[find(&els, "li", "id", "summary-iter-2")].text;
    for want in [
        "required format ↑ (50.0% at the first step → 75.0% at the last ↑)",
        "reward averaged -0.40 ↑ (-0.50 at the first step → -0.30 at the last ↑)",
        "4 kept ↓",
        "1 of 2 steps taught nothing",
        "30.0% of 10 benchmark questions with known answers = (30.0% after iteration 1)",
        "it solved 10.0% of 30 GSM8K problems ↓ (13.3% after iteration 1)",
    ] {
        assert!(it2.contains(want), "iteration 2 lacks {want:?}: {it2}");
    }
}

/// The model's size: from the checkpoint's safetensors header when there is one, else from
/// its name; only a model under a billion parameters is called tiny.
#[test]
fn first_screen_names_the_model_size() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "model = \"/models/my-model\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        r#"{"iter":1,"phase":"dataset","generated":8,"valid":2,"kept":0}"#,
    )
    .unwrap();
    let ckpt = dir.path().join("iter_1/solver");
    std::fs::create_dir_all(&ckpt).unwrap();
    let header = br#"{"__metadata__":{"format":"pt"},"embed":{"dtype":"F32","shape":[1000,64],"data_offsets":[0,256000]},"norm":{"dtype":"F32","shape":[64],"data_offsets":[256000,256256]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(ckpt.join("model.safetensors"), bytes).unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    let els = parse(&html);
    let note = &els[find(&els, "p", "id", "summary-model")].text;
    assert!(
        note.contains("/models/my-model with 64K parameters"),
        "{note}"
    );
    assert!(note.contains("tiny model"), "{note}");
    let it1 = &els[find(&els, "li", "id", "summary-iter-1")].text;
    assert!(it1.contains("the Solver was not trained"), "{it1}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "model = \"Qwen/Qwen3-4B-Base\"\n",
    )
    .unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    let els = parse(&html);
    let note = &els[find(&els, "p", "id", "summary-model")].text;
    assert!(
        note.contains("Qwen/Qwen3-4B-Base with 4.0B parameters"),
        "{note}"
    );
    assert!(!note.contains("tiny"), "{note}");
}

/// Text from the run reaches the page escaped as the report always escaped it (`&#39;` for
/// `'`, U+FFFD for control characters) through the templates, and older or odd rows read
/// through the typed rows: missing fields are absent, a field of the wrong type skips its line.
#[test]
fn templates_escape_text_and_typed_rows_tolerate_old_runs() {
    let dir = tempfile::tempdir().unwrap();
    let it = dir.path().join("iter_1");
    std::fs::create_dir_all(&it).unwrap();
    std::fs::write(
        it.join("dataset.jsonl"),
        "{\"question\":\"<b>x & \\\"y\\\" 'z'\\u0001\",\"label\":null,\"p_hat\":0.5,\"answers\":[\"a<b\",null],\"kept\":true}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        // an old row (no step, no loss), and one whose reward is not a number
        "{\"iter\":1,\"phase\":\"solver\",\"reward_mean\":0.25}\n{\"iter\":1,\"phase\":\"solver\",\"step\":2,\"reward_mean\":\"high\"}\n",
    )
    .unwrap();
    let html = eval::report::render(dir.path()).unwrap();
    let els = parse(&html);
    assert!(
        html.contains("<td class=\"q\">&lt;b&gt;x &amp; &quot;y&quot; &#39;z&#39;\u{FFFD}</td>"),
        "{html}"
    );
    assert!(html.contains("<td><code>(none)</code></td>"));
    assert!(html.contains("<td class=\"ans\">a&lt;b ×1 · none ×1</td>"));
    assert_eq!(series(&els, "solver-reward")["reward"], 1);
    assert!(els
        .iter()
        .any(|e| e.name == "li" && e.text.contains("1 line(s) of metrics.jsonl")));
}
