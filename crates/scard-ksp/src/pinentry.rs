//! PINs from a pinentry program (GnuPG's pinentry-curses, -gtk, -qt, -gnome3, -mac) over its
//! Assuan protocol, one program run per PIN (pinentry manual §3: "It is reasonable to exec
//! the PINENTRY prior to a request").
//!
//! Conversation: the program greets with `OK`; we send `OPTION ttyname=` / `OPTION ttytype=`
//! (for the curses variant), `SETTIMEOUT`, `SETTITLE`, `SETDESC`, `SETPROMPT`, then `GETPIN`,
//! which is answered with `D <value>` lines and `OK`, or `ERR <code> <text>` (code 99,
//! GPG_ERR_CANCELED, in its low 16 bits: the user cancelled), then `BYE`. Arguments and data
//! are percent-escaped (`%25`, `%0A`, `%0D`). The codec ([`escape`], [`parse_reply`]) is
//! sans-IO; [`PinentryPinSource`] is the thin shell around a child process.
//!
//! The value passes only through zeroized buffers (our line buffer, the decoded data); the
//! program's stdout is read without a `BufReader` so no copy lingers in a buffer we do not
//! wipe. A watchdog thread kills a program that does not finish in time.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use scard_minidriver::Pin;
use zeroize::Zeroizing;

use crate::error::{KspError, Result};
use crate::pin::{PinPrompt, PinRequest, PinSource};

/// GPG_ERR_CANCELED (libgpg-error `err-codes.h`): the user pressed Cancel.
const GPG_ERR_CANCELED: u32 = 99;
/// GPG_ERR_FULLY_CANCELED: cancelled, do not ask again.
const GPG_ERR_FULLY_CANCELED: u32 = 198;
/// GPG_ERR_TIMEOUT: the pinentry's own timeout (SETTIMEOUT) passed.
const GPG_ERR_TIMEOUT: u32 = 62;
/// Assuan lines are at most 1000 bytes including the line feed (Assuan manual §2.1).
const MAX_LINE: usize = 1000;

/// One reply line of an Assuan server. `Debug` never shows data lines (they carry PINs).
#[derive(PartialEq, Eq)]
pub enum Reply {
    /// `OK [text]`.
    Ok(String),
    /// `ERR <code> [text]`.
    Err {
        /// The gpg-error code (source in the high byte, code in the low 16 bits).
        code: u32,
        /// The text.
        message: String,
    },
    /// `D <data>`, decoded (may hold the PIN: zeroized).
    Data(Zeroizing<Vec<u8>>),
    /// `S <keyword> [args]`.
    Status(String),
    /// `# comment`.
    Comment,
    /// `INQUIRE <keyword> [args]`.
    Inquire(String),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Ok(text) => write!(f, "OK {text:?}"),
            Reply::Err { code, message } => write!(f, "ERR {code} {message:?}"),
            Reply::Data(data) => write!(f, "D (REDACTED, {} bytes)", data.len()),
            Reply::Status(text) => write!(f, "S {text:?}"),
            Reply::Comment => f.write_str("#"),
            Reply::Inquire(text) => write!(f, "INQUIRE {text:?}"),
        }
    }
}

/// Percent-escapes an argument for a command line: `%`, CR, LF and the other control
/// characters become `%XX` (Assuan manual §2.1).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || (c as u32) < 0x20 {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes `%XX` escapes of a data line.
pub fn unescape(data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    decode(data).map_err(codec_error)
}

/// Parses one reply line (without its line feed).
pub fn parse_reply(line: &[u8]) -> Result<Reply> {
    parse_line(line).map_err(codec_error)
}

fn codec_error(reason: String) -> KspError {
    KspError::PinSource { source_name: "pinentry", reason }
}

fn decode(data: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        if b == b'%' {
            let hex = data.get(i + 1..i + 3).ok_or("truncated % escape")?;
            let text = std::str::from_utf8(hex).map_err(|_| "bad % escape")?;
            let value = u8::from_str_radix(text, 16).map_err(|_| "bad % escape")?;
            out.push(value);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

fn parse_line(line: &[u8]) -> std::result::Result<Reply, String> {
    let text_of = |rest: &[u8]| String::from_utf8_lossy(rest).into_owned();
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(at) => (line.get(..at).unwrap_or_default(), line.get(at + 1..).unwrap_or_default()),
        None => (line, &[][..]),
    };
    match word {
        b"OK" => Ok(Reply::Ok(text_of(rest))),
        b"ERR" => {
            let (code, message) = match rest.iter().position(|&b| b == b' ') {
                Some(at) => {
                    (rest.get(..at).unwrap_or_default(), rest.get(at + 1..).unwrap_or_default())
                }
                None => (rest, &[][..]),
            };
            let code = std::str::from_utf8(code)
                .ok()
                .and_then(|c| c.parse::<u32>().ok())
                .ok_or_else(|| format!("ERR line without a code: {}", text_of(rest)))?;
            Ok(Reply::Err { code, message: text_of(message) })
        }
        b"D" => decode(rest).map(Reply::Data),
        b"S" => Ok(Reply::Status(text_of(rest))),
        b"INQUIRE" => Ok(Reply::Inquire(text_of(rest))),
        _ if line.first() == Some(&b'#') => Ok(Reply::Comment),
        _ => Err(format!("unexpected line from pinentry: {:?}", text_of(word))),
    }
}

/// A pinentry program as a [`PinSource`].
#[derive(Debug, Clone)]
pub struct PinentryPinSource {
    program: PathBuf,
    args: Vec<OsString>,
    ttyname: Option<String>,
    ttytype: Option<String>,
    title: String,
    timeout: Option<Duration>,
}

impl PinentryPinSource {
    /// The program at `program` (e.g. `/usr/bin/pinentry`), with the terminal of this
    /// process for the curses variant: `$GPG_TTY`, else `/dev/tty` when standard input is a
    /// terminal; `$TERM` as the terminal type.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        use std::io::IsTerminal;
        let ttyname = std::env::var("GPG_TTY")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| std::io::stdin().is_terminal().then(|| "/dev/tty".to_owned()));
        Self {
            program: program.into(),
            args: Vec::new(),
            ttyname,
            ttytype: std::env::var("TERM").ok().filter(|t| !t.is_empty()),
            title: "scard".to_owned(),
            timeout: None,
        }
    }

    /// Arguments for the program.
    pub fn with_args(mut self, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The terminal the curses variant draws on (`None`: none is sent).
    pub fn with_tty(mut self, ttyname: Option<String>, ttytype: Option<String>) -> Self {
        self.ttyname = ttyname;
        self.ttytype = ttytype;
        self
    }

    /// The window title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// How long the person has to answer (SETTIMEOUT); the program is killed a little after.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn fail(&self, reason: impl Into<String>) -> KspError {
        KspError::PinSource {
            source_name: "pinentry",
            reason: format!("{}: {}", self.program.display(), reason.into()),
        }
    }
}

impl PinSource for PinentryPinSource {
    fn get(&mut self, request: &PinRequest) -> Result<Option<Pin>> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| self.fail(format!("cannot run it: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(self.fail("no pipes to the program"));
        };
        // The watchdog owns the child: it kills it when the conversation outlives its limit
        // (a read from a stuck program then ends), and reaps it in every case.
        let limit = self.timeout.unwrap_or(Duration::from_secs(300)) + Duration::from_secs(10);
        let (done, finished) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || watch(child, &finished, limit));
        let mut conversation = Conversation { stdin, stdout, line: Zeroizing::new(Vec::new()) };
        let result = self.converse(&mut conversation, request);
        let _ = conversation.send("BYE");
        drop(conversation);
        drop(done);
        let _ = watchdog.join();
        result
    }
}

/// Waits for the end of the conversation (the sender dropped) or the limit, then makes sure
/// the program is gone.
fn watch(mut child: Child, finished: &mpsc::Receiver<()>, limit: Duration) {
    if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
        tracing::warn!("pinentry did not finish in {limit:?}: killed");
        let _ = child.kill();
    }
    // A program that ignores BYE and a closed stdin gets a second before it is killed.
    for _ in 0..20 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

struct Conversation {
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Bytes read but not yet returned as a line (may hold the PIN: zeroized).
    line: Zeroizing<Vec<u8>>,
}

impl Conversation {
    fn send(&mut self, command: &str) -> std::io::Result<()> {
        self.stdin.write_all(command.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()
    }

    /// The next line, without its line feed (zeroized when dropped).
    fn read_line(&mut self) -> std::result::Result<Zeroizing<Vec<u8>>, String> {
        loop {
            if let Some(at) = self.line.iter().position(|&b| b == b'\n') {
                let line = Zeroizing::new(self.line.get(..at).unwrap_or_default().to_vec());
                self.line.drain(..=at);
                return Ok(line);
            }
            if self.line.len() > MAX_LINE {
                return Err("line longer than 1000 bytes".into());
            }
            let mut chunk = Zeroizing::new([0u8; 256]);
            let n = self.stdout.read(chunk.as_mut()).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the program ended the conversation".into());
            }
            self.line.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Reads replies until OK or ERR, collecting data lines and answering inquiries with END.
    fn transact(
        &mut self,
        command: &str,
    ) -> std::result::Result<(Reply, Zeroizing<Vec<u8>>), String> {
        self.send(command).map_err(|e| e.to_string())?;
        let mut data = Zeroizing::new(Vec::new());
        loop {
            let line = self.read_line()?;
            match parse_line(&line)? {
                Reply::Data(d) => data.extend_from_slice(&d),
                Reply::Status(_) | Reply::Comment => {}
                Reply::Inquire(_) => self.send("END").map_err(|e| e.to_string())?,
                done @ (Reply::Ok(_) | Reply::Err { .. }) => return Ok((done, data)),
            }
        }
    }
}

impl PinentryPinSource {
    fn converse(
        &self,
        conversation: &mut Conversation,
        request: &PinRequest,
    ) -> Result<Option<Pin>> {
        let greeting = conversation.read_line().map_err(|e| self.fail(e))?;
        match parse_line(&greeting).map_err(|e| self.fail(e))? {
            Reply::Ok(_) => {}
            other => return Err(self.fail(format!("no greeting: {other:?}"))),
        }
        let mut commands = Vec::new();
        if let Some(tty) = &self.ttyname {
            commands.push((format!("OPTION ttyname={}", escape(tty)), true));
        }
        if let Some(term) = &self.ttytype {
            commands.push((format!("OPTION ttytype={}", escape(term)), true));
        }
        if let Some(timeout) = self.timeout {
            commands.push((format!("SETTIMEOUT {}", timeout.as_secs().max(1)), true));
        }
        commands.push((format!("SETTITLE {}", escape(&self.title)), true));
        commands.push((format!("SETDESC {}", escape(&request.description())), false));
        commands.push((format!("SETPROMPT {}", escape(request.prompt_label())), false));
        if request.prompt == PinPrompt::New {
            // Ask twice for a new value (pinentry's SETREPEAT; older programs refuse it).
            commands.push(("SETREPEAT Repeat:".to_owned(), true));
            commands.push(("SETREPEATERROR The two entries differ".to_owned(), true));
        }
        for (command, optional) in commands {
            let (reply, _) = conversation.transact(&command).map_err(|e| self.fail(e))?;
            if let Reply::Err { code, message } = reply {
                if !optional {
                    return Err(self.fail(format!("{command:?} refused: {code} {message}")));
                }
                tracing::debug!("pinentry refused {command:?}: {code} {message}");
            }
        }
        let (reply, data) = conversation.transact("GETPIN").map_err(|e| self.fail(e))?;
        match reply {
            Reply::Ok(_) => Ok(Some(Pin::new(data.as_slice()))),
            Reply::Err { code, .. }
                if matches!(code & 0xFFFF, GPG_ERR_CANCELED | GPG_ERR_FULLY_CANCELED) =>
            {
                Ok(None)
            }
            Reply::Err { code, message } if code & 0xFFFF == GPG_ERR_TIMEOUT => {
                Err(self.fail(format!("no answer in time ({message})")))
            }
            Reply::Err { code, message } => Err(self.fail(format!("GETPIN: {code} {message}"))),
            other => Err(self.fail(format!("unexpected reply {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_unescaping() {
        assert_eq!(escape("100% sure\nnext\r"), "100%25 sure%0Anext%0D");
        assert_eq!(escape("Enter the PIN: ünïcode"), "Enter the PIN: ünïcode");
        assert_eq!(unescape(b"12%2534%0A").unwrap().as_slice(), b"12%34\n");
        assert!(unescape(b"12%2").is_err());
        assert!(unescape(b"12%zz").is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(b"OK Pleased to meet you").unwrap(),
            Reply::Ok("Pleased to meet you".into())
        );
        assert_eq!(parse_reply(b"OK").unwrap(), Reply::Ok(String::new()));
        assert_eq!(
            parse_reply(b"ERR 83886179 Operation cancelled <Pinentry>").unwrap(),
            Reply::Err { code: 83_886_179, message: "Operation cancelled <Pinentry>".into() }
        );
        assert_eq!(83_886_179 & 0xFFFF, GPG_ERR_CANCELED);
        assert_eq!(
            parse_reply(b"D 1234%25").unwrap(),
            Reply::Data(Zeroizing::new(b"1234%".to_vec()))
        );
        assert_eq!(parse_reply(b"S PIN_REPEATED").unwrap(), Reply::Status("PIN_REPEATED".into()));
        assert_eq!(parse_reply(b"# debug").unwrap(), Reply::Comment);
        assert_eq!(
            parse_reply(b"INQUIRE QUALITY 12").unwrap(),
            Reply::Inquire("QUALITY 12".into())
        );
        assert!(parse_reply(b"ERR nope").is_err());
        assert!(parse_reply(b"HELLO").is_err());
        assert_eq!(format!("{:?}", parse_reply(b"D 123456").unwrap()), "D (REDACTED, 6 bytes)");
    }
}
