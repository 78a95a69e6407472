//! `scard sim` through a real pcscd and vsmartcard's vpcd: attach, card presence and removal,
//! state saved on SIGTERM, and the per-APDU latency (target: under 1 ms median).

use std::ffi::OsStr;
use std::process::Command;
use std::time::Instant;

use scard_tests::interop::{Sandbox, median, sandbox};

#[test]
fn sim_latency_through_pcscd() {
    let Some(mut sb) = sandbox("sim_latency_through_pcscd", &[]) else { return };
    sb.attach("piv", 0, &[OsStr::new("--seed"), OsStr::new("1")]);
    let reader = Sandbox::reader(0);
    // GET DATA for the Discovery object, 1 time and 201 times: the difference is 200 APDUs
    // of client -> pcscd -> vpcd -> card and back.
    let apdu = "00 CB 3F FF 03 5C 01 7E 00";
    let mut per_apdu_us = Vec::new();
    for _ in 0..3 {
        let time = |n: usize| {
            let mut cmd = Command::new("opensc-tool");
            cmd.args(["--reader", reader]);
            for _ in 0..n {
                cmd.args(["--send-apdu", apdu]);
            }
            let started = Instant::now();
            sb.ok(&mut cmd);
            started.elapsed()
        };
        let one = time(1);
        let many = time(201);
        per_apdu_us
            .push(u64::try_from(many.saturating_sub(one).as_micros() / 200).unwrap_or(u64::MAX));
    }
    let client_us = median(&mut per_apdu_us);
    let mut round_trips = sb.apdu_round_trips_us(0);
    let count = round_trips.len();
    let card_us = median(&mut round_trips);
    println!(
        "per-APDU latency: {client_us} µs median seen by the client (opensc-tool through pcscd), {card_us} µs median pcscd <-> card round trip over {count} APDUs"
    );
    assert!(count >= 600, "pcscd logged only {count} APDUs");
    assert!(client_us < 1000, "per-APDU latency {client_us} µs is not under 1 ms");
    assert!(card_us < 1000, "pcscd <-> card round trip {card_us} µs is not under 1 ms");
}

#[test]
fn sim_state_survives_sigterm_and_removal_is_seen() {
    let Some(mut sb) = sandbox("sim_state_survives_sigterm_and_removal_is_seen", &[]) else {
        return;
    };
    let state = sb.dir().join("card.json");
    sb.attach("openpgp", 1, &[OsStr::new("--state"), state.as_os_str()]);
    assert!(state.exists(), "state file written at start");
    let atr = sb.ok(Command::new("opensc-tool").args(["--reader", Sandbox::reader(1), "--atr"]));
    let printed = sb.detach(1);
    assert!(printed.contains("card removed") && printed.contains("state saved"), "{printed}");
    assert!(!sb.card_present(1), "card still present after SIGTERM");
    // The same state file brings the same card back.
    sb.attach("openpgp", 1, &[OsStr::new("--state"), state.as_os_str()]);
    let again = sb.ok(Command::new("opensc-tool").args(["--reader", Sandbox::reader(1), "--atr"]));
    assert_eq!(atr, again);
    // A state file of another family is refused with exit status 2.
    let bin = scard_tests::interop::scard_binary().unwrap();
    let out = sb.run(
        Command::new(bin).args(["sim", "piv", "--vpcd", "127.0.0.1:35963", "--state"]).arg(&state),
    );
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds a openpgp card"));
}
