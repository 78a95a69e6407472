//! The `ccid:` backend against a USB CCID reader written by others: QEMU's usb-ccid, in a
//! guest booted under TCG, with our simulated PIV card served through ccid-card-passthru
//! (VSCard). Everything is in tests/qemu-ccid/run.sh; this test runs it when its
//! prerequisites are there (qemu-system-x86, busybox-static, the kernel package from Debian's
//! apt lists) and otherwise says why it skips, unless `SCARD_REQUIRE_INTEROP=1` (set by
//! .ci/run after installing them), which makes a skip a failure.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// run.sh's exit status for "a prerequisite is missing".
const SKIPPED: i32 = 77;

#[test]
fn qemu_usb_ccid_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let script = root.join("tests/qemu-ccid/run.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).stdin(Stdio::null());
    // The binaries `cargo test --workspace` built next to this test: `scard` and the
    // qemu_piv example (run.sh builds them itself when they are missing).
    if let Ok(scard) = scard_tests::interop::scard_binary() {
        let examples = scard.with_file_name("examples").join("qemu_piv");
        if examples.is_file() {
            cmd.env("SCARD_BIN", &scard).env("QEMU_PIV_BIN", &examples);
        }
    }
    let started = Instant::now();
    let out = cmd.output().expect("bash runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("----- {} ({:.1} s) -----\n{text}", script.display(), started.elapsed().as_secs_f64());
    if out.status.code() == Some(SKIPPED) {
        let reason = text.lines().find(|l| l.starts_with("SKIP: ")).unwrap_or("SKIP: ?");
        if std::env::var("SCARD_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!(
                "qemu_usb_ccid_end_to_end: prerequisites missing with SCARD_REQUIRE_INTEROP=1: {reason}"
            );
        }
        println!("skipped qemu_usb_ccid_end_to_end: {reason}");
        return;
    }
    assert!(out.status.success(), "tests/qemu-ccid/run.sh failed: {}", out.status);
    assert!(text.contains("=== ccid_e2e PASS"), "no PASS line from the guest");
    assert!(text.contains("qemu_piv: signature verified"), "the signature was not verified");
}
