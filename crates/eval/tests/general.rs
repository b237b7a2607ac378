//! General-domain evaluation: the embedded MMLU-Pro and BBEH sets, stratified subsets, the
//! reference's prompts, and `run_eval`'s per-category results with a scripted generator.

use std::collections::{BTreeMap, HashMap, HashSet};

use eval::{run_eval, Benchmark, Error, EvalOptions, GenParams, Generator, Kind};

#[test]
fn embedded_sets_load_with_their_categories() {
    let m = Benchmark::load("mmlu_pro").unwrap();
    assert_eq!(
        (m.name.as_str(), m.kind, m.items.len()),
        ("mmlu_pro", Kind::MmluPro, 12032)
    );
    assert_eq!(
        m.categories(),
        eval::MMLU_PRO_CATEGORIES.map(String::from).to_vec()
    );
    assert!(m
        .items
        .iter()
        .all(|it| it.answer.len() == 1 && !it.options.is_empty()));
    assert_eq!(m.items[0].answer, "I");
    assert_eq!(m.items[0].id, "70");
    let b = Benchmark::load("BBEH").unwrap();
    assert_eq!((b.kind, b.items.len()), (Kind::Bbeh, 4520));
    let cats = b.categories();
    assert_eq!(cats.len(), 23);
    assert!(
        cats.windows(2).all(|w| w[0] < w[1]),
        "sorted, as eval_bbeh.py sorts tasks"
    );
    assert_eq!(b.items[0].id, "bbeh_boardgame_qa/0");
    assert_eq!(b.items[0].answer, "disproved");
    // Both load inside a list with math sets.
    let l = Benchmark::load_list("gsm8k, mmlu-pro ,bbeh").unwrap();
    assert_eq!(
        l.iter().map(|b| b.kind).collect::<Vec<_>>(),
        [Kind::Math, Kind::MmluPro, Kind::Bbeh]
    );
    // SuperGPQA has no embedded data: the error says how to give it.
    let e = Benchmark::load("supergpqa").unwrap_err().to_string();
    assert!(e.contains("supergpqa=PATH"), "{e}");
}

fn count_by_category(items: &[eval::Item]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for it in items {
        *m.entry(it.category.clone().unwrap()).or_insert(0) += 1;
    }
    m
}

#[test]
fn limit_is_a_seeded_stratified_subset() {
    let m = Benchmark::load("mmlu_pro").unwrap();
    let a = m.select(Some(50), None, 0);
    assert_eq!(a.len(), 50);
    let by = count_by_category(&a);
    assert_eq!(by.len(), 14, "every category covered: {by:?}");
    // Proportional to the category sizes: math (1351) gets more than history (381).
    assert!(by["math"] > by["history"], "{by:?}");
    assert_eq!(a, m.select(Some(50), None, 0), "same seed, same subset");
    assert_ne!(
        a,
        m.select(Some(50), None, 1),
        "another seed, another subset"
    );
    // In file order, without duplicates.
    let pos: HashMap<&str, usize> = m
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.as_str(), i))
        .collect();
    let idx: Vec<usize> = a.iter().map(|it| pos[it.id.as_str()]).collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]));

    let b = Benchmark::load("bbeh").unwrap();
    let s = b.select(Some(50), None, 7);
    let by = count_by_category(&s);
    assert_eq!((s.len(), by.len()), (50, 23));
    assert!(by.values().all(|&n| (2..=3).contains(&n)), "{by:?}");
    // Per-category limit, alone and with a total limit.
    let s = b.select(None, Some(4), 7);
    assert_eq!(s.len(), 23 * 4);
    assert!(count_by_category(&s).values().all(|&n| n == 4));
    let s = b.select(Some(30), Some(1), 7);
    assert_eq!(s.len(), 23);
    // Fewer than the categories: one item from each of `limit` categories.
    let s = b.select(Some(5), None, 7);
    assert_eq!((s.len(), count_by_category(&s).len()), (5, 5));
    // No limit: everything.
    assert_eq!(b.select(None, None, 3).len(), 4520);
    // Math keeps "the first N".
    let g = Benchmark::load("gsm8k").unwrap();
    assert_eq!(g.select(Some(5), Some(3), 9), g.items[..3].to_vec());
}

/// Answers from a script keyed by the exact prompt; records prompts.
struct Scripted {
    template: bool,
    script: HashMap<String, String>,
    seen: Vec<String>,
}

impl Generator for Scripted {
    fn generate(
        &mut self,
        prompts: &[String],
        n: usize,
        p: &GenParams,
    ) -> eval::Result<Vec<Vec<String>>> {
        assert_eq!((n, p.temperature), (1, 0.0), "general sets are greedy only");
        prompts
            .iter()
            .map(|q| {
                self.seen.push(q.clone());
                self.script
                    .get(q)
                    .map(|r| vec![r.clone()])
                    .ok_or_else(|| Error::Generation(format!("unscripted prompt {q:?}")))
            })
            .collect()
    }
    fn format_user_prompt(&self, user: &str) -> eval::Result<Option<String>> {
        Ok(self.template.then(|| format!("<user>{user}</user>")))
    }
}

const MC: &str = r#"{"question_id": 1, "question": "Q1?", "options": ["x", "y", "z"], "answer": "B", "category": "law"}
{"question_id": 2, "question": "Q2?", "options": ["x", "y"], "answer": "A", "category": "law"}
{"question_id": 3, "question": "Q3?", "options": ["p", "q", "r", "s"], "answer": "D", "category": "math"}
{"question_id": 4, "question": "Q4?", "options": ["p", "q"], "answer": "B", "category": "math"}
"#;

const BB: &str = r#"{"task": "t_a", "index": 0, "input": "Is it so?", "target": "Yes"}
{"task": "t_a", "index": 1, "input": "Which?", "target": "(B)"}
{"task": "t_b", "index": 0, "input": "How many?", "target": "3"}
"#;

fn mc_prompt(q: &str, opts: &[&str], template: bool) -> String {
    let mut o = String::from("Options are:\n");
    for (l, t) in ["A", "B", "C", "D"].iter().zip(opts) {
        o.push_str(&format!("({l}): {t}\n"));
    }
    let query = format!("{q}\n{o}\n");
    if template {
        format!("<user>{query}\nPlease reason step by step, and put your final answer option within \\boxed{{}}. Only put the option letter in the box, e.g. \\boxed{{A}}. There is only one correct answer.</user>")
    } else {
        format!("user: {query}\nPlease reason step by step, and put your final answer option within \\boxed{{}}. Only put the letter in the box, e.g. \\boxed{{A}}. There is only one correct answer.")
    }
}

fn bb_prompt(q: &str, template: bool) -> String {
    if template {
        format!("<user>{q}\n\nPlease reason step by step, and put your final answer option within \\boxed{{}}.</user>")
    } else {
        format!("user: {q}\n\nPlease reason step by step, and put your final answer option within \\boxed{{}}. Only put the letter in the box, e.g. \\boxed{{A}}. There is only one correct answer.")
    }
}

fn scripted(template: bool) -> Scripted {
    let mut script = HashMap::new();
    script.insert(
        mc_prompt("Q1?", &["x", "y", "z"], template),
        r"So \boxed{B}.".to_string(),
    ); // ✓
    script.insert(
        mc_prompt("Q2?", &["x", "y"], template),
        "Final Answer: B\n".to_string(),
    ); // ✗
    script.insert(
        mc_prompt("Q3?", &["p", "q", "r", "s"], template),
        "I give up.".to_string(),
    ); // no letter
    script.insert(
        mc_prompt("Q4?", &["p", "q"], template),
        r"\boxed{(B) q}".to_string(),
    ); // ✓
    script.insert(
        bb_prompt("Is it so?", template),
        r"\boxed{yes.}".to_string(),
    ); // ✓
    script.insert(bb_prompt("Which?", template), r"\boxed{b}".to_string()); // ✓ (b vs (b))
    script.insert(bb_prompt("How many?", template), "It is 4".to_string()); // no answer
    Scripted {
        template,
        script,
        seen: Vec::new(),
    }
}

fn benches() -> Vec<Benchmark> {
    vec![
        Benchmark::from_general_str(Kind::MmluPro, "mc", MC).unwrap(),
        Benchmark::from_general_str(Kind::Bbeh, "bb", BB).unwrap(),
    ]
}

#[test]
fn run_eval_grades_with_the_reference_prompts_and_rules() {
    for template in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut gen = scripted(template);
        let opts = EvalOptions {
            model: "scripted".into(),
            guess: false,
            batch_size: 2,
            ..Default::default()
        };
        let r = run_eval(&mut gen, &benches(), &opts, dir.path(), &mut |_| {}).unwrap();
        assert_eq!(
            gen.seen.len(),
            7,
            "every prompt matched the reference's format"
        );
        let mc = &r.benchmarks[0];
        assert_eq!(
            (mc.name.as_str(), mc.kind, mc.n),
            ("mmlu_pro", Kind::MmluPro, 4)
        );
        assert_eq!(mc.pass_at_1, Some(0.5));
        assert_eq!(mc.no_answer_frac, Some(0.25));
        assert_eq!(mc.guessed_frac, Some(0.0));
        let cats: Vec<(&str, usize, usize, f64)> = mc
            .per_category
            .iter()
            .map(|c| (c.name.as_str(), c.n, c.correct, c.accuracy))
            .collect();
        // MMLU-Pro's reporting order: math before law.
        assert_eq!(cats, [("math", 2, 1, 0.5), ("law", 2, 1, 0.5)]);
        let bb = &r.benchmarks[1];
        assert_eq!(bb.pass_at_1, Some(2.0 / 3.0));
        assert_eq!(bb.no_answer_frac, Some(1.0 / 3.0));
        assert_eq!(bb.guessed_frac, None);
        assert_eq!(
            bb.per_category
                .iter()
                .map(|c| (c.name.as_str(), c.correct))
                .collect::<Vec<_>>(),
            [("t_a", 2), ("t_b", 0)]
        );
        assert_eq!(bb.macro_accuracy, Some(0.5));
        assert_eq!(r.average.pass_at_1, None, "no math benchmark");
        assert!((r.general_average.unwrap() - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        let written: eval::EvalResults = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(written, r);
        let rows: Vec<serde_json::Value> =
            std::fs::read_to_string(dir.path().join("responses.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let q3 = rows.iter().find(|r| r["id"] == "3").unwrap();
        assert_eq!(
            (q3["category"].as_str(), q3["answers"][0].is_null()),
            (Some("math"), true)
        );
        let table = eval::format_table(&r);
        assert!(
            table.contains("mmlu_pro category") && table.contains("t_b") && table.contains("66.7"),
            "{table}"
        );
    }
}

#[test]
fn guessing_is_seeded_counted_and_switchable() {
    // 40 questions nobody answers: with guessing about a tenth are right, each guess counted.
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!(
            "{{\"question_id\": {i}, \"question\": \"q{i}\", \"options\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\"], \"answer\": \"C\", \"category\": \"other\"}}\n"
        ));
    }
    let b = Benchmark::from_general_str(Kind::MmluPro, "mc", &text).unwrap();
    struct Empty;
    impl Generator for Empty {
        fn generate(
            &mut self,
            p: &[String],
            _: usize,
            _: &GenParams,
        ) -> eval::Result<Vec<Vec<String>>> {
            Ok(p.iter().map(|_| vec!["no idea".to_string()]).collect())
        }
    }
    let run = |guess: bool, seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let opts = EvalOptions {
            guess,
            seed,
            ..Default::default()
        };
        run_eval(
            &mut Empty,
            std::slice::from_ref(&b),
            &opts,
            dir.path(),
            &mut |_| {},
        )
        .unwrap()
        .benchmarks[0]
            .clone()
    };
    let on = run(true, 5);
    assert_eq!((on.guessed_frac, on.no_answer_frac), (Some(1.0), Some(1.0)));
    assert!(
        on.pass_at_1.unwrap() > 0.0 && on.pass_at_1.unwrap() < 0.4,
        "{:?}",
        on.pass_at_1
    );
    assert_eq!(run(true, 5), on, "seeded");
    let off = run(false, 5);
    assert_eq!((off.pass_at_1, off.guessed_frac), (Some(0.0), Some(0.0)));
}

#[test]
fn supergpqa_and_other_files_load_by_name_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("super.jsonl");
    std::fs::write(
        &p,
        "{\"uuid\": \"u1\", \"question\": \"Q\", \"options\": [\"a\", \"b\"], \"answer\": \"b\", \"answer_letter\": \"B\", \"discipline\": \"Law\"}\n",
    )
    .unwrap();
    let b = Benchmark::load(&format!("supergpqa={}", p.display())).unwrap();
    assert_eq!((b.name.as_str(), b.kind), ("supergpqa", Kind::SuperGpqa));
    assert_eq!(
        (b.items[0].id.as_str(), b.items[0].answer.as_str()),
        ("u1", "B")
    );
    assert_eq!(b.items[0].category.as_deref(), Some("Law"));
    // A letter outside the options is an error naming the line.
    std::fs::write(
        &p,
        "{\"question\": \"Q\", \"options\": [\"a\"], \"answer\": \"C\"}\n",
    )
    .unwrap();
    let e = Benchmark::load(&format!("mmlu_pro={}", p.display()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("super.jsonl:1") && e.contains("answer `C`"),
        "{e}"
    );
    let seen: HashSet<Kind> = [Kind::MmluPro, Kind::SuperGpqa, Kind::Bbeh]
        .into_iter()
        .collect();
    assert!(seen
        .iter()
        .all(|k| Kind::general_from_name(k.name()) == Some(*k)));
}

#[test]
fn report_shows_general_scores_per_iteration_beside_math() {
    let dir = tempfile::tempdir().unwrap();
    let results = |mmlu: f64, bbeh: f64, math: f64| {
        serde_json::json!({
            "model": "m", "options": EvalOptions::default(),
            "benchmarks": [
                {"name": "gsm8k", "n": 4, "pass@1": math, "mean@k": null, "maj@k": null, "k": 0,
                 "no_answer_frac": 0.0, "response_chars_mean": 10.0},
                {"name": "mmlu_pro", "kind": "mmlu_pro", "n": 4, "pass@1": mmlu, "mean@k": null,
                 "maj@k": null, "k": 0, "no_answer_frac": 0.25, "response_chars_mean": 10.0,
                 "guessed_frac": 0.25, "per_category": [
                    {"name": "math", "n": 2, "correct": 1, "accuracy": mmlu, "no_answer": 0},
                    {"name": "law", "n": 2, "correct": 1, "accuracy": 0.125, "no_answer": 1}]},
                {"name": "bbeh", "kind": "bbeh", "n": 3, "pass@1": bbeh, "mean@k": null,
                 "maj@k": null, "k": 0, "no_answer_frac": 0.0, "response_chars_mean": 10.0}
            ],
            "average": {"pass@1": math, "mean@k": null, "maj@k": null},
            "general_average": (mmlu + bbeh) / 2.0
        })
    };
    for (sub, r) in [
        ("base_eval", results(0.25, 0.5, 0.75)),
        ("iter_1/eval", results(0.375, 0.625, 0.875)),
    ] {
        let d = dir.path().join(sub);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.json"), r.to_string()).unwrap();
    }
    let html = eval::report::render(dir.path()).unwrap();
    let section = |id: &str| {
        let start = html
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("section {id}"));
        let end = start + html[start..].find("</section>").unwrap();
        html[start..end].to_string()
    };
    let math = section("benchmarks");
    let general = section("general");
    assert!(
        math.contains("gsm8k") && !math.contains("mmlu_pro"),
        "{math}"
    );
    assert!(math.contains("75.0%") && math.contains("87.5%"));
    assert!(general.contains("general-accuracy") && general.contains("data-table=\"general\""));
    for v in ["25.0%", "37.5%", "50.0%", "62.5%", "12.5%"] {
        assert!(general.contains(v), "{v} in {general}");
    }
    // The general average: (0.25 + 0.5) / 2 = 37.5%, then (0.375 + 0.625) / 2 = 50.0%.
    let avg_row = general.split("<tr class=\"avg\">").nth(1).unwrap();
    assert!(
        avg_row.starts_with("<td>average</td><td>37.5%</td><td>50.0%</td>"),
        "{avg_row}"
    );
    assert!(
        general.contains("data-table=\"categories-mmlu_pro\"") && general.contains("<td>law</td>")
    );
    assert!(!general.contains("gsm8k"));
    assert!(html.contains("href=\"#general\""));
}
