//! Where a command's output goes: standard output, or a file (`--output`)
//! that appears whole or not at all. The file is written under a
//! temporary name beside it, synced, and renamed into place only once it
//! is complete, so an export or a report that fails halfway (a damaged
//! log, a full disk) leaves no truncated file under the name asked for,
//! and an earlier file of that name as it was.

use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The file a path names, following symbolic links (also to a file that
/// does not exist yet): replacing a file in place must replace the link's
/// target, not the link.
pub fn through_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) => p = p.parent().map_or(target.clone(), |dir| dir.join(&target)),
            Err(_) => break,
        }
    }
    p
}

/// The places no output may be written into: the store's directory, the
/// key store, the signing key file.
static PROTECTED: std::sync::OnceLock<Protected> = std::sync::OnceLock::new();

/// What [`protect`] keeps outputs away from.
pub struct Protected {
    /// The embedded store's `--data` (once it holds a store): a file
    /// written there could replace a segment or the marker.
    pub store: Option<PathBuf>,
    /// The key store: a file written there could replace a person's key,
    /// and with it every sealed fact of that person.
    pub keys: Option<PathBuf>,
    /// The signing key file, which nothing can make again.
    pub signing_key: Option<PathBuf>,
}

/// Refuses any `--output` into the protected places, from here on.
pub fn protect(places: Protected) {
    let _ = PROTECTED.set(places);
}

/// The directory a file name is in (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Why `target` may not be written, if it is in a protected place.
fn protected(target: &Path, asked: &Path) -> Option<String> {
    let places = PROTECTED.get()?;
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    let parent_real = real(dir_of(target))?;
    let within = |dir: &Path| real(dir).is_some_and(|d| parent_real.starts_with(d));
    if let Some(store) = places.store.as_deref().filter(|d| d.join("STORE").is_file() && within(d)) {
        return Some(format!(
            "{} is inside the store's directory {}, where it could replace the store's own files; write it elsewhere",
            asked.display(),
            store.display()
        ));
    }
    if let Some(keys) = places.keys.as_deref().filter(|d| d.is_dir() && within(d)) {
        return Some(format!(
            "{} is inside the key store {}, where it could replace the keys that open the people's personal data; write it elsewhere",
            asked.display(),
            keys.display()
        ));
    }
    // By its directory, made real, and its name: a key file that is gone
    // (to be restored from a backup) is protected too.
    let key = places.signing_key.as_deref()?;
    let key_file = real(dir_of(key))?.join(key.file_name()?);
    let target_real = parent_real.join(target.file_name()?);
    (target_real == key_file).then(|| {
        format!("{} is the log's signing key, which cannot be made again; write it elsewhere", asked.display())
    })
}

/// The temporary files of `--output`s being written. A signal runs no
/// destructors, so SIGINT, SIGTERM or SIGHUP (a closed terminal) would
/// leave them behind: once one is made, a task waits for those signals,
/// removes them, and ends the process (130, 143 or 129, as the shell
/// reports a process the signal stopped).
static PARTIAL: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn partial(f: impl FnOnce(&mut Vec<PathBuf>)) {
    f(&mut PARTIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Starts the task that removes the temporary files on SIGINT, SIGTERM
/// and SIGHUP, once, from within the runtime. The handlers are in place when
/// this returns.
fn remove_partials_on_signal() {
    static WATCHING: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    WATCHING.get_or_init(|| {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let _entered = runtime.enter();
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            return;
        };
        runtime.spawn(async move {
            let code = tokio::select! {
                _ = interrupt.recv() => 130,
                _ = terminate.recv() => 143,
                _ = hangup.recv() => 129,
            };
            let mut removed = 0;
            partial(|files| {
                for f in files.drain(..) {
                    removed += usize::from(std::fs::remove_file(f).is_ok());
                }
            });
            if removed > 0 {
                eprintln!("styrlogg: stopped by a signal; the output file was not written");
            } else {
                eprintln!("styrlogg: stopped by a signal");
            }
            std::process::exit(code);
        });
    });
}

/// Standard output for a command's results. When its reader goes away
/// (`styrlogg log | head -1`), writes fail with [`ReaderGone`], and `main`
/// ends the command quietly with status 141, as a process stopped by
/// SIGPIPE: a pipeline reports it as the shell reports `seq | head`.
pub struct Stdout(std::io::StdoutLock<'static>);

/// Standard output, buffered; see [`Stdout`].
pub fn stdout() -> BufWriter<Stdout> {
    BufWriter::new(Stdout(std::io::stdout().lock()))
}

/// Why a write to standard output failed: its reader went away.
#[derive(Debug, thiserror::Error)]
#[error("the reader of standard output went away")]
pub struct ReaderGone;

impl ReaderGone {
    /// Whether `err` is a write to standard output whose reader went away.
    pub fn caused(err: &anyhow::Error) -> bool {
        err.chain().any(|c| {
            c.is::<ReaderGone>()
                || c.downcast_ref::<std::io::Error>().and_then(|e| e.get_ref()).is_some_and(|e| e.is::<ReaderGone>())
        })
    }
}

/// A command stopped by a signal once it had put its work in order and
/// said so: `main` ends it with this status (130 for Ctrl-C, 143 for
/// SIGTERM, 129 for SIGHUP, as a shell reports a process the signal
/// stopped), and no error line.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted(pub u8);

fn gone(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, ReaderGone)
    } else {
        e
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(gone)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(gone)
    }
}

pub enum Output {
    Stdout(BufWriter<Stdout>),
    File {
        file: BufWriter<Partial>,
        path: PathBuf,
    },
    /// A device, FIFO or socket: written to as it is, never replaced.
    Special {
        file: BufWriter<std::fs::File>,
        path: PathBuf,
    },
}

impl Output {
    /// Output to `path`, or to standard output when none is given.
    pub fn create(path: Option<&Path>) -> Result<Output> {
        let Some(asked) = path else { return Ok(Output::Stdout(stdout())) };
        // A device, FIFO or socket, found through any links by the kernel
        // (`/dev/stdout` names a pipe that no path leads to): written to
        // as it is.
        if let Ok(m) = std::fs::metadata(asked) {
            if !m.is_file() && !m.is_dir() {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(asked)
                    .with_context(|| format!("cannot write {}", asked.display()))?;
                return Ok(Output::Special { file: BufWriter::new(file), path: asked.to_path_buf() });
            }
        }
        let path = &through_links(asked);
        if path.is_dir() {
            anyhow::bail!(crate::Refused(format!("{} is a directory; give --output a file name", asked.display())));
        }
        if let Some(why) = protected(path, asked) {
            anyhow::bail!(crate::Refused(why));
        }
        let existing = std::fs::metadata(path).ok();
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot write {}", asked.display()))?;
            return Ok(Output::Special { file: BufWriter::new(file), path: path.clone() });
        }
        let dir = dir_of(path);
        // Created as `File::create` would (0666 less the umask), not 0600.
        use std::os::unix::fs::PermissionsExt;
        // The signals are caught before the file exists, and it is made
        // and listed under the list's lock: a signal at any moment finds
        // it listed, or not yet made.
        remove_partials_on_signal();
        let mut made = None;
        partial(|files| {
            made = Some(
                tempfile::Builder::new()
                    .permissions(std::fs::Permissions::from_mode(0o666))
                    .prefix(&format!(".{}.", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
                    .suffix(".partial")
                    .tempfile_in(dir)
                    .inspect(|tmp| files.push(tmp.path().to_path_buf())),
            )
        });
        let tmp = made.expect("made under the lock").map_err(|e| {
            let why = format!("cannot write {}: {}", asked.display(), e.kind());
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) {
                anyhow::anyhow!(crate::Refused(why))
            } else {
                anyhow::anyhow!(why)
            }
        })?;
        // A file replaced keeps its permissions: an export someone made
        // private stays private.
        if let Some(m) = &existing {
            tmp.as_file()
                .set_permissions(m.permissions())
                .with_context(|| format!("cannot write {}", asked.display()))?;
        }
        Ok(Output::File { file: BufWriter::new(Partial(Some(tmp))), path: path.to_path_buf() })
    }

    /// Puts the output in place: flushed, and for a file, synced and
    /// renamed to its name. Dropped without this, a file is removed.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut o) => Ok(o.flush()?),
            Output::Special { mut file, path } => {
                file.flush().with_context(|| format!("cannot write {}", path.display()))
            }
            Output::File { file, path } => {
                let shown = path.display();
                let mut tmp =
                    file.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {shown}"))?;
                tmp.file().as_file().sync_all().with_context(|| format!("cannot write {shown}"))?;
                // Under the lock: a signal now finds it either still partial
                // (and removes it) or in place, never half renamed. If the
                // rename fails, the temporary file is removed, also under it.
                let mut placed = Ok(());
                partial(|files| {
                    let tmp = tmp.0.take().expect("taken only here and when dropped");
                    files.retain(|f| f != tmp.path());
                    placed = tmp.persist(&path).map(drop).map_err(|e| e.error);
                });
                placed.with_context(|| format!("cannot put the file at {shown}"))?;
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
        out.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", out.name()))?;
        out.finish()
    }

    /// What the output is called in messages.
    pub fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "standard output".into(),
            Output::File { path, .. } | Output::Special { path, .. } => path.display().to_string(),
        }
    }
}

/// An `--output` file under its temporary name, listed for the signal
/// task while it exists. Dropped (an error before it was complete), it is
/// removed and unlisted together, under the list's lock.
pub struct Partial(Option<tempfile::NamedTempFile>);

impl Partial {
    fn file(&mut self) -> &mut tempfile::NamedTempFile {
        self.0.as_mut().expect("present until finished or dropped")
    }
}

impl Write for Partial {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        partial(|files| {
            if let Some(tmp) = self.0.take() {
                files.retain(|f| f != tmp.path());
                drop(tmp);
            }
        });
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(o) => o.write(buf),
            Output::File { file, .. } => file.write(buf),
            Output::Special { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(o) => o.flush(),
            Output::File { file, .. } => file.flush(),
            Output::Special { file, .. } => file.flush(),
        }
    }
}
