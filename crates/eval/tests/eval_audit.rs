//! `run_eval` and `run_audit` against scripted generators: metrics, resumability, and the
//! audit's label accuracy per p̂ band.

use std::collections::HashMap;

use eval::{
    plain_prompt, run_audit, run_eval, AuditOptions, Benchmark, Error, EvalOptions, ExtractMode,
    GenParams, Generator, SOLVER_SYSTEM_PROMPT,
};

/// Answers each question from a script: greedy calls get `script[q][0]`, sampled calls the
/// first n entries. Counts how many prompts it was asked to complete.
struct Scripted {
    script: HashMap<String, Vec<String>>,
    prompts_seen: usize,
    calls: usize,
    fail_on_call: Option<usize>,
}

impl Scripted {
    fn new(pairs: &[(&str, Vec<&str>)]) -> Self {
        let script = pairs
            .iter()
            .map(|(q, r)| {
                (
                    plain_prompt(SOLVER_SYSTEM_PROMPT, q),
                    r.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        Scripted {
            script,
            prompts_seen: 0,
            calls: 0,
            fail_on_call: None,
        }
    }
}

impl Generator for Scripted {
    fn generate(
        &mut self,
        prompts: &[String],
        n: usize,
        params: &GenParams,
    ) -> eval::Result<Vec<Vec<String>>> {
        self.calls += 1;
        if self.fail_on_call == Some(self.calls) {
            return Err(Error::Generation("scripted failure".into()));
        }
        self.prompts_seen += prompts.len();
        prompts
            .iter()
            .map(|p| {
                let s = self
                    .script
                    .get(p)
                    .ok_or_else(|| Error::Generation(format!("unscripted prompt {p:?}")))?;
                if params.temperature == 0.0 {
                    assert_eq!(n, 1, "greedy calls ask for one completion");
                    Ok(vec![s[0].clone()])
                } else {
                    Ok((0..n).map(|i| s[1 + i % (s.len() - 1)].clone()).collect())
                }
            })
            .collect()
    }
}

fn boxed(x: &str) -> String {
    format!("Some reasoning. The answer is \\boxed{{{x}}}.")
}

fn bench() -> Benchmark {
    Benchmark::from_jsonl_str(
        "toy",
        "{\"id\":\"a\",\"question\":\"qa\",\"answer\":\"5\"}\n{\"id\":\"b\",\"question\":\"qb\",\"answer\":\"3\"}\n{\"id\":\"c\",\"question\":\"qc\",\"answer\":\"1/2\"}\n{\"id\":\"d\",\"question\":\"qd\",\"answer\":\"7\"}\n",
    )
    .unwrap()
}

/// Script: entry 0 is the greedy response, entries 1.. the samples (k = 4).
fn eval_script() -> Scripted {
    let a = [boxed("5"), boxed("5"), boxed("5"), boxed("6"), boxed("5")]; // greedy ✓; samples 3/4 ✓, maj ✓
    let b = [
        boxed("4"),
        boxed("3"),
        boxed("4"),
        boxed("4"),
        "no box".into(),
    ]; // greedy ✗; 1/4; maj 4 ✗
    let c = [
        boxed("\\frac{1}{2}"),
        boxed("0.5"),
        boxed("2"),
        boxed("1/3"),
        boxed("2"),
    ]; // greedy ✓ (equivalent form); 1/4; maj 2 ✗
    let d = [
        "I don't know".to_string(),
        boxed("7"),
        boxed("7"),
        boxed("8"),
        boxed("9"),
    ]; // greedy ✗ (no answer); 2/4; maj 7 ✓
    let mut s = Scripted::new(&[]);
    for (q, r) in [("qa", a), ("qb", b), ("qc", c), ("qd", d)] {
        s.script
            .insert(plain_prompt(SOLVER_SYSTEM_PROMPT, q), r.to_vec());
    }
    s
}

fn opts() -> EvalOptions {
    EvalOptions {
        model: "scripted".into(),
        samples: 4,
        batch_size: 3,
        ..EvalOptions::default()
    }
}

#[test]
fn eval_metrics_from_scripted_responses() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = eval_script();
    let mut last = None;
    let r = run_eval(&mut g, &[bench()], &opts(), dir.path(), &mut |p| {
        last = Some((p.done, p.total))
    })
    .unwrap();
    let b = &r.benchmarks[0];
    assert_eq!(b.n, 4);
    assert_eq!(b.pass_at_1, Some(0.5));
    assert!((b.mean_at_k.unwrap() - (0.75 + 0.25 + 0.25 + 0.5) / 4.0).abs() < 1e-12);
    assert_eq!(b.maj_at_k, Some(0.5));
    assert_eq!(b.no_answer_frac, Some(0.25));
    assert_eq!(r.average.pass_at_1, Some(0.5));
    assert_eq!(last, Some((8, 8)));
    // Every response is journaled with its extracted answer and verdict.
    let text = std::fs::read_to_string(dir.path().join("responses.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8);
    let ca = rows
        .iter()
        .find(|r| r["id"] == "c" && r["mode"] == "greedy")
        .unwrap();
    assert_eq!(ca["answers"][0], "\\frac{1}{2}");
    assert_eq!(ca["correct"][0], true);
    let written: eval::EvalResults =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(written, r);
    let table = eval::format_table(&r);
    assert!(
        table.contains("toy") && table.contains("50.0") && table.contains("mean@4"),
        "{table}"
    );
}

#[test]
fn killed_eval_resumes_without_redoing_work() {
    let full_dir = tempfile::tempdir().unwrap();
    let full = run_eval(
        &mut eval_script(),
        &[bench()],
        &opts(),
        full_dir.path(),
        &mut |_| {},
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut g = eval_script();
    g.fail_on_call = Some(2); // the first greedy batch (3 problems) lands, then the run dies
    assert!(run_eval(&mut g, &[bench()], &opts(), dir.path(), &mut |_| {}).is_err());
    assert!(!dir.path().join("results.json").exists());
    // A half-written line, as a kill during a write leaves it.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("responses.jsonl"))
        .unwrap()
        .write_all(b"{\"bench\":\"toy\",\"id\"")
        .unwrap();

    let mut g2 = eval_script();
    let resumed = run_eval(&mut g2, &[bench()], &opts(), dir.path(), &mut |_| {}).unwrap();
    assert_eq!(g2.prompts_seen, 8 - 3, "only the missing work is generated");
    assert_eq!(resumed.benchmarks, full.benchmarks);
    let lines = std::fs::read_to_string(dir.path().join("responses.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 8);

    // Done: a third run generates nothing.
    let mut g3 = eval_script();
    run_eval(&mut g3, &[bench()], &opts(), dir.path(), &mut |_| {}).unwrap();
    assert_eq!(g3.prompts_seen, 0);

    // Different generation options in the same folder are refused.
    let other = EvalOptions {
        max_new_tokens: 7,
        ..opts()
    };
    assert!(matches!(
        run_eval(
            &mut eval_script(),
            &[bench()],
            &other,
            dir.path(),
            &mut |_| {}
        ),
        Err(Error::Resume { .. })
    ));
}

#[test]
fn greedy_only_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let o = EvalOptions {
        samples: 0,
        limit: Some(2),
        ..opts()
    };
    let r = run_eval(&mut eval_script(), &[bench()], &o, dir.path(), &mut |_| {}).unwrap();
    assert_eq!(r.benchmarks[0].n, 2);
    assert_eq!(r.benchmarks[0].pass_at_1, Some(0.5));
    assert_eq!(r.benchmarks[0].mean_at_k, None);
    assert_eq!(r.average.maj_at_k, None);
}

#[test]
fn a_generator_returning_too_few_completions_is_an_error() {
    struct Short;
    impl Generator for Short {
        fn generate(
            &mut self,
            prompts: &[String],
            _n: usize,
            _p: &GenParams,
        ) -> eval::Result<Vec<Vec<String>>> {
            Ok(prompts
                .iter()
                .skip(1)
                .map(|_| vec![String::new()])
                .collect())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let e = run_eval(&mut Short, &[bench()], &opts(), dir.path(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::Generation(_)), "{e}");
}

fn rep(x: &str, n: usize) -> Vec<String> {
    vec![boxed(x); n]
}

#[test]
fn audit_builds_majority_labels_and_measures_them_per_band() {
    let bench = Benchmark::from_jsonl_str(
        "toy",
        &[
            ("q1", "5"),
            ("q2", "4"),
            ("q3", "7"),
            ("q4", "2"),
            ("q5", "9"),
            ("q6", "1"),
        ]
        .iter()
        .map(|(q, a)| format!("{{\"id\":\"{q}\",\"question\":\"{q}\",\"answer\":\"{a}\"}}\n"))
        .collect::<String>(),
    )
    .unwrap();
    let mut s = Scripted::new(&[]);
    let mut add = |q: &str, samples: Vec<String>| {
        let mut v = vec![String::new()]; // entry 0 = greedy, unused by the audit
        v.extend(samples);
        s.script.insert(plain_prompt(SOLVER_SYSTEM_PROMPT, q), v);
    };
    // q1: 10 × 5 -> p̂ 1.0, label 5 = gold: high band, correct.
    add("q1", rep("5", 10));
    // q2: 6 × 3, 4 × 4 -> p̂ 0.6, label 3 ≠ 4: kept, wrong.
    add("q2", [rep("3", 6), rep("4", 4)].concat());
    // q3: 3 × 7 and seven singletons -> p̂ 0.3 (band edge, kept), label 7 = gold.
    add(
        "q3",
        [
            rep("7", 3),
            (10..17).map(|i| boxed(&i.to_string())).collect(),
        ]
        .concat(),
    );
    // q4: no \boxed at all -> no label, p̂ 0: low band, wrong, not kept.
    add("q4", vec!["thinking...".to_string(); 10]);
    // q5: 2 × 9, one each of 8 others -> p̂ 0.2: low band, label correct.
    add(
        "q5",
        [
            rep("9", 2),
            (20..28).map(|i| boxed(&i.to_string())).collect(),
        ]
        .concat(),
    );
    // q6: 8 × 1 and 2 without a box -> p̂ = 8/8 = 1.0: high band, correct (p̂ counts extracted answers only).
    add("q6", [rep("1", 8), vec!["none".into(); 2]].concat());
    let dir = tempfile::tempdir().unwrap();
    let o = AuditOptions {
        model: "scripted".into(),
        batch_size: 4,
        ..AuditOptions::default()
    };
    let r = run_audit(
        &mut s,
        std::slice::from_ref(&bench),
        &o,
        dir.path(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.n, 6);
    assert_eq!(r.labeled, 5);
    assert!((r.label_accuracy.unwrap() - 4.0 / 6.0).abs() < 1e-12);
    assert_eq!(r.kept, 2);
    assert_eq!(r.kept_label_accuracy, Some(0.5));
    let bands: Vec<(usize, usize)> = r.bands.iter().map(|b| (b.n, b.correct)).collect();
    assert_eq!(bands, vec![(2, 1), (2, 1), (2, 2)]);
    assert_eq!(r.bands[1].band, "0.3-0.8");
    let mut hist = vec![0; 11];
    hist[0] = 1;
    hist[2] = 1;
    hist[3] = 1;
    hist[6] = 1;
    hist[10] = 2;
    assert_eq!(r.p_hat_hist, hist);
    // Sampled with the dataset stage's defaults.
    assert_eq!((o.m, o.temperature, o.top_k), (10, 1.0, Some(40)));
    let sa = (1.0 + 0.4 + 0.3 + 0.0 + 0.2 + 0.8) / 6.0;
    assert!((r.sample_accuracy.unwrap() - sa).abs() < 1e-12);
    let on_disk: eval::AuditReport =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("audit.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, r);

    // Resuming a finished audit generates nothing and gives the same report.
    let mut s2 = Scripted::new(&[]);
    let r2 = run_audit(&mut s2, &[bench], &o, dir.path(), &mut |_| {}).unwrap();
    assert_eq!(s2.prompts_seen, 0);
    assert_eq!(r2, r);
}

#[test]
fn free_text_extraction_is_an_option() {
    let bench = || {
        Benchmark::from_jsonl_str(
            "toy",
            "{\"id\":\"a\",\"question\":\"qa\",\"answer\":\"5\"}\n{\"id\":\"b\",\"question\":\"qb\",\"answer\":\"1/2\"}\n{\"id\":\"c\",\"question\":\"qc\",\"answer\":\"9\"}\n",
        )
        .unwrap()
    };
    let script = || {
        Scripted::new(&[
            ("qa", vec!["5 + 1 = 6? No. So the answer is 5 apples."]),
            ("qb", vec!["Halving gives $x = \\frac{1}{2}$."]),
            (
                "qc",
                vec!["Final Answer: The final answer is $8$. I hope it is correct."],
            ),
        ])
    };
    let greedy = EvalOptions {
        samples: 0,
        ..opts()
    };
    // Default (boxed, as the training reward): no box, no answer.
    let dir = tempfile::tempdir().unwrap();
    let r = run_eval(&mut script(), &[bench()], &greedy, dir.path(), &mut |_| {}).unwrap();
    assert_eq!(r.benchmarks[0].pass_at_1, Some(0.0));
    assert_eq!(r.benchmarks[0].no_answer_frac, Some(1.0));
    // Free text: 5 and 1/2 are read and right, 8 is read and wrong.
    let free = EvalOptions {
        extract: ExtractMode::Free,
        ..greedy
    };
    let dir = tempfile::tempdir().unwrap();
    let r = run_eval(&mut script(), &[bench()], &free, dir.path(), &mut |_| {}).unwrap();
    let p = r.benchmarks[0].pass_at_1.unwrap();
    assert!((p - 2.0 / 3.0).abs() < 1e-9, "pass@1 {p}");
    assert_eq!(r.benchmarks[0].no_answer_frac, Some(0.0));
}
