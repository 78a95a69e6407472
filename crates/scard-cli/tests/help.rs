//! `scard --help` documents the exit statuses; `scard completions` and `scard man` are
//! generated from the command definitions and cover every command.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::Command;

fn scard(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scard")).args(args).output().unwrap();
    assert!(out.status.success(), "scard {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_completions_and_man_page() {
    let help = scard(&["--help"]);
    assert!(help.contains("Exit status: 0 success; 1 failure"), "{help}");
    let commands =
        ["demo", "info", "pin", "keygen", "cert", "sign", "decrypt", "agree", "logon-check"];
    for shell in ["bash", "zsh", "fish"] {
        let script = scard(&["completions", shell]);
        for command in commands {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    let man = scard(&["man"]);
    assert!(man.contains(".TH scard 1"), "{man}");
    for command in commands {
        assert!(man.contains(&format!(".TH scard-{command} ")), "man page lacks {command}");
    }
}
