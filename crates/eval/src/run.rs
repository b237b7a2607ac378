//! `run_eval`: benchmark evaluation with greedy pass@1 and sampled mean@k / maj@k.
//!
//! Output folder:
//! - `options.json`: the generation options; a resumed run must use the same ones.
//! - `responses.jsonl`: append-only, one row per (benchmark, problem, mode):
//!   `{"bench", "id", "mode": "greedy"|"sample", "question", "gold", "responses": [..],
//!   "answers": [str|null], "correct": [bool]}`. A killed eval resumes by skipping the
//!   (bench, id, mode) triples already present.
//! - `results.json`: [`EvalResults`], written atomically at the end. Verdicts are recomputed
//!   from the stored responses, so every row is graded by the current grader and answer rule
//!   ([`EvalOptions::answer`]).
//! - `judge.jsonl` (only with a judge, [`run_eval_judged`]): append-only, one row per greedy
//!   response graded wrong: `{"bench", "id", "judge", "gold", "response", "reply", "yes"}`.
//!   A row is reused when its judge, gold and response are the current ones.
//!
//! General-domain benchmarks (MMLU-Pro, SuperGPQA, BBEH; [`Kind`]) are evaluated as R-Zero's
//! scripts do: their own prompt, greedy only, graded by `grade::mmlu_pro` / `grade::bbeh`,
//! micro-averaged accuracy (`pass@1`) plus per-category accuracy; their journal rows also
//! carry `category`. `limit` and `per_category` pick a seeded, stratified subset
//! ([`Benchmark::select`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::bench::{seed_of, Benchmark, Item, Kind};
use crate::error::{Error, Result};
use crate::generate::{prompt_for, GenParams, Generator};
use crate::judge::{judge_prompt, judge_says_yes, Judge};
use crate::{grading, io, metrics};

pub use crate::results::{Averages, BenchResult, CategoryResult, EvalOptions, EvalResults};
pub use crate::table::format_table;

/// Progress report passed to the callback after every batch.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Benchmark being worked on.
    pub bench: String,
    /// `greedy`, `sample` or `audit`.
    pub mode: &'static str,
    /// Work units (problem × mode) finished so far, including resumed ones.
    pub done: usize,
    /// Work units in total.
    pub total: usize,
}

type Key = (String, String, String);

fn key_of(row: &Value) -> Option<Key> {
    Some((
        row.get("bench")?.as_str()?.to_string(),
        row.get("id")?.as_str()?.to_string(),
        row.get("mode")?.as_str()?.to_string(),
    ))
}

/// Generates and journals the responses of `items` that are not done yet.
/// `make_row` turns (item, its n responses) into a journal row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generate_missing(
    gen: &mut dyn Generator,
    bench: &str,
    kind: Kind,
    mode: &'static str,
    items: &[Item],
    n: usize,
    params: &GenParams,
    batch_size: usize,
    done_keys: &HashSet<Key>,
    journal: &mut io::Journal,
    counter: &mut usize,
    total: usize,
    progress: &mut dyn FnMut(&Progress),
    make_row: &dyn Fn(&Item, &[String]) -> Value,
) -> Result<()> {
    let todo: Vec<&Item> = items
        .iter()
        .filter(|it| !done_keys.contains(&(bench.to_string(), it.id.clone(), mode.to_string())))
        .collect();
    *counter += items.len() - todo.len();
    progress(&Progress {
        bench: bench.to_string(),
        mode,
        done: *counter,
        total,
    });
    for (ci, chunk) in todo.chunks(batch_size.max(1)).enumerate() {
        let prompts = chunk
            .iter()
            .map(|it| prompt_for(&*gen, kind, it))
            .collect::<Result<Vec<_>>>()?;
        let mut p = params.clone();
        p.seed = params.seed.wrapping_add(ci as u64 * 1_000_003);
        let outs = gen.generate(&prompts, n, &p)?;
        if outs.len() != chunk.len() || outs.iter().any(|o| o.len() != n) {
            return Err(Error::Generation(format!(
                "expected {} prompts × {n} completions, got {} prompts with {:?} completions",
                chunk.len(),
                outs.len(),
                outs.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        let rows: Vec<Value> = chunk
            .iter()
            .zip(&outs)
            .map(|(it, o)| make_row(it, o))
            .collect();
        journal.append(&rows)?;
        *counter += chunk.len();
        tracing::debug!(bench, mode, done = *counter, total, "batch journaled");
        progress(&Progress {
            bench: bench.to_string(),
            mode,
            done: *counter,
            total,
        });
    }
    Ok(())
}

fn responses_of(row: &Value) -> Vec<String> {
    row.get("responses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| r.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Evaluates `gen` on `benches`, resuming from `out_dir/responses.jsonl` when present, and
/// writes `out_dir/results.json`.
pub fn run_eval(
    gen: &mut dyn Generator,
    benches: &[Benchmark],
    opts: &EvalOptions,
    out_dir: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<EvalResults> {
    run_eval_judged(gen, None, benches, opts, out_dir, progress)
}

/// [`run_eval`], and with a `judge`, the reference's re-check of the greedy answers graded
/// wrong ([`crate::judge`]): `pass@1+judge` beside `pass@1`, journaled in `judge.jsonl`.
pub fn run_eval_judged(
    gen: &mut dyn Generator,
    mut judge: Option<&mut dyn Judge>,
    benches: &[Benchmark],
    opts: &EvalOptions,
    out_dir: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<EvalResults> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    io::check_options(&out_dir.join("options.json"), &opts.identity())?;
    let journal_path = out_dir.join("responses.jsonl");
    let selected: Vec<Vec<Item>> = benches
        .iter()
        .map(|b| b.select(opts.limit, opts.per_category, opts.seed))
        .collect();
    generate_all(gen, benches, &selected, opts, &journal_path, progress)?;

    let rows = io::read_journal(&journal_path)?;
    let mut by_key: HashMap<Key, &Value> = HashMap::new();
    for r in &rows {
        if let Some(k) = key_of(r) {
            by_key.entry(k).or_insert(r);
        }
    }
    let judge_path = out_dir.join("judge.jsonl");
    let mut judged: HashMap<(String, String), Value> = HashMap::new();
    let mut judge_journal = None;
    if let Some(j) = judge.as_deref() {
        let name = j.name();
        for r in io::read_journal(&judge_path)? {
            let k = (
                r["bench"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or_default().to_string(),
            );
            if r["judge"].as_str() == Some(name.as_str()) {
                judged.insert(k, r);
            }
        }
        judge_journal = Some(io::Journal::open(&judge_path)?);
    }
    let mut results = Vec::new();
    for (b, items) in benches.iter().zip(&selected) {
        let get = |it: &Item, mode: &str| {
            by_key
                .get(&(b.name.clone(), it.id.clone(), mode.to_string()))
                .copied()
        };
        if b.kind.is_general() {
            results.push(general_result(b, items, opts, &|it| get(it, "greedy")));
            continue;
        }
        let judging = match (judge.as_deref_mut(), judge_journal.as_mut()) {
            (Some(j), Some(journal)) => Some((j, journal)),
            _ => None,
        };
        results.push(math_result(b, items, opts, &get, judging, &mut judged)?);
    }
    let (average, general_average) = averages(&results);
    let out = EvalResults {
        model: opts.model.clone(),
        options: opts.clone(),
        benchmarks: results,
        average,
        judge: judge.as_deref().map(|j| j.name()),
        general_average,
    };
    io::write_json_atomic(&out_dir.join("results.json"), &out)?;
    Ok(out)
}

/// The generation modes of `b`: greedy, and sampled for a math benchmark when
/// `opts.samples > 0`.
fn modes_of(b: &Benchmark, opts: &EvalOptions) -> Vec<&'static str> {
    if opts.samples > 0 && !b.kind.is_general() {
        vec!["greedy", "sample"]
    } else {
        vec!["greedy"]
    }
}

/// The answer extraction of `opts` (mode and answer rule).
fn extractor(opts: &EvalOptions) -> impl Fn(&str) -> Option<String> {
    let (rule, mode) = (opts.answer, opts.extract);
    move |r: &str| grading::extract_with(r, mode, rule)
}

/// Generates, grades and journals in `journal_path` every (item, mode) of `selected` that
/// the journal does not hold yet.
fn generate_all(
    gen: &mut dyn Generator,
    benches: &[Benchmark],
    selected: &[Vec<Item>],
    opts: &EvalOptions,
    journal_path: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<()> {
    let old_rows = io::read_journal(journal_path)?;
    let done: HashSet<Key> = old_rows.iter().filter_map(key_of).collect();
    if !done.is_empty() {
        tracing::info!(rows = done.len(), path = %journal_path.display(), "resuming eval");
    }
    let mut journal = io::Journal::open(journal_path)?;
    let total: usize = benches
        .iter()
        .zip(selected)
        .map(|(b, items)| items.len() * modes_of(b, opts).len())
        .sum();
    let mut counter = 0;
    let extract = extractor(opts);
    let extract = &extract;
    let guess_seed = |bench: &str, id: &str| opts.guess.then(|| seed_of(opts.seed, &[bench, id]));
    let make_row = |mode: &'static str, bench: String, kind: Kind| {
        move |it: &Item, responses: &[String]| -> Value {
            if kind.is_general() {
                let v: Vec<grading::GeneralVerdict> = responses
                    .iter()
                    .map(|r| {
                        grading::grade_general(kind, r, &it.answer, guess_seed(&bench, &it.id))
                    })
                    .collect();
                let answers: Vec<Option<String>> = v.iter().map(|x| x.extracted.clone()).collect();
                let guesses: Vec<Option<String>> = v.iter().map(|x| x.guess.clone()).collect();
                let correct: Vec<bool> = v.iter().map(|x| x.correct).collect();
                return json!({"bench": bench, "id": it.id, "mode": mode, "category": it.category,
                       "question": it.question, "gold": it.answer, "responses": responses,
                       "answers": answers, "guesses": guesses, "correct": correct});
            }
            let answers: Vec<Option<String>> = responses.iter().map(|r| extract(r)).collect();
            let correct: Vec<bool> = answers
                .iter()
                .map(|a| {
                    a.as_deref()
                        .is_some_and(|a| grading::equivalent(a, &it.answer))
                })
                .collect();
            json!({"bench": bench, "id": it.id, "mode": mode, "question": it.question, "gold": it.answer,
                   "responses": responses, "answers": answers, "correct": correct})
        }
    };
    for (b, items) in benches.iter().zip(selected) {
        for mode in modes_of(b, opts) {
            let (n, params) = match mode {
                "greedy" => (
                    1,
                    GenParams {
                        seed: opts.seed,
                        ..GenParams::greedy(opts.max_new_tokens)
                    },
                ),
                _ => (
                    opts.samples,
                    GenParams {
                        temperature: opts.temperature,
                        top_p: opts.top_p,
                        top_k: opts.top_k,
                        max_new_tokens: opts.max_new_tokens,
                        seed: opts.seed,
                    },
                ),
            };
            let row = make_row(mode, b.name.clone(), b.kind);
            generate_missing(
                gen,
                &b.name,
                b.kind,
                mode,
                items,
                n,
                &params,
                opts.batch_size,
                &done,
                &mut journal,
                &mut counter,
                total,
                progress,
                &row,
            )?;
        }
    }
    Ok(())
}

/// Results of a math benchmark from its journaled rows (`row_of(item, mode)`), with the
/// judge's re-check of the wrong greedy answers when `judging` is given.
fn math_result<'a, 'j>(
    b: &Benchmark,
    items: &[Item],
    opts: &EvalOptions,
    row_of: &dyn Fn(&Item, &str) -> Option<&'a Value>,
    judging: Option<(&mut (dyn Judge + 'j), &mut io::Journal)>,
    judged: &mut HashMap<(String, String), Value>,
) -> Result<BenchResult> {
    let extract = extractor(opts);
    let mut greedy = Vec::new();
    // (item, response) of the greedy answers graded wrong, for the judge.
    let mut wrong: Vec<(&Item, String)> = Vec::new();
    let mut no_answer = 0usize;
    let mut chars = 0usize;
    let mut sample_verdicts = Vec::new();
    let mut sample_answers = Vec::new();
    let mut refs = Vec::new();
    for it in items {
        if let Some(row) = row_of(it, "greedy") {
            let resp = responses_of(row);
            let r = resp.first().map(String::as_str).unwrap_or("");
            let a = extract(r);
            no_answer += a.is_none() as usize;
            chars += r.chars().count();
            let ok = a.is_some_and(|a| grading::equivalent(&a, &it.answer));
            if !ok {
                wrong.push((it, r.to_string()));
            }
            greedy.push(ok);
        }
        if opts.samples > 0 {
            if let Some(row) = row_of(it, "sample") {
                let answers: Vec<Option<String>> =
                    responses_of(row).iter().map(|r| extract(r)).collect();
                sample_verdicts.push(
                    answers
                        .iter()
                        .map(|a| {
                            a.as_deref()
                                .is_some_and(|a| grading::equivalent(a, &it.answer))
                        })
                        .collect(),
                );
                sample_answers.push(answers);
                refs.push(it.answer.clone());
            }
        }
    }
    let mut judge_stats = None;
    if let Some((j, journal)) = judging {
        let flipped = recheck(j, &b.name, &wrong, opts.batch_size, judged, journal)?;
        judge_stats = Some((wrong.len(), flipped));
    }
    let ng = greedy.len();
    let frac = |x: usize| {
        if ng == 0 {
            None
        } else {
            Some(x as f64 / ng as f64)
        }
    };
    Ok(BenchResult {
        name: b.name.clone(),
        n: items.len(),
        pass_at_1: (ng > 0).then(|| metrics::pass_at_1(&greedy)),
        mean_at_k: (opts.samples > 0 && !sample_verdicts.is_empty())
            .then(|| metrics::mean_at_k(&sample_verdicts)),
        maj_at_k: (opts.samples > 0 && !sample_answers.is_empty())
            .then(|| metrics::maj_at_k(&sample_answers, &refs)),
        k: opts.samples,
        pass_at_1_judged: judge_stats
            .filter(|_| ng > 0)
            .map(|(_, f)| (greedy.iter().filter(|&&g| g).count() + f) as f64 / ng as f64),
        judge_rechecked: judge_stats.map(|(n, _)| n),
        judge_flipped: judge_stats.map(|(_, f)| f),
        no_answer_frac: frac(no_answer),
        response_chars_mean: frac(chars),
        kind: Kind::Math,
        guessed_frac: None,
        macro_accuracy: None,
        per_category: Vec::new(),
    })
}

/// The math average (each figure over the math benchmarks) and the general-domain average
/// of pass@1.
fn averages(results: &[BenchResult]) -> (Averages, Option<f64>) {
    let math = |f: fn(&BenchResult) -> Option<f64>| {
        metrics::average(results.iter().filter(|r| !r.kind.is_general()).map(f))
    };
    let average = Averages {
        pass_at_1: math(|r| r.pass_at_1),
        mean_at_k: math(|r| r.mean_at_k),
        maj_at_k: math(|r| r.maj_at_k),
        pass_at_1_judged: math(|r| r.pass_at_1_judged),
    };
    let general_average = metrics::average(
        results
            .iter()
            .filter(|r| r.kind.is_general())
            .map(|r| r.pass_at_1),
    );
    (average, general_average)
}

/// Asks `judge` about the `wrong` greedy answers of `bench` that `judged` (the journal's rows
/// for this judge) does not cover yet, journals the replies, and returns how many of the
/// `wrong` answers the judge calls correct.
fn recheck(
    judge: &mut dyn Judge,
    bench: &str,
    wrong: &[(&Item, String)],
    batch_size: usize,
    judged: &mut HashMap<(String, String), Value>,
    journal: &mut io::Journal,
) -> Result<usize> {
    let name = judge.name();
    let key = |it: &Item| (bench.to_string(), it.id.clone());
    let current = |row: &Value, it: &Item, resp: &str| {
        row["gold"].as_str() == Some(it.answer.as_str()) && row["response"].as_str() == Some(resp)
    };
    let todo: Vec<&(&Item, String)> = wrong
        .iter()
        .filter(|(it, r)| !judged.get(&key(it)).is_some_and(|row| current(row, it, r)))
        .collect();
    if !todo.is_empty() {
        tracing::info!(bench, n = todo.len(), judge = %name, "re-checking wrong answers");
    }
    for chunk in todo.chunks(batch_size.max(1)) {
        let prompts: Vec<_> = chunk
            .iter()
            .map(|(it, r)| judge_prompt(&it.answer, r))
            .collect();
        let replies = judge.ask(&prompts)?;
        if replies.len() != prompts.len() {
            return Err(Error::Judge(format!(
                "{name}: asked {} prompts, got {} replies",
                prompts.len(),
                replies.len()
            )));
        }
        let rows: Vec<Value> = chunk
            .iter()
            .zip(&replies)
            .map(|((it, r), reply)| {
                json!({"bench": bench, "id": it.id, "judge": name, "gold": it.answer,
                       "response": r, "reply": reply, "yes": judge_says_yes(reply)})
            })
            .collect();
        journal.append(&rows)?;
        for ((it, _), row) in chunk.iter().zip(rows) {
            judged.insert(key(it), row);
        }
    }
    Ok(wrong
        .iter()
        .filter(|(it, r)| {
            judged.get(&key(it)).is_some_and(|row| {
                current(row, it, r) && row["reply"].as_str().is_some_and(judge_says_yes)
            })
        })
        .count())
}

/// Greedy results of a general-domain benchmark, graded again from the journaled responses:
/// micro-averaged accuracy (the reference's figure), per-category accuracy, the
/// extraction-failure rate and, for multiple choice, the share of guessed letters.
fn general_result<'a>(
    b: &Benchmark,
    items: &[Item],
    opts: &EvalOptions,
    row_of: &dyn Fn(&Item) -> Option<&'a Value>,
) -> BenchResult {
    let mut per: HashMap<String, CategoryResult> = HashMap::new();
    let (mut graded, mut correct, mut no_answer, mut guessed, mut chars) = (0, 0, 0, 0, 0);
    for it in items {
        let Some(row) = row_of(it) else { continue };
        let resp = responses_of(row);
        let r = resp.first().map(String::as_str).unwrap_or("");
        let seed = opts.guess.then(|| seed_of(opts.seed, &[&b.name, &it.id]));
        let v = grading::grade_general(b.kind, r, &it.answer, seed);
        let cat = it.category.clone().unwrap_or_default();
        let c = per.entry(cat.clone()).or_insert_with(|| CategoryResult {
            name: cat,
            n: 0,
            correct: 0,
            accuracy: 0.0,
            no_answer: 0,
        });
        c.n += 1;
        c.correct += v.correct as usize;
        c.no_answer += v.extracted.is_none() as usize;
        graded += 1;
        correct += v.correct as usize;
        no_answer += v.extracted.is_none() as usize;
        guessed += v.guess.is_some() as usize;
        chars += r.chars().count();
    }
    let per_category: Vec<CategoryResult> = b
        .categories()
        .into_iter()
        .filter_map(|c| per.remove(&c))
        .map(|mut c| {
            c.accuracy = c.correct as f64 / c.n.max(1) as f64;
            c
        })
        .collect();
    let frac = |x: usize| (graded > 0).then(|| x as f64 / graded as f64);
    BenchResult {
        name: b.name.clone(),
        n: items.len(),
        pass_at_1: frac(correct),
        mean_at_k: None,
        maj_at_k: None,
        k: 0,
        no_answer_frac: frac(no_answer),
        response_chars_mean: frac(chars),
        kind: b.kind,
        guessed_frac: (b.kind != Kind::Bbeh).then(|| frac(guessed)).flatten(),
        macro_accuracy: metrics::average(per_category.iter().map(|c| Some(c.accuracy))),
        per_category,
        pass_at_1_judged: None,
        judge_rechecked: None,
        judge_flipped: None,
    }
}
