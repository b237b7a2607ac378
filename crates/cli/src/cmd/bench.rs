//! `rzero bench ...`: benchmarks that print figures and compare with a peer.

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Generation throughput (prompt and generated tokens/s) per batch size.
    Generate(super::bench_generate::Args),
    /// Training throughput (forward + backward + AdamW) and peak memory.
    Train(super::bench_train::Args),
    /// Answer grading throughput and worst-case time.
    Grade(super::bench_grade::Args),
    /// BLEU clustering time at 64 / 2,000 / 8,000 questions.
    Cluster(super::bench_cluster::Args),
    /// `rzero score` and greedy generate tokens/s of the plain model.
    Model(super::bench_model::Args),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Generate(a) => super::bench_generate::run(a),
        BenchCommand::Train(a) => super::bench_train::run(a),
        BenchCommand::Grade(a) => super::bench_grade::run(a),
        BenchCommand::Cluster(a) => super::bench_cluster::run(a),
        BenchCommand::Model(a) => super::bench_model::run(a),
    }
}
