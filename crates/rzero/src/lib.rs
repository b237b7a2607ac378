/*!
The R-Zero method: configuration and presets, the Challenger phase, dataset construction,
the Solver phase, and the resumable loop that ties them together in a run directory.
*/

pub mod config;
pub mod error;
pub mod prompts;
pub mod rundir;
pub mod testing;

pub use config::Config;
pub use error::{Error, Result};
