/*!
R-Zero's reward signals, pure Rust: sentence BLEU ([`bleu`]), the all-pairs BLEU
distance matrix ([`distance`]), average-linkage clustering and the repetition penalty
([`cluster`]), the Challenger's format check and reward ([`challenger`]), the Solver's
reward ([`solver`]), and majority-vote pseudo-labels with the p̂ filter ([`vote`]).

Every function matches R-Zero's reference code (`Chengsong-Huang/R-Zero` at 5699329),
except where `docs/method.md` ("Where rzero deliberately departs") says otherwise; each
module notes its departures. Answer extraction and equivalence come from the `grade`
crate; functions ending in `_with` take them as arguments instead.

Exactness: BLEU values equal NLTK 3.9.1 bit for bit (including `math.fsum` and Python's
whitespace set), and the clustering ports SciPy's nearest-neighbour chain, so partitions
equal scikit-learn's, ties included (`tests/fixtures.rs`). Speed: 8,000 questions take a
few seconds on 2 cores (`rzero bench cluster`).

```
use reward::cluster::{cluster_questions, repetition_penalties};
let qs: Vec<String> = vec![
    "What is the sum of the first ten odd numbers?".into(),
    "What is the sum of the first ten even numbers?".into(),
    "Find all real x with x^2 = 4.".into(),
];
let labels = cluster_questions(&qs, 0.5);
assert_eq!(labels, vec![0, 0, 1]);
assert_eq!(repetition_penalties(&labels), vec![2.0 / 3.0, 2.0 / 3.0, 1.0 / 3.0]);
```
*/
#![deny(missing_docs)]

pub mod bleu;
pub mod challenger;
pub mod cluster;
pub mod distance;
pub mod solver;
pub mod vote;

pub use bleu::sentence_bleu;
pub use challenger::{challenger_rewards, parse_challenger_output, ChallengerRewardConfig};
pub use cluster::{cluster_questions, repetition_penalties};
pub use solver::{solver_reward, SolverReward, SolverRewardConfig};
pub use vote::{keep, majority_vote, FilterBand, Vote};

/// Errors of the reward crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two per-item inputs that must line up have different lengths.
    #[error("{what}: expected {expected} items, got {got}")]
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result alias of the reward crate.
pub type Result<T> = std::result::Result<T, Error>;
