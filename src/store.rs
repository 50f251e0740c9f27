//! The storage discipline every part of cofre follows, and the clock.
//!
//! - **Write new, then switch**: [`write_atomic`] and [`OutputFile`] write a temporary file in the
//!   destination folder, fsync it, rename it into place and fsync the folder. A reader (or a crash,
//!   or `kill -9`) sees the old state or the new, never half. Temporary names start with
//!   `.cofre-tmp-<pid>-`, the writer's process id; on Ctrl-C the ones still pending are removed
//!   before the process exits. A `kill -9` leaves them: [`remove_stale_temporaries`] removes
//!   those whose writer is dead, the first time a process writes in that folder and in
//!   `cofre gc`. A temporary whose writer still runs (or whose pid a live process has taken
//!   since) is kept; so are temporaries of older versions, which name no pid. Processes that
//!   share a folder must share a pid namespace (one machine, or one container).
//! - **Private**: every file cofre makes in the home is mode 0600 and every folder 0700
//!   ([`create_dir`], lock files, temporary files, the trail, blocks and maps).
//! - **Locks**: [`lock`] takes an exclusive advisory lock on a lock file. The home's `.lock`
//!   guards creating the home; each region's `.lock` guards that region's keys and aliases.
//!   Readers do not lock: every file they read is replaced atomically.
//! - **Clock**: a [`Clock`] is the one source of time, injected: the service asks its home's
//!   clock, which a front end sets once (the CLI from `COFRE_NOW`, read once). [`now`] is the
//!   system clock or `COFRE_NOW` for what still asks the process. `COFRE_NOW=2028-01-01T00:00:00Z` sets it, for
//!   tests and simulations of every time-based rule.

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::SystemTime;

/// Prefix of every temporary file cofre creates.
pub const TMP_PREFIX: &str = ".cofre-tmp-";

/// Temporary files to remove if the process is interrupted.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// What a long-running command (a server) does on the first interrupt instead of exiting.
type InterruptHook = Box<dyn Fn() + Send + Sync>;
static HOOK: Mutex<Option<InterruptHook>> = Mutex::new(None);

/// Installs the handler for Ctrl-C, SIGTERM and SIGHUP that removes pending temporary files and
/// exits with 130. While a hook is set ([`on_interrupt`]), the first signal runs the hook
/// instead (a server stops cleanly) and a second one exits as usual.
pub fn install_interrupt_handler() {
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if let Some(hook) = HOOK.lock().unwrap_or_else(|e| e.into_inner()).take() {
                hook();
                return;
            }
            let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
            for p in pending.iter() {
                let _ = fs::remove_file(p).or_else(|_| fs::remove_dir_all(p));
            }
            eprintln!("cofre: interrupted; partial output removed");
            std::process::exit(crate::ExitCode::Interrupted as i32);
        });
    });
}

/// Runs `hook` on the next Ctrl-C, SIGTERM or SIGHUP instead of exiting (once: a second signal
/// exits with 130). [`install_interrupt_handler`] must have run (the CLI installs it first).
pub fn on_interrupt(hook: impl Fn() + Send + Sync + 'static) {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
}

/// Removes `path` (a file or a whole folder) if the process is interrupted before
/// [`forget_on_interrupt`] is called for it.
pub fn remove_on_interrupt(path: &Path) {
    track(path);
}

/// Stops [`remove_on_interrupt`] from removing `path`.
pub fn forget_on_interrupt(path: &Path) {
    untrack(path);
}

fn track(path: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

fn untrack(path: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| p != path);
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fsyncs a folder so that a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing folder", dir, e))
}

/// A file being written to a temporary name beside its final path.
///
/// Nothing appears at the final path until [`OutputFile::commit`]; dropping it uncommitted
/// (an error, a panic) removes the temporary file.
pub struct OutputFile {
    tmp: Option<tempfile::NamedTempFile>,
    path: PathBuf,
    force: bool,
}

impl OutputFile {
    /// Starts writing `path`. Refuses at once if it exists and `force` is false.
    pub fn create(path: &Path, force: bool) -> Result<Self> {
        if !force && fs::symlink_metadata(path).is_ok() {
            return Err(Error::OutputExists(path.to_path_buf()));
        }
        // Never replace a device, FIFO or socket (say /dev/null) with a file, even with force.
        if fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            return Err(Error::usage(format!(
                "{} is a device or FIFO, which this command does not write to; give a file path",
                path.display()
            )));
        }
        let dir = parent_of(path);
        sweep_once(dir);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}{}-", std::process::id()))
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
        track(tmp.path());
        Ok(OutputFile {
            tmp: Some(tmp),
            path: path.to_path_buf(),
            force,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.tmp.as_ref().expect("not committed").as_file()
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fsyncs the file, renames it into place and fsyncs the folder.
    pub fn commit(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("committed once");
        let tmp_path = tmp.path().to_path_buf();
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing", &tmp_path, e))?;
        let persisted = if self.force {
            tmp.persist(&self.path).map(drop)
        } else {
            tmp.persist_noclobber(&self.path).map(drop)
        };
        untrack(&tmp_path);
        if let Err(e) = persisted {
            // `e.file` is dropped here, removing the temporary file.
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(Error::OutputExists(self.path.clone()));
            }
            return Err(Error::io("renaming into place", &self.path, e.error));
        }
        sync_dir(parent_of(&self.path))
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            untrack(tmp.path());
        }
    }
}

/// Folders this process has already swept of stale temporaries.
static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// [`remove_stale_temporaries`] of `dir`, once per process and folder, best effort: a folder
/// that cannot be listed fails the write that follows with a clearer error.
fn sweep_once(dir: &Path) {
    let first = SWEPT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(dir.to_path_buf());
    if first {
        let _ = remove_stale_temporaries(dir);
    }
}

/// The pid a temporary file's name gives its writer (`.cofre-tmp-<pid>-…`), if it names one.
fn writer_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(TMP_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// True unless `pid` certainly names no live process (ESRCH): a live process of another user
/// (EPERM), or any doubt, counts as alive.
fn alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
        None => true,
    }
}

/// Removes the temporary files in `dir` whose writer is dead (killed before it could remove
/// them); returns how many. A missing folder has none.
pub fn remove_stale_temporaries(dir: &Path) -> Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut removed = 0;
    for e in entries {
        let e = e.map_err(|e| Error::io("listing", dir, e))?;
        let Some(pid) = e.file_name().to_str().and_then(writer_pid) else {
            continue;
        };
        if pid as u32 == std::process::id() || alive(pid) {
            continue;
        }
        match fs::remove_file(e.path()) {
            Ok(()) => removed += 1,
            // Another process swept it first.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("removing", &e.path(), err)),
        }
    }
    Ok(removed)
}

/// Replaces (or creates) `path` with `bytes` atomically, with the given Unix mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file(path, bytes, mode, true)
}

/// Creates `path` with `bytes` atomically; fails with [`Error::OutputExists`] if it exists.
pub fn create_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file(path, bytes, mode, false)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<()> {
    let out = OutputFile::create(path, replace)?;
    set_mode(out.file(), mode, out.path())?;
    out.file()
        .write_all(bytes)
        .map_err(|e| Error::io("writing", path, e))?;
    out.commit()
}

fn set_mode(file: &File, mode: u32, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting permissions on", path, e))
}

/// Reads at most `limit` bytes and one more from `reader` (named `what` in errors): enough to
/// tell an input over its limit, without reading a huge (or endless: `/dev/zero`) one whole.
pub fn read_at_most(reader: impl std::io::Read, limit: usize, what: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut v = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io("reading", what, e))?;
    Ok(v)
}

/// [`read_at_most`] of a file.
pub fn read_file_at_most(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    read_at_most(f, limit, path)
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("reading", path, e))
}

/// Creates a folder and its parents (mode 0700 for new ones).
pub fn create_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io("creating folder", path, e))
}

/// An exclusive advisory lock, released on drop.
#[must_use = "the lock is released when this is dropped"]
pub struct LockGuard {
    _file: File,
}

/// Takes an exclusive lock on `path` (created if missing), waiting for other holders.
pub fn lock(path: &Path) -> Result<LockGuard> {
    let f = open_lock(path)?;
    f.lock().map_err(|e| Error::io("locking", path, e))?;
    Ok(LockGuard { _file: f })
}

/// Takes a shared lock on `path` (created if missing), waiting for an exclusive holder.
pub fn lock_shared(path: &Path) -> Result<LockGuard> {
    let f = open_lock(path)?;
    f.lock_shared().map_err(|e| Error::io("locking", path, e))?;
    Ok(LockGuard { _file: f })
}

/// Takes an exclusive lock on `path` (created if missing) if no one holds it; `None` if someone
/// does.
pub fn try_lock(path: &Path) -> Result<Option<LockGuard>> {
    try_locking(path, File::try_lock)
}

/// Takes a shared lock on `path` (created if missing) unless someone holds it exclusively;
/// `None` if someone does.
pub fn try_lock_shared(path: &Path) -> Result<Option<LockGuard>> {
    try_locking(path, File::try_lock_shared)
}

fn try_locking(
    path: &Path,
    how: fn(&File) -> std::result::Result<(), fs::TryLockError>,
) -> Result<Option<LockGuard>> {
    let f = open_lock(path)?;
    match how(&f) {
        Ok(()) => Ok(Some(LockGuard { _file: f })),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("locking", path, e)),
    }
}

fn open_lock(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening lock", path, e))
}

/// The current time: `COFRE_NOW` if set (RFC 3339, e.g. `2028-01-01T00:00:00Z`), else the
/// system clock. Front ends read it once into a [`Clock`]; see [`Clock::from_env`].
pub fn now() -> SystemTime {
    Clock::from_env().unwrap_or_default().now()
}

/// Where the service gets the time: the system clock, or a fixed time (tests and simulations
/// of every time-based rule: rotation, deletion windows, expiry, the trail, the bill).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    Fixed(SystemTime),
}

impl Clock {
    /// The time now.
    pub fn now(self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Fixed(t) => t,
        }
    }

    /// `COFRE_NOW` if set, else the system clock; a front end reads it once, at start.
    pub fn from_env() -> Result<Clock> {
        match std::env::var("COFRE_NOW") {
            Ok(s) if !s.is_empty() => parse_time(&s).map(Clock::Fixed).map_err(|_| {
                Error::usage(format!(
                    "COFRE_NOW={s:?} is not an RFC 3339 time such as 2028-01-01T00:00:00Z"
                ))
            }),
            _ => Ok(Clock::System),
        }
    }
}

/// Formats a time as RFC 3339 UTC with seconds, as KMS prints dates.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<SystemTime> {
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        Error::usage(format!(
            "bad time {s:?}: {e}; use RFC 3339, e.g. 2028-01-01T00:00:00Z"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_name_their_writer() {
        assert_eq!(writer_pid(".cofre-tmp-1234-aBc9"), Some(1234));
        assert_eq!(writer_pid(".cofre-tmp-aBc9xY"), None);
        assert_eq!(writer_pid(".cofre-tmp-0-x"), None);
        assert_eq!(writer_pid("cofre-tmp-12-x"), None);
        let dir = tempfile::tempdir().unwrap();
        let out = OutputFile::create(&dir.path().join("f"), false).unwrap();
        let name = out.tmp.as_ref().unwrap().path().file_name().unwrap();
        let pid = writer_pid(name.to_str().unwrap());
        assert_eq!(pid, Some(std::process::id() as i32));
    }

    #[test]
    fn only_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::id();
        let names = [
            format!("{TMP_PREFIX}{dead}-stale"),
            format!("{TMP_PREFIX}{live}-mine"),
            format!("{TMP_PREFIX}1-init"),
            format!("{TMP_PREFIX}oldformat"),
            "keep.json".to_owned(),
        ];
        for n in &names {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        for n in &names[1..] {
            assert!(dir.path().join(n).exists(), "{n} was removed");
        }
        assert!(!dir.path().join(&names[0]).exists());
        assert_eq!(
            remove_stale_temporaries(&dir.path().join("none")).unwrap(),
            0
        );
    }
}
