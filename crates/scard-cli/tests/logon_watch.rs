//! `scard watch` as a process: a simulated reader's card is propagated at start, entries a
//! crashed run left are cleaned, and SIGTERM stops the service, which removes what it
//! propagated. (Insertion and removal through in-process reader events, with the removal
//! command, are tested in `watch_cmd`'s unit tests.)

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // A write in progress (a dot-file renamed when complete) is not a file yet.
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn watch_propagates_a_sim_card_and_cleans_up_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("scard-watch-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let my = dir.join("store/my");
    std::fs::create_dir_all(&my).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    // What a crashed earlier run left behind.
    std::fs::write(my.join("AA.der"), b"old").unwrap();
    std::fs::write(
        my.join("AA.json"),
        br#"{"reader":"sim:piv","card_id":"00","container":"c","key_spec":"AT_KEYEXCHANGE","key_name":"k","thumbprint":"AA","subject":"CN=old","upn":null}"#,
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["watch", "--reader", "sim:gids", "--propagate", dir.join("store").to_str().unwrap()])
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env_remove("SCARD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = files(&my);
        if now.len() == 2 && !now.contains(&"AA.der".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "not propagated: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = files(&my);
    assert!(names[0].ends_with(".der") && names[1].ends_with(".json"));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(files(&my).is_empty(), "{log}");
    assert!(log.contains("left by an earlier run"), "{log}");
    assert!(log.contains("sim:gids: card"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
