//! `rzero download MODEL [--revision R]`: fetch a model from the Hugging Face Hub into the
//! standard cache (resuming a partial download) and print its local folder. Also the progress
//! bars of every download, including those `--model <hub id>` starts.

use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `rzero download`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hub id, `org/name` (or `org/name@revision`), e.g. `Qwen/Qwen3-4B-Base`.
    pub model: String,
    /// Branch, tag or commit hash [default: main].
    #[arg(long)]
    pub revision: Option<String>,
}

pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    let (id, at_rev) = match args.model.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (args.model.as_str(), None),
    };
    let revision = match (at_rev, args.revision.as_deref()) {
        (Some(a), Some(b)) if a != b => anyhow::bail!(
            "the revision is given twice, as {a:?} ({}) and --revision {b:?}",
            args.model
        ),
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) => "main",
    };
    if !model::hub::looks_like_hub_id(id) {
        anyhow::bail!("{id:?} is not a hub id of the form org/name (e.g. Qwen/Qwen3-4B-Base)");
    }
    let opts = model::download::HubOptions::from_env();
    let mut bars = Bars::new(quiet);
    let dir = model::download::snapshot(id, revision, &opts, &mut bars)?;
    println!("{}", dir.display());
    Ok(())
}

/// One indicatif bar per file (bytes, rate, ETA) on stderr, plus a log line per file.
pub struct Bars {
    quiet: bool,
    bar: Option<ProgressBar>,
    log: model::download::LogProgress,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: None,
            log: Default::default(),
        }
    }
}

impl model::download::Progress for Bars {
    fn start(&mut self, file: &str, size: u64) {
        if self.quiet {
            return;
        }
        self.log.start(file, size);
        let bar = self.bar.get_or_insert_with(|| {
            let b = ProgressBar::new(size);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:30} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} \
                     {bytes_per_sec} ETA {eta}",
                )
                .expect("valid template"),
            );
            b
        });
        bar.set_message(file.to_string());
        bar.set_length(size);
        bar.set_position(0);
        bar.reset_eta();
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn finish(&mut self, file: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if !self.quiet {
            self.log.finish(file);
        }
    }
}
