//! Disk images made and checked by qemu's own tools (Debian package qemu-utils; `.ci/run`
//! installs it): a raw image and a qcow2 image written with qemu-io survive a trip through
//! `cofre encrypt` / `cofre decrypt`, as `qemu-img compare` and `qemu-img check` judge.

use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is required (apt-get install qemu-utils): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cofre(home: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cofre"))
        .arg("--home")
        .arg(home)
        .args(["--region", "us-east-1", "--quiet"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cofre {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn qemu_images_survive_encrypt_and_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let home = dir.path().join("home");
    let key = cofre(&home, &["key", "create", "--alias", "alias/images"]);

    // A raw image with data at unaligned places and a hole, written by qemu-io.
    run("qemu-img", &["create", "-f", "raw", &p("disk.raw"), "9M"]);
    for cmd in [
        "write -P 0xab 0 1M",
        "write -P 0x5c 3000k 517k",
        "write -P 0x01 8M 1M",
    ] {
        run("qemu-io", &["-f", "raw", "-c", cmd, &p("disk.raw")]);
    }
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            &p("disk.raw"),
            &p("disk.qcow2"),
        ],
    );

    for (name, fmt) in [("disk.raw", "raw"), ("disk.qcow2", "qcow2")] {
        let sealed = p(&format!("{name}.cofre"));
        let back = p(&format!("{name}.back"));
        cofre(
            &home,
            &[
                "encrypt",
                "-k",
                &key,
                "--chunk-size",
                "64KiB",
                "-o",
                &sealed,
                &p(name),
            ],
        );
        // The sealed file is not an image qemu recognises as the original format.
        let info = run("qemu-img", &["info", "--output", "json", &sealed]);
        assert!(info.contains("\"format\": \"raw\""), "{info}");
        cofre(&home, &["decrypt", "-o", &back, &sealed]);
        if fmt == "qcow2" {
            run("qemu-img", &["check", "-f", "qcow2", &back]);
        }
        let cmp = run(
            "qemu-img",
            &["compare", "-f", fmt, "-F", "raw", &back, &p("disk.raw")],
        );
        assert!(cmp.contains("Images are identical"), "{name}: {cmp}");
    }
}
