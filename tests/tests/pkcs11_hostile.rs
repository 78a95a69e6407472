//! The PKCS#11 module against the hostile card (scard_sim::hostile, in-process through
//! `SCARD_READERS=sim:hostile:<seed>`), driven by OpenSC's `pkcs11-tool`: for every seed the
//! listing (`-O`) and a login + signature attempt end with an exit status of 0 or 1 (never a
//! signal: no crash, no abort), no panic reaches the output, and each run ends within two
//! exchange timeouts (a card that stops answering is given up after one; `scard.toml`'s
//! `timeout = 1`).

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use scard_tests::interop::{pkcs11_module, tools_present};

/// Seeds 0..SEEDS: every kind of fault of the hostile card, stalls among them.
const SEEDS: u64 = 60;

#[test]
fn pkcs11_tool_against_the_hostile_card() {
    if !tools_present("pkcs11_tool_against_the_hostile_card", &["pkcs11-tool"]) {
        return;
    }
    let module = pkcs11_module().unwrap();
    let dir = std::env::temp_dir().join(format!("scard-p11-hostile-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("config/scard")).unwrap();
    fs::write(dir.join("config/scard/scard.toml"), "timeout = 1\n").unwrap();
    let limit = Duration::from_secs(2) + Duration::from_millis(1500);
    let runs: [&[&str]; 2] = [&["-O"], &["--login", "--pin", "123456", "--sign", "-m", "ECDSA"]];
    let mut outcomes = [0usize; 2];
    let mut slowest = Duration::ZERO;
    for seed in 0..SEEDS {
        for args in runs {
            let started = Instant::now();
            let out = Command::new("pkcs11-tool")
                .arg("--module")
                .arg(&module)
                .args(args)
                .env("SCARD_READERS", format!("sim:hostile:{seed}"))
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_CACHE_HOME", dir.join("cache"))
                .env_remove("SCARD_LOG")
                .output()
                .unwrap();
            let took = started.elapsed();
            slowest = slowest.max(took);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let what = format!("seed {seed}, pkcs11-tool {}", args.join(" "));
            match out.status.code() {
                Some(code @ (0 | 1)) => outcomes[code as usize] += 1,
                other => panic!("{what}: ended with {other:?} ({}):\n{text}", out.status),
            }
            assert!(!text.to_lowercase().contains("panic"), "{what}:\n{text}");
            assert!(took < limit, "{what}: {took:?}:\n{text}");
        }
    }
    println!(
        "{} runs: {} exit 0, {} exit 1 (a clear error); slowest {slowest:?}",
        SEEDS * 2,
        outcomes[0],
        outcomes[1]
    );
    let _ = fs::remove_dir_all(&dir);
}
