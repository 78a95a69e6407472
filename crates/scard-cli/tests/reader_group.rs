//! `--reader group:<group>`: the first reader with a card in a reader group (the built-in
//! groups and the user groups of the configuration file), through the sim: backend.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A configuration file in a directory of its own, removed when dropped.
struct Config {
    dir: PathBuf,
    file: PathBuf,
}

impl Config {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(&file, text).unwrap();
        Self { dir, file }
    }

    fn scard(&self, args: &[&str]) -> Output {
        scard(&self.file, args)
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scard(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scard"))
        .env("SCARD_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn info_connects_to_the_first_reader_of_the_group() {
    // Patterns are in order of preference: sim:gids first, although sim:piv is listed first.
    let config = Config::new(
        "group-info",
        "[groups]\ndemo = [\"sim:gids\", \"sim:piv\"]\nglobs = [\"sim:p*\"]\n",
    );
    let out = config.scard(&["info", "--reader", "group:demo", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["reader"], "sim:gids");
    // The same group listed: its plain sim: members were created, in the group's order.
    let out = config.scard(&["readers", "--reader", "group:demo", "--group", "demo", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    let names: Vec<&str> =
        v["readers"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sim:gids", "sim:piv"]);
    assert!(v["readers"].as_array().unwrap().iter().all(|r| r["card"] == true));
    // Text output.
    let out = config.scard(&["info", "--reader", "group:demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Reader       sim:gids\n"));
    // A glob creates nothing: with no sim: reader named, the group has no reader.
    let out = config.scard(&["info", "--reader", "group:globs"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: no reader with a card in group globs (its readers: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_group_without_a_card_is_named_with_its_readers() {
    let config = Config::new("group-empty", "[groups]\nnocard = [\"pcsc:Nothing here*\"]\n");
    let out = config.scard(&["info", "--reader", "group:nocard"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: no reader with a card in group nocard (its readers: none)"
    );
    // Built-in groups work the same way (no sim: reader exists unless named).
    let out = config.scard(&["info", "--reader", "group:sim", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("in group sim"), "{}", stderr(&out));
}

#[test]
fn unknown_groups_and_bare_names_are_bad_input() {
    let config = Config::new("group-bad", "[groups]\nwork = [\"sim:piv\"]\n");
    let out = config.scard(&["info", "--reader", "group:nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("group nope"), "{}", stderr(&out));
    assert!(stderr(&out).contains("work"), "the known groups are listed: {}", stderr(&out));
    // A bare group name is not a reader name; the message says how to name a group.
    let out = config.scard(&["info", "--reader", "work"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("group:GROUP"), "{}", stderr(&out));
    // The sim: members of a group must be valid reader names.
    let config = Config::new("group-badsim", "[groups]\nwatch = [\"sim:smartwatch\"]\n");
    let out = config.scard(&["info", "--reader", "group:watch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn help_documents_the_group_form() {
    let out = Command::new(env!("CARGO_BIN_EXE_scard")).args(["info", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("group:<group>"), "{help}");
}
