//! Benchmarks: question/answer lists loaded from the embedded copies of the seven math
//! benchmarks (see `data/benchmarks/README.md` for sources and licenses) or from any JSONL
//! file whose lines have `question` and `answer` (and optionally `id`).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// One benchmark problem with its known final answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Unique within its benchmark (the file's `id`, or the 1-based line number).
    pub id: String,
    /// The problem statement.
    pub question: String,
    /// The final-answer string (numbers in the file are printed as JSON prints them).
    pub answer: String,
}

/// A named list of [`Item`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    /// Short name used in results (`gsm8k`, `math500`, or the file stem).
    pub name: String,
    /// The problems, in file order.
    pub items: Vec<Item>,
}

/// The built-in benchmarks: (canonical name, aliases, file contents).
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

pub(crate) fn builtin_names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Benchmark {
    /// Loads a built-in benchmark by name or alias (case-insensitive), or a JSONL file by path.
    /// A path wins only when no built-in has that name.
    pub fn load(name_or_path: &str) -> Result<Benchmark> {
        let key = name_or_path.trim().to_ascii_lowercase();
        for (name, aliases, data) in BUILTIN {
            if key == *name || aliases.contains(&key.as_str()) {
                return Benchmark::from_jsonl_str(name, data);
            }
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Benchmark::from_file(path);
        }
        Err(Error::UnknownBenchmark(name_or_path.to_string()))
    }

    /// Loads a comma-separated list (`math500,gsm8k,my.jsonl`), skipping empty entries.
    pub fn load_list(list: &str) -> Result<Vec<Benchmark>> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Benchmark::load)
            .collect()
    }

    /// Loads a JSONL file; the benchmark is named after the file stem.
    pub fn from_file(path: &Path) -> Result<Benchmark> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
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
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(line).map_err(|e| err(n, format!("not valid JSON: {e}")))?;
            let obj = v
                .as_object()
                .ok_or_else(|| err(n, "line is not a JSON object".into()))?;
            let question = match obj.get("question") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(err(n, "field `question` is not a string".into())),
                None => return Err(err(n, "missing field `question`".into())),
            };
            let answer = match obj.get("answer") {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(Value::Number(x)) => x.to_string(),
                Some(_) => return Err(err(n, "field `answer` is not a string or a number".into())),
                None => return Err(err(n, "missing field `answer`".into())),
            };
            let id = match obj.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(x)) => x.to_string(),
                None | Some(Value::Null) => n.to_string(),
                Some(_) => return Err(err(n, "field `id` is not a string or a number".into())),
            };
            if !seen.insert(id.clone()) {
                return Err(err(n, format!("duplicate id `{id}`")));
            }
            items.push(Item {
                id,
                question,
                answer,
            });
        }
        Ok(Benchmark {
            name: origin.to_string(),
            items,
        })
    }

    /// The first `limit` items (all when `None`).
    pub fn limited(&self, limit: Option<usize>) -> &[Item] {
        let n = limit.unwrap_or(self.items.len()).min(self.items.len());
        &self.items[..n]
    }
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
            Err(Error::UnknownBenchmark(_))
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
