//! Dataset construction: the trained Challenger writes questions, the frozen Solver answers
//! each `m` times, the majority answer becomes the pseudo-label, and questions whose
//! agreement p̂ lies in the band are kept (the reference's `question_generate.py`,
//! `question_evaluate/evaluate.py` and `upload.py`).
//!
//! Work is journaled in chunks of `dataset.chunk` questions under `iter_N/.dataset-chunks/`:
//! each chunk file is written atomically when the chunk is done, and its seeds depend only on
//! (master seed, iteration, chunk index), so a resumed run redoes at most one chunk and ends
//! with the same files as an uninterrupted one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::rollout::{derive_seed, Role};
use crate::rundir::{read_jsonl, write_jsonl, RunDir};

/// A generated question with the Solver's answers (a line of `dataset.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetItem {
    /// The question (content of the last `<question>…</question>`).
    pub question: String,
    /// The Challenger's own boxed answer.
    pub answer: String,
    /// Majority answer of the Solver (the pseudo-label), if any answer was extracted.
    pub label: Option<String>,
    /// Agreement: largest equivalence class / extracted answers (0 when none).
    pub p_hat: f64,
    /// The Solver's extracted answers (null where a response had no `\boxed{}`).
    pub answers: Vec<Option<String>>,
    /// Whether the filter keeps it for Solver training.
    pub kept: bool,
}

/// One journaled chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chunk {
    generated: usize,
    truncated: usize,
    items: Vec<DatasetItem>,
}

/// Summary of a dataset build (also a `metrics.jsonl` row).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Questions sampled from the Challenger.
    pub generated: usize,
    /// Well-formed ones.
    pub valid: usize,
    /// Kept by the filter.
    pub kept: usize,
    /// Challenger responses cut by the token limit.
    pub truncated: usize,
}

/// Builds (or resumes) the dataset of iteration `iter`; writes `questions.jsonl` and
/// `dataset.jsonl`. `on_chunk(done, total)` reports progress.
pub fn build(
    cfg: &Config,
    run: &RunDir,
    iter: usize,
    challenger: &Role<'_>,
    solver: &Role<'_>,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<DatasetItem>, DatasetSummary)> {
    let d = &cfg.dataset;
    let chunks_dir = run.dataset_chunks_dir(iter);
    std::fs::create_dir_all(&chunks_dir).map_err(|e| Error::Io {
        path: chunks_dir.clone(),
        source: e,
    })?;
    let n_chunks = d.num_questions.div_ceil(d.chunk);
    let band = reward::vote::FilterBand {
        low: d.min_p_hat,
        high: d.max_p_hat,
        ..Default::default()
    };
    let prompt_text = crate::prompts::challenger_prompt(
        challenger.template,
        cfg.challenger.format_example,
        &cfg.challenger.response_prefix,
    )
    .map_err(|e| Error::Stage(e.to_string()))?;
    let prompt = challenger.encode(&prompt_text)?;
    let mut all: Vec<DatasetItem> = Vec::new();
    let mut summary = DatasetSummary::default();
    for k in 0..n_chunks {
        let path = chunks_dir.join(format!("chunk_{k:05}.json"));
        let chunk = if path.exists() {
            read_chunk(&path)?
        } else {
            let len = d.chunk.min(d.num_questions - k * d.chunk);
            let c = build_chunk(cfg, iter, k, len, &prompt, challenger, solver, &band)?;
            let bytes = serde_json::to_vec(&c).map_err(|e| Error::Stage(e.to_string()))?;
            crate::rundir::write_atomic(&path, &bytes)?;
            c
        };
        summary.generated += chunk.generated;
        summary.truncated += chunk.truncated;
        summary.valid += chunk.items.len();
        summary.kept += chunk.items.iter().filter(|i| i.kept).count();
        all.extend(chunk.items);
        on_chunk(k + 1, n_chunks);
    }
    #[derive(Serialize)]
    struct Q<'a> {
        question: &'a str,
        answer: &'a str,
    }
    let qs: Vec<Q<'_>> = all
        .iter()
        .map(|i| Q {
            question: &i.question,
            answer: &i.answer,
        })
        .collect();
    write_jsonl(&run.questions_path(iter), &qs)?;
    // dataset.jsonl is the stage's commit point: the caller writes it (with [`commit`]) after
    // the stage's metrics, so a kill between the two cannot lose the metric row.
    Ok((all, summary))
}

/// Writes `dataset.jsonl`, the dataset stage's commit point.
pub fn commit(path: &Path, items: &[DatasetItem]) -> Result<()> {
    write_jsonl(path, items)
}

/// Reads a finished dataset.
pub fn load(path: &Path) -> Result<Vec<DatasetItem>> {
    read_jsonl(path)
}

fn read_chunk(path: &Path) -> Result<Chunk> {
    let b = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_slice(&b).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
fn build_chunk(
    cfg: &Config,
    iter: usize,
    k: usize,
    len: usize,
    prompt: &[u32],
    challenger: &Role<'_>,
    solver: &Role<'_>,
    band: &reward::vote::FilterBand,
) -> Result<Chunk> {
    let d = &cfg.dataset;
    let seed = derive_seed(cfg.seed, &[iter as u64, 2, k as u64]);
    // 1. The Challenger writes `len` questions (one request, `len` samples).
    let responses = challenger
        .sample(
            &[prompt.to_vec()],
            len,
            &d.sampling,
            derive_seed(seed, &[0]),
            &mut |_, _| {},
        )?
        .pop()
        .unwrap_or_default();
    let truncated = responses.iter().filter(|r| r.truncated).count();
    let parsed: Vec<(String, String)> = responses
        .iter()
        .filter_map(|r| {
            reward::challenger::parse_challenger_output(&format!(
                "{}{}",
                cfg.challenger.response_prefix, r.text
            ))
        })
        .filter(|(q, a)| !q.trim().is_empty() && !a.trim().is_empty())
        .collect();
    // 2. The Solver answers each `m` times.
    let answers = solver_answers(
        solver,
        &parsed.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>(),
        d.solver_samples,
        &d.solver_sampling,
        d.solver_force_answer,
        derive_seed(seed, &[1]),
        cfg,
    )?;
    // 3. Majority vote and filter.
    let rule = match cfg.dataset.vote {
        crate::config::Vote::Reference => reward::vote::VoteRule::ReferenceNonEmpty,
        crate::config::Vote::Extracted => reward::vote::VoteRule::Extracted,
    };
    let items = parsed
        .into_iter()
        .zip(answers)
        .map(|((question, answer), answers)| {
            let vote = reward::vote::majority_vote_rule(&answers, rule);
            // upload.py also drops the label "None" (the reference's missing box)
            let kept = band.keep(&question, &vote)
                && !(rule != reward::vote::VoteRule::Extracted
                    && vote.label.as_deref() == Some("None"));
            DatasetItem {
                question,
                answer,
                label: vote.label,
                p_hat: vote.p_hat,
                answers,
                kept,
            }
        })
        .collect();
    Ok(Chunk {
        generated: len,
        truncated,
        items,
    })
}

/// The Solver's extracted answers (`m` per question) with the Solver prompt; `force`:
/// forced final answers.
pub fn solver_answers(
    solver: &Role<'_>,
    questions: &[&str],
    m: usize,
    sampling: &engine::SamplingKnobs,
    force: bool,
    seed: u64,
    cfg: &Config,
) -> Result<Vec<Vec<Option<String>>>> {
    let prompts = questions
        .iter()
        .map(|q| {
            crate::prompts::solver_prompt(solver.template, q, cfg.solver.format_example)
                .map_err(|e| Error::Stage(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let force = cfg.force_answer(force);
    let samples =
        solver.sample_texts(&prompts, m, sampling, force.as_ref(), seed, &mut |_, _| {})?;
    Ok(samples
        .into_iter()
        .map(|s| s.into_iter().map(|r| cfg.extract_answer(&r.text)).collect())
        .collect())
}
