//! GnuPG in the interop sandbox: a GNUPGHOME whose scdaemon goes through PC/SC with a
//! scripted pinentry, `gpg --edit-card` driven through `--command-fd` / `--status-fd`, and
//! stopping gpg-agent and scdaemon so the card is free again.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::interop::Sandbox;

/// A pinentry speaking just enough Assuan: the Admin PIN when the description or prompt
/// mentions it ("|A|Please enter the Admin PIN"), the user PIN otherwise ("Please unlock the
/// card").
const PINENTRY: &str = r#"#!/bin/bash
echo "OK scripted pinentry"
desc=""
while IFS= read -r line; do
  case "$line" in
    SETDESC*|SETPROMPT*|SETTITLE*) desc="$desc $line"; echo OK ;;
    GETPIN) if [[ "$desc" == *Admin* ]]; then echo "D @ADMIN@"; else echo "D @USER@"; fi
            echo OK; desc="" ;;
    BYE) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
"#;

/// A GNUPGHOME for scdaemon over PC/SC (no internal CCID driver, shared access) with the
/// scripted pinentry.
pub fn home(sb: &Sandbox, user_pin: &str, admin_pin: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let home = sb.dir().join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let pinentry = sb.dir().join("pinentry.sh");
    let script = PINENTRY.replace("@ADMIN@", admin_pin).replace("@USER@", user_pin);
    fs::write(&pinentry, script).unwrap();
    fs::set_permissions(&pinentry, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(home.join("scdaemon.conf"), "disable-ccid\npcsc-shared\n").unwrap();
    fs::write(home.join("gpg-agent.conf"), format!("pinentry-program {}\n", pinentry.display()))
        .unwrap();
    home
}

pub fn gpg(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("gpg");
    cmd.env("GNUPGHOME", home).args(args);
    cmd
}

/// Stops gpg-agent and scdaemon, so that the card is free for others.
pub fn release(sb: &Sandbox, home: &Path) {
    let _ = sb.run(Command::new("gpgconf").env("GNUPGHOME", home).args(["--kill", "all"]));
}

/// Runs `gpg --edit-card`, typing `commands` at the card-edit prompt and answering the other
/// prompts from `answers` (status keyword -> answer); returns the status lines. A prompt
/// asked again and again, an unknown prompt or 60 s of silence fail the test.
pub fn edit_card(
    home: &Path,
    extra: &[&str],
    commands: &[&str],
    answers: &[(&str, &str)],
) -> String {
    let mut child = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--no-tty", "--command-fd", "0", "--status-fd", "1"])
        .args(extra)
        .arg("--edit-card")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gpg starts");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let answers: HashMap<&str, &str> = answers.iter().copied().collect();
    let mut commands = commands.iter();
    let mut asked: HashMap<String, usize> = HashMap::new();
    let mut status = String::new();
    loop {
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("gpg --edit-card silent for 60 s:\n{status}");
            }
        };
        status.push_str(&line);
        status.push('\n');
        let mut words = line.split_whitespace();
        if words.next() != Some("[GNUPG:]") {
            continue;
        }
        let (Some(kind @ ("GET_LINE" | "GET_BOOL" | "GET_HIDDEN")), Some(key)) =
            (words.next(), words.next())
        else {
            continue;
        };
        let count = asked.entry(key.to_owned()).or_default();
        *count += 1;
        let answer = if key == "cardedit.prompt" {
            commands.next().copied().unwrap_or("quit")
        } else if let Some(answer) = answers.get(key).filter(|_| *count <= 6) {
            answer
        } else {
            let _ = child.kill();
            panic!("gpg --edit-card asked {kind} {key} ({count} times):\n{status}");
        };
        status.push_str(&format!("> {answer}\n"));
        writeln!(stdin, "{answer}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("$ gpg --edit-card {commands:?}\n{status}{stderr}");
    assert!(out.status.success(), "gpg --edit-card failed: {}\n{status}\n{stderr}", out.status);
    status
}
