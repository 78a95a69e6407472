//! `scard logon-check`, `scard logon-enumerate`, `scard certs` and `scard policy`: JSON
//! fields, exit statuses, the settings file and flags, CARD.json validation.

// Test code: a failed expectation is meant to panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use der::asn1::ObjectIdentifier as Oid;
use scard_certs::oid;
use scard_certs::testcert::{CertSpec, JAN_2024, JAN_2026, TestKey};
use serde_json::Value;

/// A scratch folder with its own (empty) settings location, removed at the end.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "scard-logon-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config/scard")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, data).unwrap();
        path
    }

    fn cert(&self, name: &str, spec: &CertSpec) -> PathBuf {
        self.write(name, &spec.build().unwrap())
    }

    fn policy_file(&self, text: &str) -> PathBuf {
        self.write("config/scard/policy.toml", text.as_bytes())
    }

    fn scard(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_scard"))
            .args(args)
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env_remove("SCARD_CONFIG")
            .output()
            .unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const AT: &str = "2025-01-01T00:00:00Z";

#[test]
fn logon_check_json_one_object_per_file_in_argument_order() {
    let t = Scratch::new("check");
    let rsa = t.cert("rsa.der", &CertSpec::logon("alice@example.com"));
    let p256 = t.cert("p256.der", &CertSpec::logon("bob@example.com").key(TestKey::P256));
    let ed = t.cert("ed.der", &CertSpec::logon("e@example.com").key(TestKey::Ed25519));
    let k1 = t.cert(
        "k1.der",
        &CertSpec::logon("k@example.com")
            .key(TestKey::EcNamed(Oid::new_unwrap("1.3.132.0.10"), 65)),
    );
    let pkinit =
        t.cert("pkinit.der", &CertSpec::logon("p@example.com").eku(&[oid::PKINIT_KP_CLIENT_AUTH]));
    let no_upn = t.cert(
        "noupn.der",
        &CertSpec::logon("x@example.com")
            .without(oid::SUBJECT_ALT_NAME)
            .without(oid::EXT_KEY_USAGE),
    );
    let pem =
        t.write("cert.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    let junk = t.write("junk.der", &[0x30, 0x03, 0x02, 0x01, 0x01, 0x00]);
    let files = [&rsa, &p256, &ed, &k1, &pkinit, &no_upn, &pem, &junk];
    let mut args = vec!["logon-check", "--json", "--at", AT];
    args.extend(files.iter().map(|p| s(p)));
    let out = t.scard(&args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = lines(&out);
    assert_eq!(v.len(), files.len());
    let keys: Vec<&str> = v[0].as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "file",
        "parse_ok",
        "error",
        "eligible",
        "upn",
        "subject",
        "eku",
        "key",
        "not_before",
        "not_after",
        "reasons",
        "notes",
    ];
    let mut sorted = keys.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    for (obj, file) in v.iter().zip(files) {
        assert_eq!(obj["file"], s(file));
    }
    // The eligible RSA certificate.
    let r = &v[0];
    assert_eq!(r["parse_ok"], true);
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["eligible"], true);
    assert_eq!(r["upn"], "alice@example.com");
    assert_eq!(r["subject"], "CN=alice,O=scard tests");
    assert_eq!(r["eku"], serde_json::json!(["1.3.6.1.4.1.311.20.2.2", "1.3.6.1.5.5.7.3.2"]));
    assert_eq!(r["key"], serde_json::json!({"alg": "rsa", "bits": 2048}));
    assert_eq!(r["not_before"], "2024-01-01T00:00:00Z");
    assert_eq!(r["not_after"], "2026-01-01T00:00:00Z");
    assert_eq!(r["reasons"], "");
    assert!(r["notes"].as_str().unwrap().contains("no SID extension"));
    // ECC without EnumerateECCCerts.
    assert_eq!(v[1]["eligible"], false);
    assert_eq!(v[1]["key"], serde_json::json!({"alg": "ec", "curve": "P-256"}));
    assert!(v[1]["reasons"].as_str().unwrap().contains("EnumerateECCCerts=1"));
    assert_eq!(v[2]["key"], serde_json::json!({"alg": "ed25519"}));
    assert_eq!(v[2]["eligible"], false);
    assert_eq!(v[3]["key"], serde_json::json!({"alg": "ec", "curve": "secp256k1"}));
    // pkinit: reasons say MIT and Heimdal accept it; notes have it too.
    assert!(v[4]["reasons"].as_str().unwrap().contains("MIT and Heimdal"));
    assert!(v[4]["notes"].as_str().unwrap().contains("1.3.6.1.5.2.3.4"));
    // No UPN, no EKU: upn and eku null; one line per failed rule.
    assert_eq!(v[5]["upn"], Value::Null);
    assert_eq!(v[5]["eku"], Value::Null);
    assert_eq!(v[5]["reasons"].as_str().unwrap().lines().count(), 1);
    // Files that do not parse.
    for r in &v[6..] {
        assert_eq!(r["parse_ok"], false);
        assert_eq!(r["eligible"], false);
        assert!(r["error"].is_string());
        assert_eq!(r["subject"], Value::Null);
    }
    assert!(v[6]["error"].as_str().unwrap().contains("PEM"));
}

#[test]
fn logon_check_reasons_one_line_per_failed_rule() {
    let t = Scratch::new("lines");
    let bad = t.cert(
        "bad.der",
        &CertSpec::logon("a@example.com").key(TestKey::P384).eku(&[oid::KP_CLIENT_AUTH]).ext(
            Oid::new_unwrap("1.3.6.1.4.1.55555.9"),
            true,
            vec![5, 0],
        ),
    );
    let out = t.scard(&[
        "logon-check",
        "--json",
        "--at",
        "2030-01-01T00:00:00Z",
        "--key-spec",
        "signature",
        s(&bad),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = lines(&out);
    let reasons = v[0]["reasons"].as_str().unwrap();
    assert_eq!(reasons.lines().count(), 5, "{reasons}");
    for needle in [
        "expired",
        "EnumerateECCCerts",
        "AllowSignatureOnlyKeys",
        "Smart Card Logon",
        "1.3.6.1.4.1.55555.9",
    ] {
        assert!(reasons.contains(needle), "{needle}: {reasons}");
    }
}

#[test]
fn logon_check_at_makes_validity_ends_inclusive() {
    let t = Scratch::new("at");
    let c = t.cert("c.der", &CertSpec::logon("a@example.com"));
    let eligible = |at: &str| {
        let out = t.scard(&["logon-check", "--json", "--at", at, s(&c)]);
        assert_eq!(out.status.code(), Some(0));
        lines(&out)[0]["eligible"].as_bool().unwrap()
    };
    assert!(eligible("2024-01-01T00:00:00Z"));
    assert!(eligible("2026-01-01T00:00:00Z"));
    assert!(eligible("2026-01-01T01:00:00+01:00"));
    assert!(!eligible("2023-12-31T23:59:59Z"));
    assert!(!eligible("2026-01-01T00:00:00.001Z"));
    let _ = (JAN_2024, JAN_2026);
}

#[test]
fn logon_check_exit_statuses() {
    let t = Scratch::new("exit");
    let c = t.cert("c.der", &CertSpec::logon("a@example.com"));
    // A file that cannot be read: 1, the others still processed.
    let out = t.scard(&["logon-check", "--json", s(&c), s(&t.path("missing.der"))]);
    assert_eq!(out.status.code(), Some(1));
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["parse_ok"], false);
    assert!(v[1]["error"].as_str().unwrap().contains("missing.der"));
    // Bad settings and usage errors: 2, naming the setting.
    for (args, needle) in [
        (vec!["--policy", "EnumerateECCCerts=2"], "EnumerateECCCerts"),
        (vec!["--policy", "NoSuchSetting=1"], "NoSuchSetting"),
        (vec!["--policy", "EnumerateECCCerts"], "NAME=VALUE"),
        (vec!["--at", "yesterday"], "--at"),
    ] {
        let mut full = vec!["logon-check"];
        full.extend(args.iter().copied());
        full.push(s(&c));
        let out = t.scard(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
        // With --json the error is in the JSON.
        full.insert(1, "--json");
        let out = t.scard(&full);
        assert_eq!(out.status.code(), Some(2));
        assert!(json(&out)["error"].as_str().unwrap().contains(needle));
    }
    let out = t.scard(&["logon-check", "--key-spec", "both", s(&c)]);
    assert_eq!(out.status.code(), Some(2));
    let out = t.scard(&["logon-check"]);
    assert_eq!(out.status.code(), Some(2), "no file is a usage error");
}

#[test]
fn logon_check_text_output() {
    let t = Scratch::new("text");
    let c = t.cert("c.der", &CertSpec::logon("alice@example.com"));
    let out = t.scard(&["logon-check", "--at", AT, s(&c)]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": eligible"), "{text}");
    assert!(text.contains("alice@example.com"));
    assert!(text.contains("Smart Card Logon (1.3.6.1.4.1.311.20.2.2)"));
}

#[test]
fn settings_file_then_flags() {
    let t = Scratch::new("policyfile");
    let p256 = t.cert("p.der", &CertSpec::logon("a@example.com").key(TestKey::P256));
    let file = t.policy_file("EnumerateECCCerts = 1\nScRemoveOption = 1\n");
    let check = |extra: &[&str]| {
        let mut args = vec!["logon-check", "--json", "--at", AT];
        args.extend(extra);
        args.push(s(&p256));
        let out = t.scard(&args);
        assert_eq!(out.status.code(), Some(0));
        lines(&out)[0]["eligible"].as_bool().unwrap()
    };
    assert!(check(&[]), "from the file");
    assert!(!check(&["--policy", "EnumerateECCCerts=0"]), "the flag overrides the file");

    let out = t.scard(&["policy", "--json", "--policy", "AllowSignatureOnlyKeys=1"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["file"], s(&file));
    let settings = v["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 15);
    let get = |name: &str| settings.iter().find(|x| x["name"] == name).unwrap().clone();
    assert_eq!(get("EnumerateECCCerts")["value"], 1);
    assert_eq!(get("EnumerateECCCerts")["source"], "file");
    assert_eq!(get("EnumerateECCCerts")["path"], s(&file));
    assert_eq!(get("ScRemoveOption")["meaning"], "lock");
    assert_eq!(get("AllowSignatureOnlyKeys")["source"], "command-line");
    assert_eq!(get("CertPropEnabled")["value"], 1);
    assert_eq!(get("CertPropEnabled")["source"], "default");
    assert_eq!(get("RootCertificateCleanupOption")["value"], 1);
    assert_eq!(get("IntegratedUnblockPromptString")["value"], "");

    // Text output names every setting and its source.
    let out = t.scard(&["policy"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.contains("default")).count(), 13, "{text}");
    assert!(text.contains("file "), "{text}");

    // A bad file: 2, naming the setting and the file.
    t.policy_file("EnumerateECCCerts = 1\nScRemoveOption = 7\n");
    for args in [&["policy"][..], &["logon-check", s(&p256)]] {
        let out = t.scard(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ScRemoveOption") && err.contains("policy.toml"), "{err}");
    }
    t.policy_file("Bogus = 1\n");
    let out = t.scard(&["policy", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(json(&out)["error"].as_str().unwrap().contains("Bogus"));
}

fn card_json(t: &Scratch, name: &str, value: &Value) -> PathBuf {
    t.write(name, serde_json::to_string_pretty(value).unwrap().as_bytes())
}

#[test]
fn logon_enumerate_card_json() {
    let t = Scratch::new("enum");
    t.cert("certs/auth.der", &CertSpec::logon("alice@example.com").serial(&[1]));
    t.cert("certs/sign.der", &CertSpec::logon("alice@example.com").serial(&[2]));
    t.cert("certs/ecc.der", &CertSpec::logon("alice@example.com").serial(&[3]).key(TestKey::P256));
    let absolute = t.cert(
        "elsewhere/old.der",
        &CertSpec::logon("old@example.com").validity(JAN_2024, JAN_2024 + 86_400),
    );
    t.cert("certs/auth-copy.der", &CertSpec::logon("alice@example.com").serial(&[1]));
    let card = card_json(
        &t,
        "card/CARD.json",
        &serde_json::json!({
            "supports_user_certstore": true,
            "containers": [
                {"name": "auth", "cert": "../certs/auth.der", "default": true, "key_spec": "AT_KEYEXCHANGE"},
                {"name": "sign", "cert": "../certs/sign.der", "default": false, "key_spec": "AT_SIGNATURE"},
                {"name": "ecc", "cert": "../certs/ecc.der", "default": false, "key_spec": "AT_KEYEXCHANGE"},
                {"name": "old", "cert": s(&absolute), "default": false, "key_spec": "AT_KEYEXCHANGE"},
                {"name": "copy", "cert": "../certs/auth-copy.der", "default": false, "key_spec": "AT_KEYEXCHANGE"}
            ]
        }),
    );
    let out = t.scard(&["logon-enumerate", "--card", s(&card), "--json", "--at", AT]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["displayed"], serde_json::json!(["auth"]));
    let rejected = v["rejected"].as_array().unwrap();
    let names: Vec<&str> = rejected.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["sign", "ecc", "old", "copy"], "every container not displayed, card order");
    let reason = |n: &str| {
        rejected.iter().find(|r| r["name"] == n).unwrap()["reasons"].as_str().unwrap().to_owned()
    };
    assert!(reason("sign").contains("AllowSignatureOnlyKeys"));
    assert!(reason("ecc").contains("EnumerateECCCerts"));
    assert!(reason("old").contains("expired"));
    assert!(reason("copy").contains("\"auth\""));
    assert_eq!(v.as_object().unwrap().len(), 2);

    let out = t.scard(&[
        "logon-enumerate",
        "--card",
        s(&card),
        "--json",
        "--at",
        AT,
        "--policy",
        "AllowSignatureOnlyKeys=1",
        "--policy",
        "EnumerateECCCerts=1",
        "--policy",
        "AllowTimeInvalidCertificates=1",
    ]);
    assert_eq!(json(&out)["displayed"], serde_json::json!(["auth", "sign", "ecc", "old"]));

    // Without a user certstore: only the default container's exchange certificate.
    let card2 = card_json(
        &t,
        "card/CARD2.json",
        &serde_json::json!({
            "supports_user_certstore": false,
            "containers": [
                {"name": "sign", "cert": "../certs/sign.der", "default": false, "key_spec": "AT_SIGNATURE"},
                {"name": "auth", "cert": "../certs/auth.der", "default": true, "key_spec": "AT_KEYEXCHANGE"}
            ]
        }),
    );
    let out = t.scard(&[
        "logon-enumerate",
        "--card",
        s(&card2),
        "--json",
        "--at",
        AT,
        "--policy",
        "AllowSignatureOnlyKeys=1",
    ]);
    let v = json(&out);
    assert_eq!(v["displayed"], serde_json::json!(["auth"]));
    assert!(v["rejected"][0]["reasons"].as_str().unwrap().contains("not offered"));

    // Text output.
    let out = t.scard(&["logon-enumerate", "--card", s(&card), "--at", AT]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("displayed:\n  auth  alice@example.com\nrejected:\n"), "{text}");
}

#[test]
fn logon_enumerate_validation() {
    let t = Scratch::new("enumbad");
    t.cert("a.der", &CertSpec::logon("a@example.com"));
    let c = |name: &str, default: bool| serde_json::json!({"name": name, "cert": "a.der", "default": default, "key_spec": "AT_KEYEXCHANGE"});
    let cases = [
        (
            serde_json::json!({"supports_user_certstore": true, "containers": [c("x", false), c("x", false)]}),
            "\"x\" appears more than once",
        ),
        (
            serde_json::json!({"supports_user_certstore": true, "containers": [c("x", true), c("y", true)]}),
            "both marked default",
        ),
        (
            serde_json::json!({"supports_user_certstore": true, "containers": [{"name": "x", "cert": "a.der", "default": true, "key_spec": "AT_ECDSA_P256"}]}),
            "AT_ECDSA_P256",
        ),
        (
            serde_json::json!({"supports_user_certstore": true, "containers": [{"name": "x", "cert": "a.der", "key_spec": "AT_KEYEXCHANGE", "colour": 1}]}),
            "colour",
        ),
        (serde_json::json!({"containers": []}), "supports_user_certstore"),
        (
            serde_json::json!({"supports_user_certstore": "yes", "containers": []}),
            "expected a boolean",
        ),
        (
            serde_json::json!({"supports_user_certstore": true, "containers": [{"cert": "a.der", "key_spec": "AT_KEYEXCHANGE"}]}),
            "name",
        ),
    ];
    for (i, (value, needle)) in cases.iter().enumerate() {
        let card = card_json(&t, &format!("card{i}.json"), value);
        let out = t.scard(&["logon-enumerate", "--card", s(&card)]);
        assert_eq!(out.status.code(), Some(2), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle) && err.contains(&format!("card{i}.json")), "{needle}: {err}");
        let out = t.scard(&["logon-enumerate", "--card", s(&card), "--json"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(json(&out)["error"].as_str().unwrap().contains(needle));
    }
    let bad = t.write("notjson.json", b"{");
    assert_eq!(t.scard(&["logon-enumerate", "--card", s(&bad)]).status.code(), Some(2));
    // Unreadable files: 1.
    assert_eq!(
        t.scard(&["logon-enumerate", "--card", s(&t.path("none.json"))]).status.code(),
        Some(1)
    );
    let card = card_json(
        &t,
        "missing-cert.json",
        &serde_json::json!({"supports_user_certstore": true, "containers": [c("x", true), {"name": "y", "cert": "gone.der", "key_spec": "AT_KEYEXCHANGE"}]}),
    );
    let out = t.scard(&["logon-enumerate", "--card", s(&card), "--json", "--at", AT]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["displayed"], serde_json::json!(["x"]));
    assert!(v["rejected"][0]["reasons"].as_str().unwrap().contains("gone.der"));
}

const PIV_MGMT: &str = "010203040506070801020304050607080102030405060708";

#[test]
fn certs_on_a_simulated_card() {
    let t = Scratch::new("certs");
    let state = t.path("piv.json");
    let reader = format!("sim:piv:{}", state.display());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_scard"))
            .args(args)
            .env("XDG_CONFIG_HOME", t.path("config"))
            .env("ADMIN", PIV_MGMT)
            .env_remove("SCARD_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    // PIV 9A (container 0) and 9D (container 2) get keys and certificates.
    let keygen = |container: &str, alg: &str| {
        let out = t.path(&format!("key{container}.pem"));
        run(&[
            "keygen",
            "--reader",
            &reader,
            "--container",
            container,
            "--alg",
            alg,
            "--admin-env",
            "ADMIN",
            "--out",
            s(&out),
        ]);
        let pem = std::fs::read(&out).unwrap();
        TestKey::Spki(scard_minidriver::pem_decode(&pem, "PUBLIC KEY").unwrap().unwrap())
    };
    let rsa = keygen("0", "rsa2048");
    let p256 = keygen("2", "p256");
    let auth = t.cert("auth.der", &CertSpec::logon("alice@example.com").key(rsa));
    let km = t.cert("km.der", &CertSpec::logon("alice@example.com").serial(&[9]).key(p256));
    run(&[
        "cert",
        "import",
        "--reader",
        &reader,
        "--container",
        "0",
        "--admin-env",
        "ADMIN",
        s(&auth),
    ]);
    run(&[
        "cert",
        "import",
        "--reader",
        &reader,
        "--container",
        "2",
        "--admin-env",
        "ADMIN",
        s(&km),
    ]);

    let out = t.scard(&["certs", "--reader", &reader, "--json", "--at", AT]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["displayed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["rejected"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["rejected"][0]["reasons"].as_str().unwrap().contains("EnumerateECCCerts"), "{v}");
    let out = t.scard(&[
        "certs",
        "--reader",
        &reader,
        "--json",
        "--at",
        AT,
        "--policy",
        "EnumerateECCCerts=1",
    ]);
    assert_eq!(json(&out)["displayed"].as_array().unwrap().len(), 2);
    // No such reader: the transport's exit status (bad name: 2).
    let out = t.scard(&["certs", "--reader", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
}
