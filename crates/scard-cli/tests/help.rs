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

/// Every command that reports a result takes --json; the exceptions are named here with the
/// reason (a served card, generated scripts, and watch's own JSON lines).
#[test]
fn every_reporting_command_takes_json() {
    let help = scard(&["--help"]);
    let exceptions = ["sim", "completions", "man", "help"];
    let mut checked = 0;
    // The command list of `scard --help`: "  name   description" lines under "Commands:".
    let commands = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    for name in commands.lines().filter_map(|l| l.split_whitespace().next()) {
        if exceptions.contains(&name) {
            continue;
        }
        let groups: &[&[&str]] = match name {
            "pin" => &[&["pin", "verify"], &["pin", "change"], &["pin", "unblock"]],
            "cert" => &[&["cert", "import"], &["cert", "export"], &["cert", "delete"]],
            _ => &[&[name]],
        };
        for args in groups {
            let mut args = args.to_vec();
            args.push("--help");
            let text = scard(&args);
            let flag = if name == "watch" { "--events" } else { "--json" };
            assert!(text.contains(flag), "scard {args:?} has no {flag}:\n{text}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} commands found in:\n{help}");
}

/// Colour only on a terminal: `script` (util-linux, Essential on Debian) gives the command a
/// pseudo-terminal; a pipe and NO_COLOR get plain text.
#[test]
fn colour_only_on_a_terminal() {
    let bin = env!("CARGO_BIN_EXE_scard");
    let run = |no_color: bool| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("{bin} conformance --sim gids"), "/dev/null"]);
        cmd.env("TERM", "xterm");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = cmd.output().expect("script (util-linux) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run(false);
    assert!(coloured.contains("\u{1b}[32mpass  \u{1b}[0m"), "{coloured}");
    let plain = run(true);
    assert!(plain.contains("pass") && !plain.contains('\u{1b}'), "{plain}");
    let piped = Command::new(bin).args(["conformance", "--sim", "gids"]).output().unwrap();
    let piped = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.contains("pass") && !piped.contains('\u{1b}'), "{piped}");
}
