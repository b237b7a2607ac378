//! Atomic output for the whole workspace: every file and folder rzero writes appears
//! complete or not at all.
//!
//! A file is written to a temporary sibling (`.NAME.tmp-PID-SEQ`, created exclusively),
//! synced, renamed over the destination, and the folder is synced; a folder is filled as a
//! temporary sibling folder and renamed over the destination (an existing one is renamed
//! away to `.NAME.old-PID-SEQ` first, then removed). On error the temporary is removed and
//! the destination is left as it was. A killed writer can leave a temporary behind:
//! [`is_leftover`] names them, for the owner of the folder to remove on resume.
//!
//! No dependency beyond `thiserror`, so that every crate (including those that never touch
//! tensors) can use it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An I/O error on `path` (the destination being written, or the folder being synced).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    /// The file or folder the operation was about.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The [`Error`] of an I/O failure on `path`, for `map_err`.
pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error {
        path: path.to_path_buf(),
        source,
    }
}

/// The folder holding `path` ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Flushes a folder's entries (a rename into it, a new file) to disk. Directories can be
/// opened read-only and synced on Unix; elsewhere this is a no-op.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A fresh name next to `path` for a temporary sibling: `.NAME.TAG-PID-SEQ`, with `SEQ`
/// counting within the process (so two writers of one process never share a name).
pub fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{tag}-{}-{seq}", std::process::id()))
}

/// Whether a file name is a temporary that an interrupted atomic write may leave behind
/// (`.NAME.tmp-…` or `.NAME.old-…`).
pub fn is_leftover(name: &str) -> bool {
    name.starts_with('.') && (name.contains(".tmp-") || name.contains(".old-"))
}

fn create_parent(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(at(dir))
}

/// A file being written atomically: bytes go to a temporary sibling of the destination,
/// which [`AtomicFile::commit`] syncs and renames over it. Dropped without a commit, the
/// temporary is removed and the destination is untouched. The file gets the mode of any
/// new file (0666 less the umask).
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<std::io::BufWriter<std::fs::File>>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path` (creating its folder if needed).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        create_parent(path)?;
        loop {
            let tmp = temp_sibling(path, "tmp");
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(f) => {
                    return Ok(AtomicFile {
                        file: Some(std::io::BufWriter::new(f)),
                        tmp,
                        dest: path.to_path_buf(),
                    })
                }
                // A stale temporary of an earlier process with the same id: next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(at(path)(e)),
            }
        }
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes and syncs the temporary, renames it over the destination and syncs the
    /// folder. On error the temporary is removed.
    pub fn commit(mut self) -> Result<()> {
        let file = self
            .file
            .take()
            .expect("an uncommitted AtomicFile holds its file");
        let res = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.dest));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(at(&self.dest)(e));
        }
        let dir = parent_dir(&self.dest);
        sync_dir(dir).map_err(at(dir))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically (creating its folder if needed): a temporary
/// sibling, fsync, rename, fsync of the folder ([`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).map_err(at(path))?;
    f.commit()
}

/// Writes the file `path` atomically through a writer that wants a path (a serialiser that
/// creates its own file): `write` fills the temporary path it is given, which is then
/// synced and renamed over `path`, and the folder synced. On error the temporary is
/// removed.
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    create_parent(path)?;
    let tmp = temp_sibling(path, "tmp");
    let res = write(&tmp).and_then(|()| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| E::from(at(path)(e)))
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res?;
    let dir = parent_dir(path);
    Ok(sync_dir(dir).map_err(at(dir))?)
}

/// Creates the folder `dir` atomically (creating its parent if needed): `fill` writes into
/// a fresh sibling temporary folder, which is synced and renamed over `dir` (an existing
/// `dir` is first renamed away, then removed). On error the temporary folder is removed and
/// `dir` is left as it was.
pub fn write_folder_atomic<E: From<Error>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    create_parent(dir)?;
    let tmp = temp_sibling(dir, "tmp");
    let res = std::fs::create_dir(&tmp)
        .map_err(|e| E::from(at(&tmp)(e)))
        .and_then(|()| fill(&tmp))
        .and_then(|()| sync_dir(&tmp).map_err(|e| E::from(at(&tmp)(e))));
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = temp_sibling(dir, "old");
    let had_old = dir.exists();
    if had_old {
        if let Err(e) = std::fs::rename(dir, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(at(dir)(e).into());
        }
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(at(dir)(e).into());
    }
    let parent = parent_dir(dir);
    sync_dir(parent).map_err(at(parent))?;
    if had_old {
        std::fs::remove_dir_all(&old).map_err(at(&old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(&d.path().join("sub")), ["a.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn atomic_files_have_the_mode_of_a_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let p = d.path().join("a");
        write_atomic(&p, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), mode(&plain));
    }

    #[test]
    fn failed_writes_leave_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.bin");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error {
                path: tmp.to_path_buf(),
                source: std::io::Error::other("serialiser failed"),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("serialiser failed"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(d.path()), ["w.bin"]);
        write_atomic_with(&p, |tmp| std::fs::write(tmp, b"new").map_err(at(tmp))).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(names(d.path()), ["w.bin"]);
    }

    #[test]
    fn a_directory_in_the_way_is_an_error_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("taken");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("keep"), b"k").unwrap();
        let err = write_atomic(&p, b"x").unwrap_err();
        assert_eq!(err.path, p);
        assert_eq!(names(d.path()), ["taken"]);
        assert_eq!(names(&p), ["keep"]);
    }

    #[test]
    fn folders_are_replaced_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ckpt");
        write_folder_atomic::<Error>(&dir, |t| write_atomic(&t.join("a"), b"1")).unwrap();
        write_folder_atomic::<Error>(&dir, |t| write_atomic(&t.join("b"), b"2")).unwrap();
        assert_eq!(names(&dir), ["b"]);
        let err = write_folder_atomic::<Error>(&dir, |t| {
            write_atomic(&t.join("c"), b"3")?;
            Err(at(t)(std::io::Error::other("disk full")))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"));
        assert_eq!(names(&dir), ["b"]);
        assert_eq!(names(d.path()), ["ckpt"]);
    }

    #[test]
    fn an_uncommitted_atomic_file_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rows.jsonl");
        write_atomic(&p, b"old\n").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            writeln!(f, "new").unwrap();
            f.flush().unwrap();
            assert_eq!(names(d.path()).len(), 2, "the temporary is beside the file");
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n");
        assert_eq!(names(d.path()), ["rows.jsonl"]);
        let mut f = AtomicFile::create(&p).unwrap();
        assert_eq!(f.path(), p);
        for i in 0..3 {
            writeln!(f, "{i}").unwrap();
        }
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "0\n1\n2\n");
        assert_eq!(names(d.path()), ["rows.jsonl"]);
    }

    #[test]
    fn temporaries_are_distinct_and_recognised_as_leftovers() {
        let p = Path::new("/x/state.json");
        let (a, b) = (temp_sibling(p, "tmp"), temp_sibling(p, "tmp"));
        assert_ne!(a, b);
        for t in [&a, &b, &temp_sibling(p, "old")] {
            let name = t.file_name().unwrap().to_str().unwrap();
            assert!(is_leftover(name), "{name}");
            assert_eq!(t.parent(), Some(Path::new("/x")));
        }
        assert!(!is_leftover("state.json"));
        assert!(!is_leftover(".hidden"));
        assert_eq!(parent_dir(Path::new("a.txt")), Path::new("."));
    }
}
