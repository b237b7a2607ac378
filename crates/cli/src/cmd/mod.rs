//! One module per subcommand.

pub mod audit;
pub mod bench;
pub mod bench_cluster;
pub mod bench_generate;
pub mod bench_grade;
pub mod bench_model;
pub mod bench_train;
pub mod cluster;
pub mod config;
pub mod eval;
pub mod extract;
pub mod generate;
pub mod grade;
pub mod grpo;

pub mod report;
pub mod run;
pub mod score;
pub mod serve;
