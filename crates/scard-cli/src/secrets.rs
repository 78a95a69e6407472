//! Where PINs and admin credentials come from: an environment variable named on the command
//! line (`--pin-env VAR`), standard input when it is not a terminal (one secret per line, in
//! the order the command asks for them), or a prompt on the terminal with echo off. Never the
//! command line itself. Values are zeroized when dropped and never printed.

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

use scard_minidriver::Pin;
use zeroize::Zeroizing;

/// Reads secrets for one command.
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    /// Set when standard input was used for data (`--in -`): it cannot also give secrets.
    stdin_is_data: bool,
}

impl Secrets {
    pub(crate) fn new(stdin_is_data: bool) -> Self {
        Self { stdin_is_data }
    }

    /// One secret: from `$env_var` when given, else a line of standard input when it is not a
    /// terminal, else a prompt (`what` names it; `confirm` asks twice on a terminal).
    pub(crate) fn get(
        &mut self,
        what: &str,
        env_var: Option<&str>,
        confirm: bool,
    ) -> Result<Pin, String> {
        if let Some(var) = env_var {
            return match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Pin::new(Zeroizing::new(value).as_bytes())),
                Ok(_) => Err(format!("{what}: environment variable {var} is empty")),
                Err(_) => Err(format!("{what}: environment variable {var} is not set")),
            };
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            if self.stdin_is_data {
                return Err(format!(
                    "{what}: standard input carries the data; give the secret with an --…-env option"
                ));
            }
            let mut line = Zeroizing::new(String::new());
            let n = stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("{what}: reading standard input: {e}"))?;
            if n == 0 {
                return Err(format!("{what}: standard input ended before the secret"));
            }
            let value = line.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(format!("{what}: empty line on standard input"));
            }
            return Ok(Pin::new(value.as_bytes()));
        }
        let first = prompt(what)?;
        if confirm {
            let again = prompt(&format!("{what} (again)"))?;
            if first.expose() != again.expose() {
                return Err(format!("{what}: the two entries differ"));
            }
        }
        Ok(first)
    }
}

/// Prompts on the terminal with echo off (through `stty`, so no unsafe terminal code here).
fn prompt(what: &str) -> Result<Pin, String> {
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(|e| {
        format!(
            "{what}: no terminal to ask on ({e}); use --pin-env / --admin-env or standard input"
        )
    })?;
    let stty = |arg: &str| {
        let _ = Command::new("stty")
            .arg(arg)
            .stdin(tty.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .status();
    };
    let mut out = &tty;
    let _ = write!(out, "{what}: ");
    let _ = out.flush();
    stty("-echo");
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    stty("echo");
    let _ = writeln!(out);
    read.map_err(|e| format!("{what}: reading the terminal: {e}"))?;
    let value = line.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{what}: nothing entered"));
    }
    Ok(Pin::new(value.as_bytes()))
}
