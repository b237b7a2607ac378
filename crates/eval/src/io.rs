//! File helpers: atomic writes (through `fsutil`) and the
//! append-only JSONL journals that make eval and audit resumable.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Serialises `value` as pretty JSON to `path`, atomically.
pub(crate) fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| Error::Parse {
        path: path.display().to_string(),
        line: 0,
        msg: format!("cannot serialise: {e}"),
    })?;
    s.push('\n');
    Ok(fsutil::write_atomic(path, s.as_bytes())?)
}

/// Reads the rows of an append-only journal. A final line without a newline is the trace
/// of a killed writer: it is dropped and the file is truncated to the last complete line,
/// so new rows are appended cleanly. A malformed complete line is an error.
pub(crate) fn read_journal(path: &Path) -> Result<Vec<Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if complete < bytes.len() {
        tracing::warn!(path = %path.display(), dropped_bytes = bytes.len() - complete, "dropping an incomplete last line");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(complete as u64).map_err(|e| Error::io(path, e))?;
    }
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| Error::Parse {
            path: path.display().to_string(),
            line: i + 1,
            msg: format!("not valid JSON: {e}"),
        })?;
        rows.push(v);
    }
    Ok(rows)
}

/// An append-only JSONL journal; every row is written with its newline and flushed.
pub(crate) struct Journal {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Journal {
    pub(crate) fn open(path: &Path) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn append(&mut self, rows: &[Value]) -> Result<()> {
        let mut buf = String::new();
        for r in rows {
            buf.push_str(&r.to_string());
            buf.push('\n');
        }
        self.file
            .write_all(buf.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Checks `options.json` in `dir` against `current` (writing it when absent), so a resumed
/// run cannot mix rows produced with different settings.
pub(crate) fn check_options(path: &Path, current: &Value) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let old: Value = serde_json::from_str(&text).map_err(|e| Error::Parse {
                path: path.display().to_string(),
                line: 0,
                msg: format!("not valid JSON: {e}"),
            })?;
            if &old != current {
                return Err(Error::Resume {
                    path: path.to_path_buf(),
                    msg: format!(
                        "this folder holds responses made with other options ({old}); now {current}; use another output folder or delete it"
                    ),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_json_atomic(path, current),
        Err(e) => Err(Error::io(path, e)),
    }
}
