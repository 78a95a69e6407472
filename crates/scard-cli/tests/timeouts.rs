//! A stalled card is an error within the deadline (`--timeout`), not a hang (issue 9): a card
//! program of our own on the card side of the vpcd protocol connects to `scard`'s `vpcd:`
//! reader and then never answers, or never even tells its ATR.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scard_transport::vpcd::frame;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the card program saw: the control bytes and the command APDUs (INS).
#[derive(Debug, Default)]
struct Seen {
    controls: Vec<u8>,
    commands: Vec<u8>,
}

/// Connects to the vpcd reader on `port` (retrying while `scard` starts), tells its ATR when
/// `tell_atr`, answers SELECT when `answer_select`, and answers nothing else; returns what it
/// saw when `scard` hangs up.
fn stalled_card(port: u16, tell_atr: bool, answer_select: bool) -> JoinHandle<Seen> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the vpcd reader never listened: {e}"),
            }
        };
        stream.set_nodelay(true).unwrap();
        let mut seen = Seen::default();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return seen,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some((payload, used)) = frame::split(&buf) {
                let payload = payload.to_vec();
                buf.drain(..used);
                let reply = match payload.as_slice() {
                    [c] => {
                        seen.controls.push(*c);
                        // A PIV-like ATR (the one piv-authenticator presents).
                        (*c == frame::GET_ATR && tell_atr).then(|| {
                            vec![0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B]
                        })
                    }
                    [_, ins, ..] => {
                        seen.commands.push(*ins);
                        (*ins == 0xA4 && answer_select).then(|| vec![0x90, 0x00])
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    if stream.write_all(&frame::encode(&reply).unwrap()).is_err() {
                        return seen;
                    }
                }
            }
        }
    })
}

/// Runs `scard` with `args`; returns (exit code, stderr, seconds taken).
fn scard(args: &[&str]) -> (Option<i32>, String, f64) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_scard")).args(args).output().unwrap();
    let took = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "$ scard {}\n  exit {:?} after {took:.2} s\n  stdout: {}\n  stderr: {stderr}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    (out.status.code(), stderr, took)
}

/// One line on standard error, naming the reader (the log lines of `-v` aside).
fn one_line_error(stderr: &str, reader: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(reader), "{stderr}");
}

#[test]
fn a_card_that_never_answers_is_an_error_at_the_timeout() {
    let port = free_port();
    let reader = format!("vpcd:127.0.0.1:{port}");
    let card = stalled_card(port, true, false);
    let (code, stderr, took) =
        scard(&["info", "--reader", &reader, "--timeout", "1", "--wait", "10"]);
    assert_eq!(code, Some(1), "{stderr}");
    one_line_error(&stderr, &reader);
    assert!(stderr.contains("no answer to"), "{stderr}");
    // The timeout plus a second (the time `scard` takes to start and the card to connect).
    assert!(took < 2.0, "{took:.2} s");
    let seen = card.join().unwrap();
    assert_eq!(seen.commands.len(), 1, "one command, unanswered, and nothing after: {seen:?}");
}

#[test]
fn a_card_that_stalls_after_its_first_answer_is_an_error_at_the_timeout() {
    let port = free_port();
    let reader = format!("vpcd:127.0.0.1:{port}");
    let card = stalled_card(port, true, true);
    let (code, stderr, took) =
        scard(&["info", "--reader", &reader, "--timeout", "1", "--wait", "10"]);
    assert_eq!(code, Some(1), "{stderr}");
    one_line_error(&stderr, &reader);
    assert!(stderr.contains("no answer to"), "{stderr}");
    assert!(took < 2.0, "{took:.2} s");
    let seen = card.join().unwrap();
    assert_eq!(seen.commands.iter().filter(|i| **i != 0xA4).count(), 1, "{seen:?}");
}

#[test]
fn a_card_that_never_tells_its_atr_is_an_error_at_the_timeout() {
    let port = free_port();
    let reader = format!("vpcd:127.0.0.1:{port}");
    let card = stalled_card(port, false, false);
    let (code, stderr, took) =
        scard(&["info", "--reader", &reader, "--timeout", "1", "--wait", "10"]);
    assert_eq!(code, Some(1), "{stderr}");
    one_line_error(&stderr, &reader);
    assert!(stderr.contains("GET ATR"), "{stderr}");
    assert!(took < 2.0, "{took:.2} s");
    let seen = card.join().unwrap();
    assert_eq!(seen.controls, [frame::POWER_ON, frame::GET_ATR]);
    assert!(seen.commands.is_empty());
}
