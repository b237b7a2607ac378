/*!
The R-Zero method: configuration and presets, the Challenger phase, dataset construction,
the Solver phase, and the resumable loop that ties them together in a run directory.
*/

pub mod challenger;
pub mod config;
pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod grpo;
pub mod policy;
pub mod prompts;
pub mod rollout;
pub mod run;
pub mod rundir;
pub mod solver;
pub mod testing;

pub use config::Config;
pub use error::{Error, Result};
