//! `rzero extract`: adds `"boxed"` (the content of the last `\boxed{}`, or null) to
//! every JSONL line that has a `response`; other lines pass through unchanged. With
//! `--extract fallbacks|free` the field is `"extracted"` and holds that mode's answer.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::io::{read_jsonl, JsonlOut};

/// Arguments of `rzero extract`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input JSONL (stdin when absent or `-`).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output JSONL (stdout when absent or `-`), written atomically.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// boxed (default), fallbacks, or free (free text; see `rzero grade --help`).
    #[arg(long, default_value = "boxed")]
    pub extract: grade::ExtractMode,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let rows = read_jsonl(args.input.as_deref())?;
    let mut out = JsonlOut::create(args.output.as_deref())?;
    for (i, mut row) in rows.into_iter().enumerate() {
        if let Some(r) = row.get("response") {
            let r = r.as_str().with_context(|| {
                format!("{name}: record {}: field `response` is not a string", i + 1)
            })?;
            let b = args.extract.extract(r);
            let key = match args.extract {
                grade::ExtractMode::Boxed => "boxed",
                _ => "extracted",
            };
            row.insert(key.into(), b.map_or(Value::Null, Value::String));
        }
        out.write(&Value::Object(row))?;
    }
    out.finish()
}
