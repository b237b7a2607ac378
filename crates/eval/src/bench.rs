//! Benchmarks: question/answer lists loaded from the embedded copies of the seven math
//! benchmarks and of the general-domain sets MMLU-Pro and BBEH (see
//! `data/benchmarks/README.md` for sources and licenses), or from any JSONL file whose lines
//! have `question` and `answer` (and optionally `id`).
//!
//! General-domain benchmarks carry a [`Kind`] that decides the prompt and the answer rule
//! (R-Zero's `evaluation/eval_mmlupro.py`, `eval_supergpqa.py`, `eval_bbeh.py`) and a
//! category per item. `NAME=PATH` loads a file in that benchmark's format
//! (`supergpqa=super.jsonl`, `mmlu_pro=my_copy.jsonl`, `bbeh=…`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// What a benchmark's answers are, hence its prompt and its grading rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Math with a final-answer string: the Solver prompt, `\boxed{}` and `grade::equivalent`.
    #[default]
    Math,
    /// MMLU-Pro: options `(A): …`, the option letter in `\boxed{}` (`grade::mmlu_pro`).
    MmluPro,
    /// SuperGPQA: MMLU-Pro's format and rule, the letter-only instruction.
    SuperGpqa,
    /// BIG-Bench Extra Hard: short string targets, BBEH's fuzzy match (`grade::bbeh`).
    Bbeh,
}

impl Kind {
    /// Whether this is a general-domain (non-math) benchmark.
    pub fn is_general(self) -> bool {
        self != Kind::Math
    }

    /// The canonical benchmark name of a general-domain kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Math => "math",
            Kind::MmluPro => "mmlu_pro",
            Kind::SuperGpqa => "supergpqa",
            Kind::Bbeh => "bbeh",
        }
    }

    /// A general-domain kind by benchmark name or alias (case-insensitive).
    pub fn general_from_name(name: &str) -> Option<Kind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "mmlu_pro" | "mmlu-pro" | "mmlupro" => Some(Kind::MmluPro),
            "supergpqa" | "super_gpqa" | "super-gpqa" => Some(Kind::SuperGpqa),
            "bbeh" | "bbeh-eval" | "bbeh_eval" => Some(Kind::Bbeh),
            _ => None,
        }
    }
}

/// MMLU-Pro's 14 categories in the order `eval_mmlupro.py` reports them.
pub const MMLU_PRO_CATEGORIES: [&str; 14] = [
    "computer science",
    "math",
    "chemistry",
    "engineering",
    "law",
    "biology",
    "health",
    "physics",
    "business",
    "philosophy",
    "economics",
    "other",
    "psychology",
    "history",
];

/// One benchmark problem with its known final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Unique within its benchmark (the file's `id`, or the 1-based line number).
    pub id: String,
    /// The problem statement.
    pub question: String,
    /// The final-answer string (numbers in the file are printed as JSON prints them); for
    /// multiple choice, the option letter.
    pub answer: String,
    /// The category (MMLU-Pro `category`, SuperGPQA `discipline`, BBEH `task`); `None` for
    /// math.
    pub category: Option<String>,
    /// The options of a multiple-choice question (empty otherwise).
    pub options: Vec<String>,
}

/// A named list of [`Item`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    /// Short name used in results (`gsm8k`, `math500`, `mmlu_pro`, or the file stem).
    pub name: String,
    /// Prompt and grading rule.
    pub kind: Kind,
    /// The problems, in file order.
    pub items: Vec<Item>,
}

/// The built-in math benchmarks: (canonical name, aliases, file contents).
pub const BUILTIN: &[(&str, &[&str], &str)] = &[
    (
        "math500",
        &["math", "math-500", "math_500"],
        include_str!("../../../data/benchmarks/math500.jsonl"),
    ),
    (
        "gsm8k",
        &["gsm8k_test"],
        include_str!("../../../data/benchmarks/gsm8k_test.jsonl"),
    ),
    (
        "amc23",
        &["amc"],
        include_str!("../../../data/benchmarks/amc23.jsonl"),
    ),
    (
        "minerva",
        &["minerva_math"],
        include_str!("../../../data/benchmarks/minerva_math.jsonl"),
    ),
    (
        "olympiadbench",
        &["olympiad", "olympiad_bench"],
        include_str!("../../../data/benchmarks/olympiadbench.jsonl"),
    ),
    (
        "aime2024",
        &["aime24", "aime_2024"],
        include_str!("../../../data/benchmarks/aime2024.jsonl"),
    ),
    (
        "aime2025",
        &["aime25", "aime_2025"],
        include_str!("../../../data/benchmarks/aime2025.jsonl"),
    ),
];

/// The built-in general-domain benchmarks, gzip-compressed JSONL as shipped in
/// `data/benchmarks/` (SuperGPQA is not shipped: load it with `supergpqa=PATH`).
pub const BUILTIN_GENERAL: &[(Kind, &[u8])] = &[
    (
        Kind::MmluPro,
        include_bytes!("../../../data/benchmarks/mmlu_pro.jsonl.gz"),
    ),
    (
        Kind::Bbeh,
        include_bytes!("../../../data/benchmarks/bbeh.jsonl.gz"),
    ),
];

pub(crate) fn builtin_names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _, _)| *n)
        .chain(["mmlu_pro", "bbeh", "supergpqa=PATH"])
        .collect::<Vec<_>>()
        .join(", ")
}

fn gunzip(origin: &str, bytes: &[u8]) -> Result<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .map_err(|e| Error::Parse {
            path: origin.to_string(),
            line: 0,
            msg: format!("cannot decompress: {e}"),
        })?;
    Ok(s)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&path.display().to_string(), &bytes)
    } else {
        String::from_utf8(bytes).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            line: 0,
            msg: format!("not UTF-8: {e}"),
        })
    }
}

/// SplitMix64: the seeded mixing used for subsets and guesses (stable across platforms).
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a string, mixed with `seed`: a per-item seed.
pub(crate) fn seed_of(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    mix(h ^ mix(seed))
}

impl Benchmark {
    /// Loads a built-in benchmark by name or alias (case-insensitive), `NAME=PATH` (a file
    /// in a general-domain benchmark's format), or a JSONL file by path. A path wins only
    /// when no built-in has that name.
    pub fn load(name_or_path: &str) -> Result<Benchmark> {
        let key = name_or_path.trim().to_ascii_lowercase();
        for (name, aliases, data) in BUILTIN {
            if key == *name || aliases.contains(&key.as_str()) {
                return Benchmark::from_jsonl_str(name, data);
            }
        }
        if let Some((name, path)) = name_or_path.split_once('=') {
            if let Some(kind) = Kind::general_from_name(name) {
                let path = Path::new(path.trim());
                let text = read_text(path)?;
                return Benchmark::from_general_str(kind, &path.display().to_string(), &text);
            }
        }
        if let Some(kind) = Kind::general_from_name(&key) {
            return match BUILTIN_GENERAL.iter().find(|(k, _)| *k == kind) {
                Some((_, gz)) => {
                    let text = gunzip(kind.name(), gz)?;
                    Benchmark::from_general_str(kind, kind.name(), &text)
                }
                None => Err(Error::Options(format!(
                    "`{}` has no built-in data: give its file as `{}=PATH` (or `--data PATH`)",
                    kind.name(),
                    kind.name()
                ))),
            };
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Benchmark::from_file(path);
        }
        Err(Error::UnknownBenchmark {
            name: name_or_path.to_string(),
            known: builtin_names(),
        })
    }

    /// Loads a comma-separated list (`math500,gsm8k,my.jsonl`), skipping empty entries.
    pub fn load_list(list: &str) -> Result<Vec<Benchmark>> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Benchmark::load)
            .collect()
    }

    /// Loads a JSONL file (`.jsonl.gz` is decompressed); the benchmark is named after the
    /// file stem.
    pub fn from_file(path: &Path) -> Result<Benchmark> {
        let text = read_text(path)?;
        let name = path
            .file_name()
            .map(|s| {
                let s = s.to_string_lossy();
                let s = s.strip_suffix(".gz").unwrap_or(&s);
                s.strip_suffix(".jsonl").unwrap_or(s).to_string()
            })
            .unwrap_or_else(|| "bench".into());
        let mut b = Benchmark::from_jsonl_str(&path.display().to_string(), &text)?;
        b.name = name;
        Ok(b)
    }

    /// Parses JSONL text. `origin` names the source in errors and becomes the name.
    pub fn from_jsonl_str(origin: &str, text: &str) -> Result<Benchmark> {
        let err = |line: usize, msg: String| Error::Parse {
            path: origin.to_string(),
            line,
            msg,
        };
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (n, obj) in objects(origin, text)? {
            let question = string_field(&obj, &["question"])
                .map_err(|m| err(n, m))?
                .ok_or_else(|| err(n, "missing field `question`".into()))?;
            let answer = match obj.get("answer") {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(Value::Number(x)) => x.to_string(),
                Some(_) => return Err(err(n, "field `answer` is not a string or a number".into())),
                None => return Err(err(n, "missing field `answer`".into())),
            };
            let id = id_field(&obj, &["id"])
                .map_err(|m| err(n, m))?
                .unwrap_or_else(|| n.to_string());
            if !seen.insert(id.clone()) {
                return Err(err(n, format!("duplicate id `{id}`")));
            }
            items.push(Item {
                id,
                question,
                answer,
                category: None,
                options: Vec::new(),
            });
        }
        Ok(Benchmark {
            name: origin.to_string(),
            kind: Kind::Math,
            items,
        })
    }

    /// Parses JSONL text in a general-domain benchmark's format; the benchmark is named
    /// after the kind.
    ///
    /// - MMLU-Pro / SuperGPQA: `question`, `options` (1 to 10 strings), the answer letter in
    ///   `answer_letter` (SuperGPQA's field, preferred) or `answer`, the category in
    ///   `category` or `discipline`, the id in `id`, `question_id` or `uuid`.
    /// - BBEH: `question` or `input`, `answer` or `target`, `task`, the id in `id` or
    ///   `task/index`.
    pub fn from_general_str(kind: Kind, origin: &str, text: &str) -> Result<Benchmark> {
        let err = |line: usize, msg: String| Error::Parse {
            path: origin.to_string(),
            line,
            msg,
        };
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (n, obj) in objects(origin, text)? {
            let e = |m: String| err(n, m);
            let item = match kind {
                Kind::Math => return Err(e("not a general-domain benchmark".into())),
                Kind::MmluPro | Kind::SuperGpqa => {
                    let question = string_field(&obj, &["question"])
                        .map_err(e)?
                        .ok_or_else(|| e("missing field `question`".into()))?;
                    let options: Vec<String> = match obj.get("options") {
                        Some(Value::Array(a)) => a
                            .iter()
                            .map(|o| match o {
                                Value::String(s) => Ok(s.clone()),
                                Value::Number(x) => Ok(x.to_string()),
                                _ => Err(e("an entry of `options` is not a string".into())),
                            })
                            .collect::<Result<_>>()?,
                        _ => return Err(e("missing field `options` (a list of strings)".into())),
                    };
                    if options.is_empty() || options.len() > 10 {
                        return Err(e(format!(
                            "`options` has {} entries; 1 to 10 allowed",
                            options.len()
                        )));
                    }
                    let answer = string_field(&obj, &["answer_letter", "answer"])
                        .map_err(e)?
                        .ok_or_else(|| e("missing field `answer` (the option letter)".into()))?;
                    let answer = answer.trim().to_string();
                    let ok = answer.len() == 1
                        && grade::mmlu_pro::LETTERS[..options.len()]
                            .iter()
                            .any(|l| answer.starts_with(*l));
                    if !ok {
                        return Err(e(format!(
                            "answer `{answer}` is not one of the option letters A..{}",
                            grade::mmlu_pro::LETTERS[options.len() - 1]
                        )));
                    }
                    let category = string_field(&obj, &["category", "discipline"]).map_err(e)?;
                    let id = id_field(&obj, &["id", "question_id", "uuid"])
                        .map_err(e)?
                        .unwrap_or_else(|| n.to_string());
                    Item {
                        id,
                        question,
                        answer,
                        category: Some(category.unwrap_or_else(|| "(none)".into())),
                        options,
                    }
                }
                Kind::Bbeh => {
                    let question = string_field(&obj, &["question", "input"])
                        .map_err(e)?
                        .ok_or_else(|| e("missing field `question` (or `input`)".into()))?;
                    let answer = match obj.get("answer").or_else(|| obj.get("target")) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(x)) => x.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        _ => return Err(e("missing field `answer` (or `target`)".into())),
                    };
                    let task = string_field(&obj, &["task"]).map_err(e)?;
                    let id = match id_field(&obj, &["id"]).map_err(e)? {
                        Some(id) => id,
                        None => match (&task, id_field(&obj, &["index"]).map_err(e)?) {
                            (Some(t), Some(i)) => format!("{t}/{i}"),
                            _ => n.to_string(),
                        },
                    };
                    Item {
                        id,
                        question,
                        answer,
                        category: Some(task.unwrap_or_else(|| "(none)".into())),
                        options: Vec::new(),
                    }
                }
            };
            if !seen.insert(item.id.clone()) {
                return Err(err(n, format!("duplicate id `{}`", item.id)));
            }
            items.push(item);
        }
        Ok(Benchmark {
            name: kind.name().to_string(),
            kind,
            items,
        })
    }

    /// The first `limit` items (all when `None`).
    pub fn limited(&self, limit: Option<usize>) -> &[Item] {
        let n = limit.unwrap_or(self.items.len()).min(self.items.len());
        &self.items[..n]
    }

    /// The categories in reporting order: MMLU-Pro's as the reference lists them (then any
    /// other), otherwise sorted (as `eval_bbeh.py` sorts its tasks). Empty for math.
    pub fn categories(&self) -> Vec<String> {
        let mut cats: Vec<String> = self
            .items
            .iter()
            .filter_map(|it| it.category.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if self.kind == Kind::MmluPro {
            let rank = |c: &String| {
                MMLU_PRO_CATEGORIES
                    .iter()
                    .position(|k| k == c)
                    .unwrap_or(MMLU_PRO_CATEGORIES.len())
            };
            cats.sort_by_key(|c| rank(c));
        }
        cats
    }

    /// The items to evaluate, in file order.
    ///
    /// Math benchmarks: the first `min(limit, per_category)` items, as before categories
    /// existed. Benchmarks with categories: a seeded, stratified subset. Each category's
    /// items are shuffled (seed, benchmark, category); `per_category` keeps at most that
    /// many of each; then, when more than `limit` remain, every category keeps at least one
    /// item and the rest of `limit` is shared in proportion to the categories' sizes (largest
    /// remainders), so a small subset covers every category and keeps the micro average's
    /// weighting. With `limit` below the number of categories, `limit` categories (chosen
    /// by the seed) keep one item each.
    pub fn select(
        &self,
        limit: Option<usize>,
        per_category: Option<usize>,
        seed: u64,
    ) -> Vec<Item> {
        if !self.kind.is_general() {
            let n = match (limit, per_category) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return self.limited(n).to_vec();
        }
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, it) in self.items.iter().enumerate() {
            groups
                .entry(it.category.clone().unwrap_or_default())
                .or_default()
                .push(i);
        }
        for (cat, idx) in groups.iter_mut() {
            let mut state = seed_of(seed, &[&self.name, cat]);
            for i in (1..idx.len()).rev() {
                state = mix(state);
                let j = (state % (i as u64 + 1)) as usize;
                idx.swap(i, j);
            }
            if let Some(cap) = per_category {
                idx.truncate(cap);
            }
        }
        groups.retain(|_, v| !v.is_empty());
        let total: usize = groups.values().map(Vec::len).sum();
        let quotas: HashMap<String, usize> = match limit {
            Some(l) if l < total => quotas(&groups, l, seed_of(seed, &[&self.name])),
            _ => groups.iter().map(|(c, v)| (c.clone(), v.len())).collect(),
        };
        let mut chosen: Vec<usize> = groups
            .iter()
            .flat_map(|(c, v)| v.iter().take(quotas.get(c).copied().unwrap_or(0)).copied())
            .collect();
        chosen.sort_unstable();
        chosen.into_iter().map(|i| self.items[i].clone()).collect()
    }
}

/// Splits `limit` among the categories: one each, the rest in proportion to size − 1
/// (largest remainders, ties by category order).
fn quotas(
    groups: &BTreeMap<String, Vec<usize>>,
    limit: usize,
    seed: u64,
) -> HashMap<String, usize> {
    let ncat = groups.len();
    let mut out: HashMap<String, usize> = HashMap::new();
    if limit < ncat {
        let mut cats: Vec<(u64, &String)> =
            groups.keys().map(|c| (seed_of(seed, &[c]), c)).collect();
        cats.sort();
        for (_, c) in cats.into_iter().take(limit) {
            out.insert(c.clone(), 1);
        }
        return out;
    }
    let total: usize = groups.values().map(Vec::len).sum();
    let spare = (limit - ncat) as f64;
    let pool = (total - ncat) as f64;
    let mut rema: Vec<(f64, usize, &String)> = Vec::new();
    let mut used = 0;
    for (k, (c, v)) in groups.iter().enumerate() {
        let exact = if pool > 0.0 {
            spare * (v.len() - 1) as f64 / pool
        } else {
            0.0
        };
        let q = (1 + exact.floor() as usize).min(v.len());
        used += q;
        out.insert(c.clone(), q);
        rema.push((exact - exact.floor(), k, c));
    }
    rema.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = limit.saturating_sub(used);
    while left > 0 {
        let mut progressed = false;
        for (_, _, c) in &rema {
            if left == 0 {
                break;
            }
            let q = out.get_mut(*c).expect("every category has a quota");
            if *q < groups[*c].len() {
                *q += 1;
                left -= 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    out
}

/// The JSON objects of a JSONL text with their 1-based line numbers (blank lines skipped).
fn objects(origin: &str, text: &str) -> Result<Vec<(usize, Map<String, Value>)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |msg: String| Error::Parse {
            path: origin.to_string(),
            line: n,
            msg,
        };
        let v: Value =
            serde_json::from_str(line).map_err(|e| err(format!("not valid JSON: {e}")))?;
        match v {
            Value::Object(o) => out.push((n, o)),
            _ => return Err(err("line is not a JSON object".into())),
        }
    }
    Ok(out)
}

/// The first present of `keys` as a string (`Ok(None)` when none is present or it is null).
fn string_field(
    obj: &Map<String, Value>,
    keys: &[&str],
) -> std::result::Result<Option<String>, String> {
    for k in keys {
        match obj.get(*k) {
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            None | Some(Value::Null) => continue,
            Some(_) => return Err(format!("field `{k}` is not a string")),
        }
    }
    Ok(None)
}

/// The first present of `keys` as a string or a number.
fn id_field(
    obj: &Map<String, Value>,
    keys: &[&str],
) -> std::result::Result<Option<String>, String> {
    for k in keys {
        match obj.get(*k) {
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(Value::Number(x)) => return Ok(Some(x.to_string())),
            None | Some(Value::Null) => continue,
            Some(_) => return Err(format!("field `{k}` is not a string or a number")),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_with_expected_sizes() {
        let sizes = [
            ("math500", 500),
            ("gsm8k", 1319),
            ("amc", 40),
            ("minerva", 272),
            ("olympiadbench", 675),
            ("aime24", 30),
            ("AIME2025", 30),
        ];
        for (name, n) in sizes {
            let b = Benchmark::load(name).unwrap();
            assert_eq!(b.items.len(), n, "{name}");
            assert!(
                b.items
                    .iter()
                    .all(|it| !it.answer.is_empty() && !it.question.is_empty()),
                "{name}"
            );
        }
        let g = Benchmark::load("gsm8k").unwrap();
        assert_eq!(g.name, "gsm8k");
        assert_eq!(g.items[0].answer, "18");
    }

    #[test]
    fn file_errors_name_line_and_field() {
        let e = Benchmark::from_jsonl_str(
            "x.jsonl",
            "{\"question\":\"a\",\"answer\":\"1\"}\n\n{\"question\":\"b\"}\n",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("x.jsonl:3") && s.contains("answer"), "{s}");
        let e = Benchmark::from_jsonl_str("y", "[1]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("y:1"), "{e}");
        assert!(matches!(
            Benchmark::load("no-such-bench"),
            Err(Error::UnknownBenchmark { .. })
        ));
    }

    #[test]
    fn numeric_answers_and_default_ids() {
        let b = Benchmark::from_jsonl_str(
            "z",
            "{\"question\":\"q\",\"answer\":27}\n{\"question\":\"r\",\"answer\":\" 1/2 \"}\n",
        )
        .unwrap();
        assert_eq!(b.items[0].answer, "27");
        assert_eq!(b.items[1].answer, "1/2");
        assert_eq!(b.items[1].id, "2");
        assert_eq!(b.limited(Some(1)).len(), 1);
        assert_eq!(b.limited(Some(10)).len(), 2);
    }
}
