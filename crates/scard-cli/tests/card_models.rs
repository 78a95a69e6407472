//! Card models from the user's directory (`$XDG_CONFIG_HOME/scard/cards/`): a vendor's file
//! names the card in `scard info`, and a file with a mistake is reported with its file, line
//! and field while the other models still load.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::process::{Command, Stdio};

#[test]
fn user_models_override_and_bad_files_are_named() {
    let home = std::env::temp_dir().join(format!("scard-models-{}", std::process::id()));
    let cards = home.join("scard").join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    // The simulated PIV card's ATR, as a vendor would describe their own card.
    std::fs::write(
        cards.join("acme.toml"),
        r#"name = "ACME PIV token"
family = "piv"

[[atr]]
value = "3B 9A 13 81 01 80 58 73 63 61 72 64 50 49 56 F9"

[user_pin]
min_length = 6
max_length = 8
pad = 0xFF
"#,
    )
    .unwrap();
    std::fs::write(
        cards.join("broken.toml"),
        "name = \"Broken\"\nfamily = \"piv\"\n\n[[atr]]\nvalue = \"3B 9Z\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scard"))
        .args(["info", "--reader", "sim:piv"])
        .env("XDG_CONFIG_HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Card model   ACME PIV token (piv)"), "{stdout}");
    let broken = cards.join("broken.toml");
    assert!(stderr.contains(&format!("{}:5: atr[0].value: not hex", broken.display())), "{stderr}");
    let _ = std::fs::remove_dir_all(&home);
}

/// One ATR, several applications (README "Adding a card model"): a user model naming another
/// family for a card's ATR is tried first; when the card does not answer that family's
/// SELECT, the next model (here the built-in one) opens it.
#[test]
fn a_user_model_chooses_the_application_and_falls_back() {
    let info = |home: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_scard"))
            .args(["info", "--reader", "sim:openpgp", "--json"])
            .env("XDG_CONFIG_HOME", home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["card"]["model"].as_str().unwrap().to_owned(), v["card"]["family"].to_string())
    };
    let atr = scard_iso7816::hex::encode_spaced(&scard_sim::openpgp::ATR);
    let home = std::env::temp_dir().join(format!("scard-apps-{}", std::process::id()));
    let cards = home.join("scard").join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    let model = |name: &str, family: &str| {
        format!(
            "name = \"{name}\"\nfamily = \"{family}\"\nquirks = [\"shared-atr\"]\n\n[[atr]]\nvalue = \"{atr}\"\n"
        )
    };
    // The same family, the user's name: the user model wins.
    std::fs::write(cards.join("mine.toml"), model("My OpenPGP token", "openpgp")).unwrap();
    assert_eq!(info(&home), ("My OpenPGP token".to_owned(), "\"openpgp\"".to_owned()));
    // Another family the card does not have: its SELECT fails, the built-in model opens it.
    std::fs::write(cards.join("mine.toml"), model("My PIV token", "piv")).unwrap();
    let (name, family) = info(&home);
    assert_eq!(family, "\"openpgp\"", "{name}");
    assert_ne!(name, "My PIV token");
    let _ = std::fs::remove_dir_all(&home);
}
