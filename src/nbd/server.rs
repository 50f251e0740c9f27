//! Listening, connections and shutdown.
//!
//! One thread per connection, at most [`MAX_CONNECTIONS`] at once (more are closed as they
//! arrive); the handshake must finish within [`HANDSHAKE_TIMEOUT`]. The accept loop polls a
//! non-blocking listener, so it notices the stop flag within [`TICK`], and calls
//! [`Export::idle`] about once a second. On stop it closes the read side of every connection:
//! the request being served completes and is answered, the next read ends the connection. The
//! caller then flushes and detaches the export.

use super::{handshake, transmission, Export};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the accept loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// How often it calls [`Export::idle`].
const IDLE_EVERY: Duration = Duration::from_secs(1);

/// Where to listen: `unix:PATH`, or `ADDR:PORT` on a loopback address (`PORT` or `:PORT`
/// alone: 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = Error;

    fn from_str(s: &str) -> Result<Listen> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(Error::usage(
                    "--nbd unix: needs a path, as in unix:/run/vol.sock",
                ));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let bad = || {
            Error::usage(format!(
                "--nbd {s:?} is not unix:PATH or ADDR:PORT (as in 127.0.0.1:10809, [::1]:10809 or :10809)"
            ))
        };
        let port_only = s.strip_prefix(':').unwrap_or(s);
        let addr = if let Ok(port) = port_only.parse::<u16>() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        } else if let Some(port) = s.strip_prefix("localhost:") {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port.parse().map_err(|_| bad())?,
            )
        } else {
            s.parse::<SocketAddr>().map_err(|_| bad())?
        };
        if !addr.ip().is_loopback() {
            return Err(Error::usage(format!(
                "--nbd {s}: cofre serves NBD on loopback addresses only (127.0.0.0/8, ::1); \
                 reach it from elsewhere through an SSH tunnel"
            )));
        }
        Ok(Listen::Tcp(addr))
    }
}

/// A bound listener.
pub enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Unix(_, p) => write!(f, "Listener(unix:{})", p.display()),
            Listener::Tcp(l) => write!(f, "Listener({:?})", l.local_addr().ok()),
        }
    }
}

impl Listener {
    /// Binds `at`. A Unix socket file left by a server that died is replaced; one another
    /// server still answers on, or any other file, is refused.
    pub fn bind(at: &Listen) -> Result<Listener> {
        match at {
            Listen::Tcp(addr) => {
                TcpListener::bind(addr)
                    .map(Listener::Tcp)
                    .map_err(|e| Error::Io {
                        what: format!("listening on {addr}"),
                        source: e,
                    })
            }
            Listen::Unix(path) => {
                let path =
                    std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
                remove_stale_socket(&path)?;
                let l =
                    UnixListener::bind(&path).map_err(|e| Error::io("listening on", &path, e))?;
                // Only the owner may connect.
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
                Ok(Listener::Unix(l, path))
            }
        }
    }

    /// The NBD URI of `export` on this listener (`nbd://127.0.0.1:PORT/NAME`,
    /// `nbd+unix:///NAME?socket=PATH`).
    pub fn uri(&self, export: &str) -> String {
        match self {
            Listener::Unix(_, p) => format!("nbd+unix:///{export}?socket={}", p.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V6(a)) => format!("nbd://[{}]:{}/{export}", a.ip(), a.port()),
                Ok(a) => format!("nbd://{a}/{export}"),
                Err(_) => format!("nbd://?/{export}"),
            },
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Unix(l, _) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
    }

    fn accept(&self) -> io::Result<Stream> {
        let s = match self {
            Listener::Unix(l, _) => Stream::Unix(l.accept()?.0),
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        };
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn remove_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::usage(format!(
            "{} exists and is not a socket; give another path",
            path.display()
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(Error::usage(format!(
            "a server is listening on {} already; stop it or give another path",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|e| Error::io("removing the stale socket", path, e))
        }
        Err(e) => Err(Error::io("checking", path, e)),
    }
}

/// A connection.
pub(super) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Tcp(s) => s.set_nonblocking(on),
        }
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(how),
            Stream::Tcp(s) => s.shutdown(how),
        };
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tcp(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).write(buf),
            Stream::Tcp(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a [`serve`] run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Connections refused because [`MAX_CONNECTIONS`] were open.
    pub refused: u64,
    /// Connections dropped for breaking the protocol (or failing to finish the handshake).
    pub dropped: u64,
}

/// Serves `export` on `listener` until `stop` is set, then lets every connection finish its
/// current request and returns. Problems with one client are printed on stderr and end only
/// that connection.
pub fn serve(export: &dyn Export, listener: &Listener, stop: &AtomicBool) -> Result<ServeReport> {
    listener.set_nonblocking().map_err(|e| Error::Io {
        what: "setting up the listener".into(),
        source: e,
    })?;
    let open: Mutex<HashMap<u64, Stream>> = Mutex::new(HashMap::new());
    let (connections, refused, dropped) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let mut last_idle = Instant::now();
    std::thread::scope(|scope| {
        while !stop.load(Ordering::SeqCst) {
            if last_idle.elapsed() >= IDLE_EVERY {
                last_idle = Instant::now();
                if let Err(e) = export.idle() {
                    eprintln!("cofre: nbd: writing back {}: {e}", export.name());
                }
            }
            let stream = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(TICK);
                    continue;
                }
                Err(e) => {
                    eprintln!("cofre: nbd: accepting a connection: {e}");
                    std::thread::sleep(TICK);
                    continue;
                }
            };
            let mut registry = open.lock().unwrap_or_else(|e| e.into_inner());
            if registry.len() >= MAX_CONNECTIONS {
                refused.fetch_add(1, Ordering::Relaxed);
                stream.shutdown(Shutdown::Both);
                continue;
            }
            let id = connections.fetch_add(1, Ordering::Relaxed);
            if let Ok(clone) = stream.try_clone() {
                registry.insert(id, clone);
            }
            drop(registry);
            let (open, dropped) = (&open, &dropped);
            scope.spawn(move || {
                if let Err(e) = connection(export, &stream) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    eprintln!("cofre: nbd: connection {id} dropped: {e}");
                }
                stream.shutdown(Shutdown::Both);
                open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            });
        }
        // Stop: every connection finishes the request it serves and reads no more.
        for s in open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            s.shutdown(Shutdown::Read);
        }
    });
    Ok(ServeReport {
        connections: connections.into_inner(),
        refused: refused.into_inner(),
        dropped: dropped.into_inner(),
    })
}

/// One connection: handshake (with a deadline), then requests.
pub(super) fn connection(export: &dyn Export, stream: &Stream) -> io::Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let mut w = BufWriter::with_capacity(64 << 10, stream);
    let Some(neg) = handshake::handshake(&mut r, &mut w, export)? else {
        return Ok(());
    };
    stream.set_read_timeout(None)?;
    transmission::serve(&mut r, &mut w, export, neg)
}
