//! The Challenger's format check and reward (R-Zero
//! `examples/reward_function/caller_penalty.py`, `compute_score`).
//!
//! # Parsing ([`parse_challenger_output`])
//! As the reference: `re.findall(r"<question>(.*?)</question>", text, re.DOTALL)`, the LAST
//! match, `.strip()`-ed; the answer is the content of the last `\boxed{}`
//! ([`grade::extract_boxed`]), stripped. Both must be non-empty (the reference sends
//! `question == ""` to the −1 branch, and its Solver server skips items with an empty
//! answer, which then also score −1).
//! Departures (`docs/method.md`): the answer is the whole boxed content (the reference
//! indexes `answers[-1]`, keeping the last character), and without `\boxed{}` the output
//! fails the format check (the reference's extractor returns the truthy string `"None"`).
//!
//! # Reward ([`challenger_rewards`])
//! For a batch x_1..x_B: r_unc = min(p̂, 1 − p̂) from the Solver's votes on x_i; r_rep =
//! |cluster(x_i)| / B, clustering the batch's questions with BLEU distance and average
//! linkage (threshold 0.5). A format failure takes part in the clustering as the empty
//! string (as in the reference, where it is `""`); the empty string has distance 1 to
//! everything, so it is a singleton with r_rep = 1/B. Total = r_unc − r_rep, or
//! `format_failure_reward` (−1) − r_rep.

use serde::{Deserialize, Serialize};

use crate::bleu::py_strip;
use crate::cluster::{cluster_questions, repetition_penalties};
use crate::vote::Vote;
use crate::{Error, Result};

/// Settings of the Challenger reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengerRewardConfig {
    /// Reward before the repetition penalty when the format check fails. Default −1.
    pub format_failure_reward: f64,
    /// BLEU-distance threshold of the clustering. Default 0.5 (`distance_threshold=0.5`).
    pub distance_threshold: f64,
    /// Multiplier of the repetition penalty (0 disables it, as R-Zero's `caller.py`).
    /// Default 1.
    pub repetition_weight: f64,
}

impl Default for ChallengerRewardConfig {
    fn default() -> Self {
        Self {
            format_failure_reward: -1.0,
            distance_threshold: 0.5,
            repetition_weight: 1.0,
        }
    }
}

impl ChallengerRewardConfig {
    /// Checks that the threshold and weight are finite and not negative.
    pub fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.distance_threshold)
            || !ok(self.repetition_weight)
            || !self.format_failure_reward.is_finite()
        {
            return Err(Error::Config(format!("challenger reward: {self:?}")));
        }
        Ok(())
    }
}

/// One Challenger sample's reward and its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengerReward {
    /// r_unc − r_rep, or `format_failure_reward` − r_rep.
    pub total: f64,
    /// Whether the output passed the format check.
    pub format_ok: bool,
    /// p̂ of the Solver's vote (`None` on format failure).
    pub p_hat: Option<f64>,
    /// min(p̂, 1 − p̂) (0 on format failure).
    pub uncertainty: f64,
    /// repetition_weight · cluster size / batch size.
    pub repetition: f64,
    /// Cluster label within the batch (numbered by first appearance).
    pub cluster: usize,
}

/// Parses a Challenger output into `(question, answer)`; `None` on format failure.
pub fn parse_challenger_output(text: &str) -> Option<(String, String)> {
    parse_challenger_output_with(text, grade::extract_boxed)
}

/// [`parse_challenger_output`] with a caller-supplied boxed-answer extractor.
pub fn parse_challenger_output_with(
    text: &str,
    extract: impl Fn(&str) -> Option<String>,
) -> Option<(String, String)> {
    let question = py_strip(last_question_block(text)?).to_string();
    let answer = py_strip(&extract(text)?).to_string();
    (!question.is_empty() && !answer.is_empty()).then_some((question, answer))
}

/// The last match of `<question>(.*?)</question>` (DOTALL, non-overlapping, leftmost).
fn last_question_block(text: &str) -> Option<&str> {
    const OPEN: &str = "<question>";
    const CLOSE: &str = "</question>";
    let mut pos = 0;
    let mut last = None;
    while let Some(o) = text[pos..].find(OPEN) {
        let start = pos + o + OPEN.len();
        let Some(c) = text[start..].find(CLOSE) else {
            break;
        };
        last = Some(&text[start..start + c]);
        pos = start + c + CLOSE.len();
    }
    last
}

/// Uncertainty reward min(p̂, 1 − p̂): 0 at p̂ ∈ {0, 1}, ½ at p̂ = ½.
pub fn uncertainty_reward(p_hat: f64) -> f64 {
    p_hat.min(1.0 - p_hat)
}

/// Rewards of one batch. `items[i]` is the parsed output (`None` = format failure);
/// `p_hats[i]` is the Solver's agreement on it (ignored for format failures, required
/// otherwise).
pub fn challenger_rewards(
    items: &[Option<(String, String)>],
    p_hats: &[Option<f64>],
    cfg: &ChallengerRewardConfig,
) -> Result<Vec<ChallengerReward>> {
    if p_hats.len() != items.len() {
        return Err(Error::LengthMismatch {
            what: "p_hats",
            expected: items.len(),
            got: p_hats.len(),
        });
    }
    cfg.validate()?;
    let questions: Vec<String> = items
        .iter()
        .map(|it| it.as_ref().map_or(String::new(), |(q, _)| q.clone()))
        .collect();
    let labels = cluster_questions(&questions, cfg.distance_threshold);
    let penalties = repetition_penalties(&labels);
    items
        .iter()
        .zip(p_hats)
        .zip(labels.iter().zip(&penalties))
        .enumerate()
        .map(|(i, ((item, p_hat), (&cluster, &pen)))| {
            let repetition = cfg.repetition_weight * pen;
            match item {
                Some(_) => {
                    let p = p_hat.ok_or_else(|| {
                        Error::Config(format!("item {i} is well formed but has no p_hat"))
                    })?;
                    let uncertainty = uncertainty_reward(p);
                    Ok(ChallengerReward {
                        total: uncertainty - repetition,
                        format_ok: true,
                        p_hat: Some(p),
                        uncertainty,
                        repetition,
                        cluster,
                    })
                }
                None => Ok(ChallengerReward {
                    total: cfg.format_failure_reward - repetition,
                    format_ok: false,
                    p_hat: None,
                    uncertainty: 0.0,
                    repetition,
                    cluster,
                }),
            }
        })
        .collect()
}

/// [`challenger_rewards`] from the Solver's sampled answers: `answers[i]` holds the
/// extracted answers of item i (empty for format failures); p̂ counted by `rule` (the
/// reference's server counts a missing box as the answer "None" and divides by m).
pub fn challenger_rewards_with_rule(
    items: &[Option<(String, String)>],
    answers: &[Vec<Option<String>>],
    cfg: &ChallengerRewardConfig,
    rule: crate::vote::VoteRule,
) -> Result<(Vec<ChallengerReward>, Vec<Option<Vote>>)> {
    if answers.len() != items.len() {
        return Err(Error::LengthMismatch {
            what: "answers",
            expected: items.len(),
            got: answers.len(),
        });
    }
    let votes: Vec<Option<Vote>> = items
        .iter()
        .zip(answers)
        .map(|(it, a)| {
            it.as_ref()
                .map(|_| crate::vote::majority_vote_rule(a, rule))
        })
        .collect();
    let p_hats: Vec<Option<f64>> = votes.iter().map(|v| v.as_ref().map(|v| v.p_hat)).collect();
    Ok((challenger_rewards(items, &p_hats, cfg)?, votes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::tests::last_boxed;
    use crate::vote::VoteRule;

    fn parse(t: &str) -> Option<(String, String)> {
        parse_challenger_output_with(t, last_boxed)
    }

    #[test]
    fn parses_like_the_reference() {
        let t = "<question>\nWhat is $1+1$?\n</question>\n\n\\boxed{2}";
        assert_eq!(parse(t), Some(("What is $1+1$?".into(), "2".into())));
        // The last question block wins; the whole boxed content is the answer.
        let t = "<question>a</question> <question> b </question> \\boxed{1} \\boxed{\\frac{1}{2}}";
        assert_eq!(parse(t), Some(("b".into(), "\\frac{1}{2}".into())));
        // Non-greedy and leftmost: the first </question> after the opening tag closes it.
        let t = "<question>x<question>y</question>z</question>\\boxed{3}";
        assert_eq!(parse(t), Some(("x<question>y".into(), "3".into())));
    }

    #[test]
    fn format_failures() {
        assert_eq!(parse("What is 1+1? \\boxed{2}"), None); // no question block
        assert_eq!(parse("<question>What is 1+1?</question>"), None); // no box
        assert_eq!(parse("<question>What is 1+1?</question> \\boxed{2"), None); // unclosed box
        assert_eq!(parse("<question> \n </question>\\boxed{2}"), None); // empty question
        assert_eq!(parse("<question>Q</question>\\boxed{ }"), None); // empty answer
        assert_eq!(parse("<question>Q\\boxed{2}"), None); // unclosed question
        assert_eq!(parse(""), None);
    }

    #[test]
    fn grade_wiring() {
        assert_eq!(
            parse_challenger_output("<question>Q?</question>\\boxed{\\frac{1}{2}}"),
            Some(("Q?".into(), "\\frac{1}{2}".into()))
        );
    }

    #[test]
    fn uncertainty_shape() {
        assert_eq!(uncertainty_reward(0.5), 0.5);
        assert_eq!(uncertainty_reward(0.0), 0.0);
        assert_eq!(uncertainty_reward(1.0), 0.0);
        assert_eq!(uncertainty_reward(0.3), 0.3);
        assert_eq!(uncertainty_reward(0.8), 1.0 - 0.8);
    }

    #[test]
    fn batch_rewards() {
        let q1 = "Find the number of positive integers n less than 100 such that n^2 + 1 is prime.";
        let q2 = "Find the number of positive integers n less than 200 such that n^2 + 1 is prime.";
        let q3 = "A circle of radius 3 is inscribed in a square. Find the area of the square.";
        let items = vec![
            Some((q1.to_string(), "1".to_string())),
            None,
            Some((q2.to_string(), "2".to_string())),
            Some((q3.to_string(), "36".to_string())),
        ];
        let p = vec![Some(0.6), None, Some(1.0), Some(0.0)];
        let r = challenger_rewards(&items, &p, &ChallengerRewardConfig::default()).unwrap();
        // q1 and q2 are near duplicates: one cluster of 2 out of 4.
        assert_eq!(
            r.iter().map(|x| x.cluster).collect::<Vec<_>>(),
            vec![0, 1, 0, 2]
        );
        assert!((r[0].total - (0.4 - 0.5)).abs() < 1e-15);
        assert_eq!(r[1].total, -1.0 - 0.25);
        assert!(!r[1].format_ok && r[1].p_hat.is_none());
        assert_eq!(r[2].total, 0.0 - 0.5);
        assert_eq!(r[3].total, 0.0 - 0.25);
        // Disabling the penalty.
        let cfg = ChallengerRewardConfig {
            repetition_weight: 0.0,
            ..Default::default()
        };
        let r = challenger_rewards(&items, &p, &cfg).unwrap();
        assert_eq!(r[1].total, -1.0);
        // Two format failures do not cluster together (empty strings: distance 1).
        let r = challenger_rewards(
            &[None, None],
            &[None, None],
            &ChallengerRewardConfig::default(),
        )
        .unwrap();
        assert_eq!(r[0].total, -1.5);
        assert_eq!(r[1].cluster, 1);
        // Empty batch.
        assert!(
            challenger_rewards(&[], &[], &ChallengerRewardConfig::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rewards_from_sampled_answers() {
        let items = vec![
            Some(("Compute 1 + 1 in base ten.".to_string(), "2".to_string())),
            None,
        ];
        let answers = vec![
            vec![
                Some("2".to_string()),
                Some("2".to_string()),
                Some("3".to_string()),
                None,
            ],
            vec![],
        ];
        let cfg = ChallengerRewardConfig::default();
        let (r, votes) =
            challenger_rewards_with_rule(&items, &answers, &cfg, VoteRule::Extracted).unwrap();
        let v = votes[0].as_ref().unwrap();
        assert_eq!((v.n_extracted, v.p_hat), (3, 2.0 / 3.0));
        assert!(votes[1].is_none());
        assert!((r[0].uncertainty - 1.0 / 3.0).abs() < 1e-15);
        assert!((r[0].total - (1.0 / 3.0 - 0.5)).abs() < 1e-15);
        assert_eq!(r[1].total, -1.5);
        // A well-formed question whose Solver answers all lack a box: p̂ = 0, r_unc = 0.
        let (r, _) = challenger_rewards_with_rule(
            &items[..1],
            &[vec![None, None]],
            &cfg,
            VoteRule::Extracted,
        )
        .unwrap();
        assert_eq!(
            (r[0].p_hat, r[0].uncertainty, r[0].total),
            (Some(0.0), 0.0, -1.0)
        );
    }

    #[test]
    fn input_errors() {
        let items = vec![Some(("q".to_string(), "a".to_string()))];
        assert!(matches!(
            challenger_rewards(&items, &[], &ChallengerRewardConfig::default()),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(challenger_rewards(&items, &[None], &ChallengerRewardConfig::default()).is_err());
        let bad = ChallengerRewardConfig {
            distance_threshold: f64::NAN,
            ..Default::default()
        };
        assert!(challenger_rewards(&items, &[Some(0.5)], &bad).is_err());
        assert!(serde_json::from_str::<ChallengerRewardConfig>(r#"{"threshold": 0.4}"#).is_err());
    }
}
