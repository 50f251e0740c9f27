//! Volumes attached over NBD, driven by real clients: qemu-io and qemu-img (Debian's
//! qemu-utils), nbdinfo, nbdcopy and nbdfuse (libnbd-bin), mkfs.ext4, e2fsck and debugfs
//! (e2fsprogs); `.ci/run` installs them. Each test runs the built `cofre volume attach` (or
//! `snapshot attach`) on a Unix socket in its own temporary home, with volumes of a few MiB.
//!
//! - Patterns written by qemu-io read back, and the volume exported afterwards is the image
//!   the same qemu-io commands make of a plain file; one Decrypt and one AttachVolume for the
//!   whole attach.
//! - `qemu-img convert -n` into the export, `qemu-img compare`, nbdcopy out of it and into it.
//! - `nbdinfo --map` shows holes where zeroes were written (without NO_HOLE) or trimmed.
//! - Writers are locked out (`VolumeInUse`), snapshots of an attached volume capture the last
//!   flush, read-only attaches refuse writes, a FLUSH on one connection covers writes made on
//!   another.
//! - Hostile clients are disconnected; the server serves on, and the volume is unchanged.
//! - `kill -9` of the server in a stream of writes and flushes: the volume is at a flush point
//!   and `cofre verify` is clean.
//! - ext4 made with mkfs.ext4 on the export (through nbdfuse), files written on it, then a
//!   snapshot, a copy to another region under that region's key, a restore there, and
//!   `e2fsck -fn` and the files read back through NBD again. Where the machine forbids FUSE or
//!   a loop mount, the test says so on stderr and does the rest another way.

mod common;

use common::ENV;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

// ── Helpers ───────────────────────────────────────────────────────────────────────────────

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const BLOCK: usize = 512 * KIB;
const ACCESS: i32 = 3;

struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Home {
        let h = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        h.ok(EAST, &["init", "--account", "111122223333"]);
        h
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, region: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cofre"));
        for v in ENV {
            c.env_remove(v);
        }
        c.arg("--home")
            .arg(self.dir.path().join("home"))
            .args(["--region", region, "--quiet"])
            .args(args);
        c
    }

    fn run(&self, region: &str, args: &[&str]) -> Output {
        self.cmd(region, args).output().unwrap()
    }

    /// Runs cofre, which must succeed; its stdout, trimmed.
    fn ok(&self, region: &str, args: &[&str]) -> String {
        let out = self.run(region, args);
        assert!(
            out.status.success(),
            "cofre {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A new encrypted volume of `size` bytes.
    fn volume(&self, size: usize) -> String {
        self.ok(
            EAST,
            &[
                "volume",
                "create",
                "--size",
                &format!("{}KiB", size / KIB),
                "--encrypted",
            ],
        )
    }

    /// The whole volume, read through `volume read`.
    fn contents(&self, region: &str, vol: &str, size: usize) -> Vec<u8> {
        let out = self.run(
            region,
            &[
                "volume",
                "read",
                vol,
                "--offset",
                "0",
                "--length",
                &size.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `cofre verify` of `region`: exit 0, no problems; the report.
    fn verify(&self, region: &str) -> Value {
        let out = self.run(region, &["--output", "json", "verify"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(
            out.status.success(),
            "verify: {report} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(report["Problems"], serde_json::json!([]), "{report}");
        report
    }

    /// The trail of `region`, as (eventName, the whole record).
    fn trail(&self, region: &str) -> Vec<(String, Value)> {
        self.ok(region, &["--output", "json", "audit", "log"])
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["eventName"].as_str().unwrap().to_owned(), v)
            })
            .collect()
    }
}

/// Runs a tool that must succeed; its stdout.
fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is required (.ci/run installs qemu-utils, libnbd-bin and e2fsprogs): {e}")
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// qemu-io on `target` (an image file or an NBD URI) with one `-c` per command.
fn qemu_io(target: &str, cmds: &[&str]) -> String {
    qemu_io_with(&[], target, cmds)
}

/// [`qemu_io`] with more options first (`-r`: read-only).
fn qemu_io_with(options: &[&str], target: &str, cmds: &[&str]) -> String {
    let mut args = vec!["-f", "raw"];
    args.extend(options);
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(target);
    let out = tool("qemu-io", &args);
    assert!(!out.contains("Pattern verification failed"), "{out}");
    assert!(!out.contains("failed:"), "{out}");
    out
}

/// `n` pseudo-random bytes from `seed`.
fn random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A running `cofre volume attach` / `snapshot attach`.
struct Server {
    child: Child,
    uri: String,
    socket: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `cofre [region] ATTACH_ARGS --nbd unix:SOCKET` and waits for its URI.
    fn start(home: &Home, region: &str, args: &[&str], socket: &Path) -> Server {
        Server::start_at(home, region, args, &format!("unix:{}", socket.display()))
    }

    /// [`Server::start`] with any `--nbd` value.
    fn start_at(home: &Home, region: &str, args: &[&str], nbd: &str) -> Server {
        let socket = PathBuf::from(nbd.strip_prefix("unix:").unwrap_or_default());
        let mut all = args.to_vec();
        all.extend(["--nbd", nbd]);
        let mut child = home
            .cmd(region, &all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().unwrap().push_str(&s);
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let uri = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let uri = uri.trim().to_owned();
        if uri.is_empty() {
            let _ = child.kill();
            let status = child.wait().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "cofre {all:?} did not start ({status}): {}",
                stderr.lock().unwrap()
            );
        }
        Server {
            child,
            uri,
            socket,
            stderr,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGTERM, and the exit status with everything it said on stderr.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let status = wait_for(&mut self.child, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
        let err = self.stderr.lock().unwrap().clone();
        (status, err)
    }

    /// SIGTERM, which must end it with exit 0.
    fn stop_ok(self) -> String {
        let (status, err) = self.stop();
        assert!(status.success(), "the server exited with {status}: {err}");
        assert!(err.contains("detached"), "{err}");
        err
    }

    /// SIGKILL.
    fn kill9(mut self) {
        self.signal("-KILL");
        wait_for(&mut self.child, Duration::from_secs(60));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < limit, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal NBD client over a Unix socket: fixed newstyle, NBD_OPT_GO, simple replies.
struct Client {
    s: UnixStream,
    cookie: u64,
}

impl Client {
    fn connect(socket: &Path, name: &str) -> Client {
        let mut s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut hello = [0u8; 18];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(&hello[..8], b"NBDMAGIC");
        s.write_all(&1u32.to_be_bytes()).unwrap();
        let mut opt = Vec::new();
        opt.extend_from_slice(b"IHAVEOPT");
        opt.extend_from_slice(&7u32.to_be_bytes());
        opt.extend_from_slice(&(4 + name.len() as u32 + 2).to_be_bytes());
        opt.extend_from_slice(&(name.len() as u32).to_be_bytes());
        opt.extend_from_slice(name.as_bytes());
        opt.extend_from_slice(&0u16.to_be_bytes());
        s.write_all(&opt).unwrap();
        loop {
            let mut head = [0u8; 20];
            s.read_exact(&mut head).unwrap();
            let kind = u32::from_be_bytes(head[12..16].try_into().unwrap());
            let len = u32::from_be_bytes(head[16..20].try_into().unwrap());
            let mut data = vec![0; len as usize];
            s.read_exact(&mut data).unwrap();
            assert!(
                kind < 1 << 31,
                "GO failed: {}",
                String::from_utf8_lossy(&data)
            );
            if kind == 1 {
                return Client { s, cookie: 0 };
            }
        }
    }

    fn request(&mut self, kind: u16, flags: u16, offset: u64, len: u32, data: &[u8]) -> u32 {
        self.try_request(kind, flags, offset, len, data).unwrap()
    }

    /// A request and its simple reply's error; Err if the connection fails.
    fn try_request(
        &mut self,
        kind: u16,
        flags: u16,
        offset: u64,
        len: u32,
        data: &[u8],
    ) -> std::io::Result<u32> {
        self.cookie += 1;
        let mut m = Vec::new();
        m.extend_from_slice(&0x2560_9513u32.to_be_bytes());
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&kind.to_be_bytes());
        m.extend_from_slice(&self.cookie.to_be_bytes());
        m.extend_from_slice(&offset.to_be_bytes());
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(data);
        self.s.write_all(&m)?;
        let mut reply = [0u8; 16];
        self.s.read_exact(&mut reply)?;
        assert_eq!(
            u32::from_be_bytes(reply[..4].try_into().unwrap()),
            0x6744_6698
        );
        assert_eq!(
            u64::from_be_bytes(reply[8..].try_into().unwrap()),
            self.cookie
        );
        Ok(u32::from_be_bytes(reply[4..8].try_into().unwrap()))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> u32 {
        self.request(1, 0, offset, data.len() as u32, data)
    }

    fn flush(&mut self) -> u32 {
        self.request(3, 0, 0, 0, &[])
    }

    fn read(&mut self, offset: u64, len: usize) -> Vec<u8> {
        assert_eq!(self.request(0, 0, offset, len as u32, &[]), 0);
        let mut data = vec![0; len];
        self.s.read_exact(&mut data).unwrap();
        data
    }

    fn disconnect(mut self) {
        self.cookie += 1;
        let mut m = Vec::new();
        m.extend_from_slice(&0x2560_9513u32.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        m.extend_from_slice(&2u16.to_be_bytes());
        m.extend_from_slice(&[0u8; 20]);
        let _ = self.s.write_all(&m);
    }
}

// ── Tests ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn qemu_io_patterns_read_back_and_the_volume_is_the_image() {
    let h = Home::new();
    let size = 8 * MIB;
    let vol = h.volume(size);
    let server = Server::start(&h, EAST, &["volume", "attach", &vol], &h.path("s"));
    assert_eq!(
        server.uri,
        format!("nbd+unix:///{vol}?socket={}", server.socket.display())
    );
    let writes = [
        "write -P 0xab 0 1M",
        "write -P 0x5c 3000k 517k",
        "write -P 0x01 7M 1M",
        "write -P 0x77 1536k 4k",
        "write -z -u 7680k 256k",
    ];
    qemu_io(&server.uri, &writes);
    qemu_io(
        &server.uri,
        &[
            "read -P 0xab 0 1M",
            "read -P 0x5c 3000k 517k",
            "read -P 0x01 7M 512k",
            "read -P 0 7680k 256k",
            "read -P 0x77 1536k 4k",
            "read -P 0 1540k 1460k",
        ],
    );
    let err = server.stop_ok();
    assert!(err.contains("encrypted, read-write"), "{err}");

    // The same commands on a plain file make the image the volume now holds.
    let img = h.path("expected.raw");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(size as u64)
        .unwrap();
    qemu_io(img.to_str().unwrap(), &writes);
    assert!(h.contents(EAST, &vol, size) == std::fs::read(&img).unwrap());
    h.verify(EAST);

    // The attach was one Decrypt (EBS's, just before it) and one AttachVolume; the requests
    // served made no KMS request at all.
    let trail = h.trail(EAST);
    let at = trail.iter().position(|(n, _)| n == "AttachVolume").unwrap();
    let end = trail.iter().position(|(n, _)| n == "DetachVolume").unwrap();
    assert!(at < end);
    assert!(trail[at + 1..end].iter().all(|(n, _)| n != "Decrypt"));
    assert_eq!(trail[at - 1].0, "Decrypt");
    assert_eq!(
        trail[at - 1].1["userIdentity"]["invokedBy"],
        "ec2.amazonaws.com"
    );
    assert_eq!(trail[at].1["requestParameters"]["volumeId"], vol.as_str());
    assert_eq!(trail.iter().filter(|(n, _)| n == "AttachVolume").count(), 1);
}

#[test]
fn qemu_img_convert_compare_and_nbdcopy_both_ways() {
    let h = Home::new();
    let size = 6 * MIB;
    let vol = h.volume(size);
    // An image with data, zeros and an unaligned tail.
    let mut image = random(1, size);
    image[BLOCK..3 * BLOCK].fill(0);
    image[4 * BLOCK + 1000..4 * BLOCK + 70_000].fill(0);
    let img = h.path("image.raw");
    std::fs::write(&img, &image).unwrap();
    let img = img.to_str().unwrap();

    let server = Server::start(&h, EAST, &["volume", "attach", &vol], &h.path("s"));
    tool(
        "qemu-img",
        &["convert", "-n", "-f", "raw", "-O", "raw", img, &server.uri],
    );
    let cmp = tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", img, &server.uri],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");

    // Out with nbdcopy.
    let out = h.path("out.raw");
    tool("nbdcopy", &[&server.uri, out.to_str().unwrap()]);
    assert!(std::fs::read(&out).unwrap() == image);

    // In with nbdcopy (several connections: the server offers multi-conn), flushed at the end.
    let other = random(2, size);
    let other_img = h.path("other.raw");
    std::fs::write(&other_img, &other).unwrap();
    let info = tool("nbdinfo", &["--json", &server.uri]);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["exports"][0]["can_multi_conn"], true, "{info}");
    tool(
        "nbdcopy",
        &[
            "--flush",
            "--connections=4",
            other_img.to_str().unwrap(),
            &server.uri,
        ],
    );
    // Killed, not stopped: what nbdcopy flushed must be there without the server's own flush.
    server.kill9();
    assert!(h.contents(EAST, &vol, size) == other);
    h.verify(EAST);
}

#[test]
fn nbdinfo_map_shows_holes_for_zeroes_and_trims() {
    let h = Home::new();
    let vol = h.volume(4 * MIB);
    let server = Server::start(&h, EAST, &["volume", "attach", &vol], &h.path("s"));
    qemu_io(
        &server.uri,
        &[
            "write -P 0x42 0 3M",
            // WRITE_ZEROES without NO_HOLE: a hole.
            "write -z -u 512k 512k",
            // TRIM: a hole.
            "discard 1M 512k",
            // WRITE_ZEROES with NO_HOLE (qemu's default): stored, still reads as zeros.
            "write -z 2M 512k",
            // A zero write over part of a block keeps the rest of it.
            "write -z -u 2560k 4k",
            "read -P 0 512k 1M",
            "read -P 0 2M 516k",
            "read -P 0x42 2564k 508k",
        ],
    );
    let map = tool("nbdinfo", &["--map", "--json", &server.uri]);
    let map: Vec<Value> = serde_json::from_str(&map).unwrap();
    let extents: Vec<(u64, u64, u64)> = map
        .iter()
        .map(|e| {
            (
                e["offset"].as_u64().unwrap(),
                e["length"].as_u64().unwrap(),
                e["type"].as_u64().unwrap(),
            )
        })
        .collect();
    let (b, hole) = (BLOCK as u64, 3);
    assert_eq!(
        extents,
        vec![
            (0, b, 0),
            (b, 2 * b, hole),
            (3 * b, 3 * b, 0),
            (6 * b, 2 * b, hole)
        ],
        "{map:?}"
    );
    server.stop_ok();
    // Four blocks stored, and what the session replaced is gone (the detach collects it).
    let report = h.verify(EAST);
    assert_eq!(report["BlocksChecked"], 4, "{report}");
    assert_eq!(report["Orphans"], 0, "{report}");
}

#[test]
fn writers_are_locked_out_and_snapshots_capture_the_last_flush() {
    let h = Home::new();
    let size = 2 * MIB;
    let vol = h.volume(size);
    let server = Server::start(&h, EAST, &["volume", "attach", &vol], &h.path("s"));
    let in_use = |args: &[&str], name: &str| {
        let out = h.run(EAST, args);
        assert_eq!(out.status.code(), Some(ACCESS), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{args:?}: {err}");
    };
    in_use(&["volume", "delete", &vol], "VolumeInUse");
    let data = h.path("data");
    std::fs::write(&data, [9u8; 4096]).unwrap();
    in_use(
        &[
            "volume",
            "write",
            &vol,
            "--offset",
            "0",
            data.to_str().unwrap(),
        ],
        "VolumeInUse",
    );
    let second = h.path("second");
    let nbd = format!("unix:{}", second.display());
    in_use(&["volume", "attach", &vol, "--nbd", &nbd], "VolumeInUse");
    in_use(
        &["volume", "attach", &vol, "--read-only", "--nbd", &nbd],
        "VolumeInUse",
    );
    assert!(!second.exists(), "a refused attach leaves no socket");

    // A snapshot takes the volume as of its last flush, not the writes after it.
    let mut c = Client::connect(&server.socket, &vol);
    assert_eq!(c.write(0, &[0xaa; 64 * KIB]), 0);
    assert_eq!(c.flush(), 0);
    assert_eq!(c.write(0, &[0xbb; 64 * KIB]), 0);
    assert_eq!(c.read(0, 4), [0xbb; 4], "the session reads its own writes");
    let first = h.ok(EAST, &["snapshot", "create", &vol]);
    // A FLUSH on a second connection covers the first connection's write (multi-conn).
    let mut c2 = Client::connect(&server.socket, "");
    assert_eq!(c2.flush(), 0);
    let second_snap = h.ok(EAST, &["snapshot", "create", &vol]);
    c.disconnect();
    c2.disconnect();
    server.kill9();
    let restored = |snap: &str| {
        let v = h.ok(EAST, &["volume", "create", "--snapshot", snap]);
        h.contents(EAST, &v, 4)
    };
    assert_eq!(restored(&first), [0xaa; 4]);
    assert_eq!(restored(&second_snap), [0xbb; 4]);
    assert_eq!(h.contents(EAST, &vol, 4), [0xbb; 4]);

    // Read-only attaches share the volume and refuse writes; a snapshot attach is read-only
    // and its snapshot can't be deleted meanwhile.
    let ro1 = Server::start(
        &h,
        EAST,
        &["volume", "attach", &vol, "--read-only"],
        &h.path("r1"),
    );
    let ro2 = Server::start(
        &h,
        EAST,
        &["volume", "attach", &vol, "--read-only"],
        &h.path("r2"),
    );
    in_use(&["volume", "attach", &vol, "--nbd", &nbd], "VolumeInUse");
    let mut c = Client::connect(&ro1.socket, &vol);
    assert_eq!(c.write(0, &[1; 512]), 1, "EPERM");
    assert_eq!(c.read(0, 4), [0xbb; 4]);
    c.disconnect();
    let info: Value = serde_json::from_str(&tool("nbdinfo", &["--json", &ro2.uri])).unwrap();
    assert_eq!(info["exports"][0]["is_read_only"], true);
    let snap = Server::start(&h, EAST, &["snapshot", "attach", &first], &h.path("sn"));
    in_use(&["snapshot", "delete", &first], "InvalidSnapshot.InUse");
    qemu_io_with(
        &["-r"],
        &snap.uri,
        &["read -P 0xaa 0 64k", "read -P 0 64k 64k"],
    );
    let mut c = Client::connect(&snap.socket, &first);
    assert_eq!(c.write(0, &[1; 512]), 1, "EPERM");
    c.disconnect();
    snap.stop_ok();
    ro1.stop_ok();
    ro2.stop_ok();
    h.ok(EAST, &["snapshot", "delete", &first]);
    h.ok(EAST, &["volume", "delete", &vol]);
    // The attach locks of what was deleted go with it.
    let locks = h.path("home/regions/us-east-1/ebs/attach");
    assert!(locks.is_dir());
    for id in [&vol, &first] {
        assert!(!locks.join(format!("{id}.lock")).exists(), "{id}");
    }
    // One a refused write of a volume that never was leaves, `gc` removes.
    let nope = "vol-0123456789abcdef0";
    let out = h.run(
        EAST,
        &[
            "volume",
            "write",
            nope,
            "--offset",
            "0",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(ACCESS));
    h.ok(EAST, &["gc"]);
    assert!(!locks.join(format!("{nope}.lock")).exists());
    h.verify(EAST);
}

#[test]
fn hostile_clients_are_disconnected_and_the_server_serves_on() {
    let h = Home::new();
    let size = 2 * MIB;
    let vol = h.volume(size);
    let server = Server::start(&h, EAST, &["volume", "attach", &vol], &h.path("s"));
    qemu_io(&server.uri, &["write -P 0x3c 0 2M"]);
    let sock = &server.socket;
    let hostile: Vec<Vec<u8>> = vec![
        // Not NBD at all.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // Fixed newstyle, then an option claiming 4 GiB of data.
        [
            &1u32.to_be_bytes()[..],
            b"IHAVEOPT",
            &7u32.to_be_bytes(),
            &u32::MAX.to_be_bytes(),
        ]
        .concat(),
        // Garbage.
        random(7, 64 * KIB),
    ];
    for bytes in &hostile {
        let mut s = UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(bytes);
        let mut rest = Vec::new();
        // The server hangs up (after its greeting).
        let _ = s.read_to_end(&mut rest);
        assert!(rest.len() <= 18 + 64, "{} bytes", rest.len());
    }
    // After a good handshake: a WRITE of 4 GiB, then a request with a bad magic.
    for bad in [
        [
            &0x2560_9513u32.to_be_bytes()[..],
            &[0, 0, 0, 1],
            &[0; 16],
            &u32::MAX.to_be_bytes(),
            &[0xee; 4096],
        ]
        .concat(),
        [0xffu8; 28].to_vec(),
    ] {
        let mut c = Client::connect(sock, &vol);
        c.s.write_all(&bad).unwrap();
        let mut rest = Vec::new();
        let _ = c.s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no reply, just a hang-up");
    }
    // Requests out of range get errors and nothing changes.
    let mut c = Client::connect(sock, &vol);
    assert_eq!(c.write(size as u64 - 512, &[1; 1024]), 28, "ENOSPC");
    assert_eq!(c.request(0, 0, u64::MAX - 100, 512, &[]), 22, "EINVAL");
    c.disconnect();
    // More connections than the server takes at once: the extra ones are closed, the rest work.
    let crowd: Vec<UnixStream> = (0..24)
        .map(|_| UnixStream::connect(sock).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(crowd);
    std::thread::sleep(Duration::from_millis(300));
    qemu_io(&server.uri, &["read -P 0x3c 0 2M"]);
    let err = server.stop_ok();
    assert!(err.contains("dropped"), "{err}");
    assert!(h.contents(EAST, &vol, size).iter().all(|&b| b == 0x3c));
    h.verify(EAST);
}

#[test]
fn tcp_serves_on_loopback_only() {
    let h = Home::new();
    let vol = h.volume(MIB);
    for addr in [
        "0.0.0.0:10809",
        "192.0.2.1:10809",
        "[::]:10809",
        "nowhere",
        "unix:",
    ] {
        let out = h.run(EAST, &["volume", "attach", &vol, "--nbd", addr]);
        assert_eq!(out.status.code(), Some(2), "{addr}");
        assert!(out.stdout.is_empty(), "{addr}");
    }
    // Port 0: the system picks one, and the URI says which.
    let server = Server::start_at(&h, EAST, &["volume", "attach", &vol], "127.0.0.1:0");
    assert!(server.uri.starts_with("nbd://127.0.0.1:"), "{}", server.uri);
    assert!(server.uri.ends_with(&format!("/{vol}")), "{}", server.uri);
    qemu_io(
        &server.uri,
        &["write -P 0x61 4k 64k", "read -P 0x61 4k 64k"],
    );
    server.stop_ok();
    assert_eq!(h.contents(EAST, &vol, 8192)[4096..], [0x61; 4096]);
}

/// A client writes generation g over the whole volume (byte g), then flushes, g = 1, 2, …,
/// noting each flush the server acknowledged. The server is killed with SIGKILL at some moment:
/// the volume must then be exactly one generation, the last acknowledged flush or the one
/// after it (whose flush the server made but could not acknowledge), and `verify` clean.
#[test]
fn kill_9_in_a_write_stream_leaves_the_volume_at_a_flush_point() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let h = Home::new();
    let size = 2 * MIB;
    let vol = h.volume(size);
    let byte = |g: u32| (g % 250 + 1) as u8;
    // Generation 0 is what the round began with.
    let mut prev = 0u8;
    for (round, delay_ms) in [300u64, 700, 1200].into_iter().enumerate() {
        let socket = h.path(&format!("s{round}"));
        let server = Server::start(&h, EAST, &["volume", "attach", &vol], &socket);
        let acked = Arc::new(AtomicU32::new(0));
        let writer = {
            let (acked, vol) = (acked.clone(), vol.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket, &vol);
                for g in 1..10_000u32 {
                    let data = vec![byte(g); size];
                    let written = c.try_request(1, 0, 0, size as u32, &data);
                    if !matches!(written, Ok(0)) || !matches!(c.try_request(3, 0, 0, 0, &[]), Ok(0))
                    {
                        return;
                    }
                    acked.store(g, Ordering::SeqCst);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.kill9();
        let _ = writer.join();
        let last = acked.load(Ordering::SeqCst);
        let data = h.contents(EAST, &vol, size);
        let v = data[0];
        assert!(
            data.iter().all(|&b| b == v),
            "round {round}: the volume mixes generations"
        );
        let gen = |g: u32| if g == 0 { prev } else { byte(g) };
        let allowed = [gen(last), gen(last + 1)];
        eprintln!(
            "round {round}: killed after {last} acknowledged flushes; the volume holds byte {v}"
        );
        assert!(
            allowed.contains(&v),
            "round {round}: {last} flushes acknowledged, the volume holds byte {v}, not one of {allowed:?}"
        );
        h.verify(EAST);
        prev = v;
    }
    // What the killed sessions wrote after their last flush is garbage for gc, no more.
    h.ok(EAST, &["gc"]);
    let report = h.verify(EAST);
    assert_eq!(report["Orphans"], 0, "{report}");
    assert_eq!(report["TemporaryFiles"], 0, "{report}");
}

#[test]
fn ext4_on_a_volume_survives_snapshot_copy_and_restore_in_another_region() {
    let h = Home::new();
    let size = 24 * MIB;
    let vol = h.volume(size);
    let files: Vec<(String, Vec<u8>)> = vec![
        ("hello.txt".into(), b"hello from a cofre volume\n".to_vec()),
        ("random.bin".into(), random(3, 1_300_000)),
        ("small.bin".into(), random(4, 777)),
    ];
    let server = Server::start(&h, EAST, &["volume", "attach", &vol], &h.path("s"));
    let made_through_fuse = match Fuse::mount(&server.uri, &h.path("fuse")) {
        Ok(fuse) => {
            let dev = fuse.file();
            tool("mkfs.ext4", &["-q", "-F", dev.to_str().unwrap()]);
            let mnt = h.path("mnt");
            std::fs::create_dir(&mnt).unwrap();
            let mounted = Command::new("mount")
                .args(["-o", "loop"])
                .arg(&dev)
                .arg(&mnt)
                .output()
                .unwrap();
            if mounted.status.success() {
                for (name, data) in &files {
                    std::fs::write(mnt.join(name), data).unwrap();
                }
                tool("umount", &[mnt.to_str().unwrap()]);
            } else {
                eprintln!(
                    "ext4 test: a loop mount is not permitted here ({}); the files go in with debugfs -w instead",
                    String::from_utf8_lossy(&mounted.stderr).trim()
                );
                for (name, data) in &files {
                    let src = h.path(name);
                    std::fs::write(&src, data).unwrap();
                    tool(
                        "debugfs",
                        &[
                            "-w",
                            "-R",
                            &format!("write {} {name}", src.display()),
                            dev.to_str().unwrap(),
                        ],
                    );
                }
            }
            // fsync: nbdfuse sends NBD_CMD_FLUSH.
            std::fs::File::open(&dev).unwrap().sync_all().unwrap();
            tool("e2fsck", &["-fn", dev.to_str().unwrap()]);
            fuse.unmount();
            true
        }
        Err(why) => {
            eprintln!("ext4 test: FUSE is not available here ({why}); the filesystem is made in a file and written into the export with qemu-img convert instead");
            let img = h.path("fs.raw");
            let src = h.path("fs-src");
            std::fs::create_dir(&src).unwrap();
            for (name, data) in &files {
                std::fs::write(src.join(name), data).unwrap();
            }
            std::fs::File::create(&img)
                .unwrap()
                .set_len(size as u64)
                .unwrap();
            tool(
                "mkfs.ext4",
                &[
                    "-q",
                    "-F",
                    "-d",
                    src.to_str().unwrap(),
                    img.to_str().unwrap(),
                ],
            );
            tool(
                "qemu-img",
                &[
                    "convert",
                    "-n",
                    "-f",
                    "raw",
                    "-O",
                    "raw",
                    img.to_str().unwrap(),
                    &server.uri,
                ],
            );
            false
        }
    };
    // Snapshot while attached (captures the last flush: every write above was flushed by the
    // unmount, or by qemu-img), then detach.
    let snap = h.ok(EAST, &["snapshot", "create", &vol]);
    server.stop_ok();

    // Copy to another region under that region's key, and restore there.
    let copy = h.ok(WEST, &["snapshot", "copy", &snap, "--source-region", EAST]);
    let copied: Value =
        serde_json::from_str(&h.ok(WEST, &["--output", "json", "snapshot", "describe", &copy]))
            .unwrap();
    let key = copied["Snapshots"][0]["KmsKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.contains(":eu-west-1:"), "{key}");
    let restored = h.ok(WEST, &["volume", "create", "--snapshot", &copy]);
    let server = Server::start(
        &h,
        WEST,
        &["volume", "attach", &restored, "--read-only"],
        &h.path("w"),
    );
    // Check it through NBD: through FUSE if that worked before, else out with nbdcopy.
    let (dev, fuse) = if made_through_fuse {
        let fuse = Fuse::mount(&server.uri, &h.path("fuse2")).unwrap();
        (fuse.file(), Some(fuse))
    } else {
        let out = h.path("restored.raw");
        tool("nbdcopy", &[&server.uri, out.to_str().unwrap()]);
        (out, None)
    };
    let fsck = tool("e2fsck", &["-fn", dev.to_str().unwrap()]);
    assert!(fsck.contains(&format!("{}/", 11 + files.len())), "{fsck}");
    for (name, data) in &files {
        let out = h.path(&format!("back-{name}"));
        tool(
            "debugfs",
            &[
                "-R",
                &format!("dump /{name} {}", out.display()),
                dev.to_str().unwrap(),
            ],
        );
        assert!(std::fs::read(&out).unwrap() == *data, "{name} differs");
    }
    if let Some(f) = fuse {
        f.unmount();
    }
    server.stop_ok();
    h.verify(EAST);
    h.verify(WEST);
}

/// An export as a file, by nbdfuse.
struct Fuse {
    dir: PathBuf,
    child: Child,
}

impl Fuse {
    /// Mounts `uri` at `dir` (created); Err says why FUSE can't be used here.
    fn mount(uri: &str, dir: &Path) -> Result<Fuse, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("nbdfuse")
            .arg(dir)
            .arg(uri)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nbdfuse: {e} (apt-get install libnbd-bin)"))?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if dir.join("nbd").exists() {
                return Ok(Fuse {
                    dir: dir.to_owned(),
                    child,
                });
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return Err(format!("nbdfuse exited with {status}: {}", err.trim()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        Err("nbdfuse did not mount within 20 s".into())
    }

    fn file(&self) -> PathBuf {
        self.dir.join("nbd")
    }

    fn unmount(mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .status();
        let _ = Command::new("umount").arg(&self.dir).status();
        wait_for(&mut self.child, Duration::from_secs(30));
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
