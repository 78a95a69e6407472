//! `scard readers` and `scard info` through the sim: and vpcd: backends, the vpcd one with our
//! own simulated card (`scard sim`) connecting to our own listening vpcd reader.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn scard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scard"))
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn sim_reader_lists_and_connects() {
    let out = scard().args(["readers", "--reader", "sim:piv", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v = json(&out);
    assert_eq!(v["readers"][0]["name"], "sim:piv");
    assert_eq!(v["readers"][0]["card"], true);
    assert_eq!(v["readers"][0]["atr"], "3B9A13810180587363617264504956F9");
    let out = scard().args(["info", "--reader", "sim:gids", "--json"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(json(&out)["reader"], "sim:gids");
}

#[test]
fn sim_state_file_persists_between_processes() {
    let dir = std::env::temp_dir().join(format!("scard-readers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("piv.json");
    let name = format!("sim:piv:{}", state.display());
    let out = scard().args(["info", "--reader", &name]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(state.exists(), "state saved when the connection ended");
    let first = std::fs::read_to_string(&state).unwrap();
    let out = scard().args(["info", "--reader", &name]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&state).unwrap(), first, "the same card came back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_reader_names_exit_2() {
    for name in ["bogus", "sim:", "vpcd:nohost", "sim:smartwatch"] {
        let out = scard().args(["info", "--reader", name]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    }
}

#[test]
fn vpcd_reader_with_our_simulated_card() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reader = format!("vpcd:127.0.0.1:{port}");
    // The reader listens and waits for a card ...
    let info = scard()
        .args(["info", "--reader", &reader, "--wait", "20", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ... which connects to it like to vsmartcard's vpcd.
    let mut card = scard()
        .args(["sim", "piv", "--vpcd", &format!("127.0.0.1:{port}"), "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = info.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["reader"], reader);
    assert_eq!(v["protocol"], "T1");
    assert_eq!(v["atr"], "3B9A13810180587363617264504956F9");
    // The reader closed when info ended: the card saw vpcd go away and exits by itself.
    let status = card.wait().unwrap();
    assert!(status.success());
    let mut text = String::new();
    std::io::Read::read_to_string(card.stdout.as_mut().unwrap(), &mut text).unwrap();
    assert!(text.contains("vpcd closed the connection"), "{text}");
}

#[test]
fn vpcd_reader_without_card_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = scard()
        .args(["info", "--reader", &format!("vpcd:127.0.0.1:{port}"), "--wait", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no card present"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reader_groups_from_the_configuration_file() {
    let dir = std::env::temp_dir().join(format!("scard-groups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "[groups]\nmine = [\"sim:p*\"]\nothers = [\"pcsc:Nothing*\"]\n")
        .unwrap();
    let list = |group: &str| {
        let out = scard()
            .env("SCARD_CONFIG", &config)
            .args(["readers", "--reader", "sim:piv", "--group", group, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{group}: {}", String::from_utf8_lossy(&out.stderr));
        let v = json(&out);
        v["readers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(list("all").contains(&"sim:piv".to_owned()));
    assert_eq!(list("mine"), ["sim:piv"]);
    assert_eq!(list("sim"), ["sim:piv"]);
    assert!(list("others").is_empty());
    // An unknown group, and a broken configuration file, are bad input naming what is wrong.
    let out =
        scard().env("SCARD_CONFIG", &config).args(["readers", "--group", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("group nope"));
    std::fs::write(&config, "[groups]\nmine = 3\n").unwrap();
    let out = scard().env("SCARD_CONFIG", &config).args(["readers"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
