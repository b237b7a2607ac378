//! JSONL input/output shared by the subcommands: line-numbered parse errors,
//! stdin/stdout defaults, and atomic output files (temp file + rename).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// Reads a JSONL file (or stdin when `path` is `None` or `-`) into JSON objects.
/// Blank lines are skipped; a line that is not a JSON object is an error naming
/// the file and the line number.
pub fn read_jsonl(path: Option<&Path>) -> anyhow::Result<Vec<Map<String, Value>>> {
    Ok(read_jsonl_numbered(path)?
        .1
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

/// JSON objects with their 1-based line numbers.
pub type NumberedRows = Vec<(usize, Map<String, Value>)>;

/// [`read_jsonl`] with the input's name for messages and each object's 1-based line number.
pub fn read_jsonl_numbered(path: Option<&Path>) -> anyhow::Result<(String, NumberedRows)> {
    let (name, reader): (String, Box<dyn Read>) = match path {
        None => ("<stdin>".into(), Box::new(std::io::stdin())),
        Some(p) if p.as_os_str() == "-" => ("<stdin>".into(), Box::new(std::io::stdin())),
        Some(p) => (
            p.display().to_string(),
            Box::new(std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?),
        ),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("reading {name}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{name}:{}: line is not valid JSON", i + 1))?;
        match v {
            Value::Object(m) => out.push((i + 1, m)),
            _ => bail!("{name}:{}: line is not a JSON object", i + 1),
        }
    }
    Ok((name, out))
}

/// Where output goes: a file written atomically on `finish`, or stdout.
pub enum JsonlOut {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(fsutil::AtomicFile),
}

impl JsonlOut {
    pub fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(Self::Stdout(std::io::BufWriter::new(std::io::stdout()))),
            Some(p) if p.as_os_str() == "-" => {
                Ok(Self::Stdout(std::io::BufWriter::new(std::io::stdout())))
            }
            Some(p) => Ok(Self::File(
                fsutil::AtomicFile::create(p)
                    .with_context(|| format!("creating {}", p.display()))?,
            )),
        }
    }

    pub fn write(&mut self, value: &Value) -> anyhow::Result<()> {
        let line = serde_json::to_string(value)?;
        match self {
            Self::Stdout(w) => {
                writeln!(w, "{line}")?;
            }
            Self::File(f) => writeln!(f, "{line}")?,
        }
        Ok(())
    }

    /// Flushes stdout, or renames the temporary file over the destination.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Stdout(mut w) => w.flush()?,
            Self::File(f) => {
                let dest = f.path().to_path_buf();
                f.commit()
                    .with_context(|| format!("writing {}", dest.display()))?;
            }
        }
        Ok(())
    }
}
