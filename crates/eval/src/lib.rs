/*!
Evaluation for rzero: math benchmarks with known answers, pass@1 / mean@k / maj@k, the
general-domain sets the paper also reports (MMLU-Pro, SuperGPQA, BBEH) with per-category
accuracy, the pseudo-label audit, and the self-contained HTML run report.

- [`Benchmark`]: a list of question/answer [`Item`]s; the seven math benchmarks R-Zero
  evaluates on, MMLU-Pro and BBEH are embedded in the library (`data/benchmarks/`; the
  general-domain sets gzip-compressed), any other JSONL file with `question` and `answer`
  fields loads by path, and `supergpqa=PATH` (or `mmlu_pro=`, `bbeh=`) a file in that
  benchmark's format. [`Kind`] picks the prompt and the answer rule.
- [`Generator`]: "prompts in, n completions per prompt out", as texts. `eval` links no
  model code, so this is a thin view of `engine::Sampler`: its one implementation is
  `rzero::evaluate::SamplerGenerator`; tests use scripted fakes.
- [`run_eval`]: greedy pass@1 and, with samples, mean@k and maj@k; resumable through an
  append-only `responses.jsonl`; writes `results.json` atomically. The answer is the first or
  the last `\boxed{}` ([`EvalOptions::answer`], `grade::AnswerRule`).
- [`run_eval_judged`]: the same, plus the reference's LLM re-check of wrong greedy answers
  ([`judge`]); `pass@1` and `pass@1+judge` side by side.
- [`run_audit`]: treats benchmark questions as if the Challenger had written them, builds
  majority-vote pseudo-labels exactly as the dataset stage does, and measures their
  accuracy per p̂ band; writes `audit.json`.
- [`report::render`]: one HTML page (inline SVG, no JavaScript) from a run directory.

```
use eval::{Benchmark, metrics};
let b = Benchmark::from_jsonl_str("mine", "{\"question\": \"1+1?\", \"answer\": \"2\"}\n").unwrap();
assert_eq!(b.items[0].answer, "2");
assert_eq!(metrics::pass_at_1(&[true, false, true, true]), 0.75);
```
*/
#![deny(missing_docs)]

pub mod audit;
pub mod bench;
pub mod error;
pub mod generate;
pub mod grading;
mod io;
pub mod judge;
pub mod metrics;
pub mod report;
mod results;
pub mod rows;
pub mod run;
mod svg;
mod table;

pub use audit::{format_audit, run_audit, AuditOptions, AuditReport, BandStats};
pub use bench::{Benchmark, Item, Kind, BUILTIN, BUILTIN_GENERAL, MMLU_PRO_CATEGORIES};
pub use error::{Error, Result};
pub use generate::{plain_prompt, prompt_for, GenParams, Generator, SOLVER_SYSTEM_PROMPT};
pub use grade::{AnswerRule, ExtractMode};
pub use judge::{Judge, JudgePrompt};
pub use run::{
    format_table, run_eval, run_eval_judged, BenchResult, CategoryResult, EvalOptions, EvalResults,
    Progress,
};
