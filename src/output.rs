//! Where a command's output goes: standard output, or a file (`--output`)
//! that appears whole or not at all. The file is written under a
//! temporary name beside it, synced, and renamed into place only once it
//! is complete, so an export or a report that fails halfway (a damaged
//! log, a full disk) leaves no truncated file under the name asked for,
//! and an earlier file of that name as it was.

use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub enum Output {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    File { file: BufWriter<tempfile::NamedTempFile>, path: PathBuf },
}

impl Output {
    /// Output to `path`, or to standard output when none is given.
    pub fn create(path: Option<&Path>) -> Result<Output> {
        let Some(path) = path else { return Ok(Output::Stdout(BufWriter::new(std::io::stdout().lock()))) };
        if path.is_dir() {
            anyhow::bail!(crate::Refused(format!("{} is a directory; give --output a file name", path.display())));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Created as `File::create` would (0666 less the umask), not 0600.
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o666))
            .prefix(&format!(".{}.", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {} for {}", dir.display(), path.display()))?;
        Ok(Output::File { file: BufWriter::new(tmp), path: path.to_path_buf() })
    }

    /// Puts the output in place: flushed, and for a file, synced and
    /// renamed to its name. Dropped without this, a file is removed.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut o) => match o.flush() {
                // A reader that went away (`export | head`) is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            },
            Output::File { file, path } => {
                let shown = path.display();
                let tmp =
                    file.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {shown}"))?;
                tmp.as_file().sync_all().with_context(|| format!("cannot write {shown}"))?;
                tmp.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot put the file at {shown}"))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
                }
                Ok(())
            }
        }
    }

    /// Writes `text` to `path` (or standard output) whole.
    pub fn write_whole(path: Option<&Path>, text: &str) -> Result<()> {
        let mut out = Output::create(path)?;
        match out.write_all(text.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.with_context(|| format!("cannot write {}", out.name()))?,
        }
        out.finish()
    }

    /// What the output is called in messages.
    pub fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "standard output".into(),
            Output::File { path, .. } => path.display().to_string(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(o) => o.write(buf),
            Output::File { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(o) => o.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}
