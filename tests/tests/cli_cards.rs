//! The `scard` card commands against software nobody here wrote:
//!
//! - through pcscd + vsmartcard-vpcd on the simulated PIV card, judged by OpenSC 0.23 and
//!   yubico-piv-tool: what `scard keygen` and `scard cert import` wrote, `pkcs11-tool -O` lists
//!   and `pkcs11-tool --sign` uses (the signature verified by `openssl dgst`); what
//!   yubico-piv-tool generated and imported, `scard info` lists and `scard sign` uses (verified
//!   by `openssl dgst` against yubico-piv-tool's public key);
//! - through our own `vpcd:` backend on Nitrokey's piv-authenticator and opcard:
//!   `scard info`, `keygen`, `cert import`, `sign`, `decrypt`, every result checked by OpenSSL.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use scard_tests::interop::{OPENSC_PKCS11, Sandbox, sandbox, scard_binary, which};
use scard_tests::third_party::{Card, CardProcess, cards_or_skip};
use serde_json::Value;

const PIV_MGMT: &str = "010203040506070801020304050607080102030405060708";

fn openssl(args: &[&str]) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    cmd
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// A certificate for the public key in `public` (PEM), issued by a throwaway CA key in `dir`.
fn certify(run: &dyn Fn(&mut Command) -> String, dir: &Path, public: &str, cn: &str, out: &str) {
    let ca = p(dir, "ca.key");
    if !Path::new(&ca).exists() {
        run(&mut openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &ca]));
    }
    run(&mut openssl(&[
        "x509",
        "-new",
        "-subj",
        &format!("/CN={cn}/"),
        "-force_pubkey",
        public,
        "-key",
        &ca,
        "-days",
        "365",
        "-outform",
        "DER",
        "-out",
        out,
    ]));
}

fn verify(run: &dyn Fn(&mut Command) -> String, public: &str, data: &str, sig: &str) {
    let out = run(&mut openssl(&["dgst", "-sha256", "-verify", public, "-signature", sig, data]));
    assert!(out.contains("Verified OK"), "{out}");
}

#[test]
fn scard_and_opensc_share_a_piv_card() {
    let Some(mut sb) = sandbox(
        "scard_and_opensc_share_a_piv_card",
        &["pkcs11-tool", "yubico-piv-tool", "openssl"],
    ) else {
        return;
    };
    let scard = scard_binary().unwrap();
    sb.attach("piv", 0, &[OsStr::new("--seed"), OsStr::new("7")]);
    let dir = sb.dir().to_path_buf();
    let reader = format!("pcsc:{}", Sandbox::reader(0));
    let run = |cmd: &mut Command| sb.ok(cmd);
    let scard_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&scard);
        cmd.args(args).args(["--reader", &reader]).env("ADMIN", PIV_MGMT).env("PIN", "123456");
        cmd
    };

    // scard writes: RSA 2048 in 9A (container 0) with its certificate.
    let public = p(&dir, "pub9a.pem");
    run(&mut scard_cmd(&[
        "keygen",
        "--container",
        "0",
        "--alg",
        "rsa2048",
        "--out",
        &public,
        "--admin-env",
        "ADMIN",
    ]));
    let cert = p(&dir, "cert9a.der");
    certify(&run, &dir, &public, "written by scard", &cert);
    run(&mut scard_cmd(&["cert", "import", "--container", "0", "--admin-env", "ADMIN", &cert]));

    // OpenSC lists it (key id 01 = 9A) and signs with it.
    let objects = run(Command::new("pkcs11-tool").args(["--module", OPENSC_PKCS11, "-O"]));
    assert!(objects.contains("written by scard"), "{objects}");
    assert!(objects.contains("ID:         01"), "{objects}");
    let data = p(&dir, "data.txt");
    std::fs::write(&data, "signed through OpenSC with a key scard generated").unwrap();
    let sig = p(&dir, "opensc.sig");
    run(Command::new("pkcs11-tool").args([
        "--module",
        OPENSC_PKCS11,
        "--login",
        "--pin",
        "123456",
        "--sign",
        "--id",
        "01",
        "-m",
        "SHA256-RSA-PKCS",
        "-i",
        &data,
        "-o",
        &sig,
    ]));
    verify(&run, &public, &data, &sig);

    // yubico-piv-tool writes: P-256 in 9E (container 3, card authentication: no PIN) and
    // P-256 in 9D (container 2, key management: ECDH, SP 800-78-4 Table 3), with certificates.
    let ykpiv = |args: &[&str]| {
        let mut cmd = Command::new("yubico-piv-tool");
        cmd.args(["--reader", Sandbox::reader(0)]).args(args);
        cmd
    };
    for slot in ["9e", "9d"] {
        let public = p(&dir, &format!("pub{slot}.pem"));
        run(&mut ykpiv(&["-a", "generate", "-s", slot, "-A", "ECCP256", "-o", &public]));
        let der = p(&dir, &format!("cert{slot}.der"));
        certify(&run, &dir, &public, &format!("written by yubico-piv-tool {slot}"), &der);
        let pem = p(&dir, &format!("cert{slot}.pem"));
        run(&mut openssl(&["x509", "-inform", "DER", "-in", &der, "-out", &pem]));
        run(&mut ykpiv(&["-a", "import-certificate", "-s", slot, "-i", &pem]));
    }

    // scard lists them, signs with 9E and agrees with 9D; OpenSSL checks both against
    // yubico-piv-tool's public keys.
    let info: Value = serde_json::from_str(&run(&mut scard_cmd(&["info", "--json"]))).unwrap();
    let c3 = &info["card"]["containers"][3];
    assert_eq!(c3["algorithm"], "p256", "{info}");
    assert_eq!(c3["certificate"]["subject"], "CN=written by yubico-piv-tool 9e", "{info}");
    assert_eq!(info["card"]["containers"][2]["key_spec"], "ecdh", "{info}");
    let sig = p(&dir, "scard.sig");
    run(&mut scard_cmd(&[
        "sign",
        "--container",
        "3",
        "--alg",
        "ecdsa-sha256",
        "--in",
        &data,
        "--out",
        &sig,
    ]));
    verify(&run, &p(&dir, "pub9e.pem"), &data, &sig);

    let host_key = p(&dir, "host.key");
    let host_pub = p(&dir, "host.pub");
    run(&mut openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &host_key]));
    run(&mut openssl(&["ec", "-in", &host_key, "-pubout", "-out", &host_pub]));
    let shared = p(&dir, "shared.bin");
    run(&mut scard_cmd(&[
        "agree",
        "--container",
        "2",
        "--peer",
        &host_pub,
        "--out",
        &shared,
        "--pin-env",
        "PIN",
    ]));
    let expected = p(&dir, "expected.bin");
    run(&mut openssl(&[
        "pkeyutl",
        "-derive",
        "-inkey",
        &host_key,
        "-peerkey",
        &p(&dir, "pub9d.pem"),
        "-out",
        &expected,
    ]));
    assert_eq!(std::fs::read(&shared).unwrap(), std::fs::read(&expected).unwrap());
}

/// A third-party card program connecting to the vpcd port our `scard` commands listen on.
struct ThirdParty {
    scard: PathBuf,
    reader: String,
    reader_is_piv: bool,
    dir: PathBuf,
    _card: CardProcess,
}

impl ThirdParty {
    fn start(test: &str, card: Card) -> Option<Self> {
        let cards = cards_or_skip(test)?;
        let scard = scard_binary().unwrap();
        if which("openssl").is_none() {
            assert_ne!(
                std::env::var("SCARD_REQUIRE_INTEROP").as_deref(),
                Ok("1"),
                "openssl missing"
            );
            println!("skipped {test}: openssl not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("scard-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let state = dir.join("state");
        let process = CardProcess::start(
            cards,
            card,
            &format!("127.0.0.1:{port}"),
            Duration::from_secs(120),
            &[OsStr::new("--state"), state.as_os_str()],
            &dir.join("card.log"),
        );
        Some(Self {
            scard,
            reader: format!("vpcd:127.0.0.1:{port}"),
            reader_is_piv: card == Card::Piv,
            dir,
            _card: process,
        })
    }

    fn scard(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(&self.scard);
        cmd.args(args).args(["--reader", &self.reader, "--wait", "60"]).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        println!(
            "$ scard {} -> {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.scard(args, env);
        assert!(out.status.success(), "scard {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn path(&self, name: &str) -> String {
        p(&self.dir, name)
    }
}

fn host(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

/// keygen, cert import, info, sign (verified by openssl), and for RSA decrypt of an
/// OpenSSL cryptogram.
fn exercise(
    tp: &ThirdParty,
    container: &str,
    alg: &str,
    sign_alg: Option<&str>,
    admin: &str,
    pin: &str,
) {
    let public = tp.path(&format!("pub{container}.pem"));
    let env = [("ADMIN", admin), ("PIN", pin)];
    tp.ok(
        &[
            "keygen",
            "--container",
            container,
            "--alg",
            alg,
            "--out",
            &public,
            "--admin-env",
            "ADMIN",
            "--pin-env",
            "PIN",
        ],
        &env,
    );
    let cert = tp.path(&format!("cert{container}.der"));
    certify(&host, &tp.dir, &public, &format!("third-party {container}"), &cert);
    tp.ok(
        &[
            "cert",
            "import",
            "--container",
            container,
            "--admin-env",
            "ADMIN",
            "--pin-env",
            "PIN",
            &cert,
        ],
        &env,
    );
    let back = tp.path(&format!("back{container}.der"));
    tp.ok(&["cert", "export", "--container", container, &back], &env);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&cert).unwrap());
    let info: Value = serde_json::from_str(&tp.ok(&["info", "--json"], &[])).unwrap();
    let listed = info["card"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["index"].as_u64().map(|i| i.to_string()).as_deref() == Some(container))
        .unwrap()
        .clone();
    assert_eq!(listed["certificate"]["subject"], format!("CN=third-party {container}"), "{info}");

    if let Some(sign_alg) = sign_alg {
        let data = tp.path("data.txt");
        std::fs::write(&data, "signed by a third-party card").unwrap();
        let sig = tp.path("sig.bin");
        tp.ok(
            &[
                "sign",
                "--container",
                container,
                "--alg",
                sign_alg,
                "--in",
                &data,
                "--out",
                &sig,
                "--pin-env",
                "PIN",
            ],
            &env,
        );
        verify(&host, &public, &data, &sig);
    }

    // RSA keys that decrypt: PIV 9D, OpenPGP's decryption key.
    if alg.starts_with("rsa") && (sign_alg.is_none() || tp.reader_is_piv) {
        let plain = tp.path("plain.txt");
        std::fs::write(&plain, "a session key").unwrap();
        let ct = tp.path("ct.bin");
        host(&mut openssl(&[
            "pkeyutl", "-encrypt", "-pubin", "-inkey", &public, "-in", &plain, "-out", &ct,
        ]));
        let out = tp.path("out.txt");
        tp.ok(
            &[
                "decrypt",
                "--container",
                container,
                "--alg",
                "rsa-pkcs1",
                "--in",
                &ct,
                "--out",
                &out,
                "--pin-env",
                "PIN",
            ],
            &env,
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"a session key");
    }
}

#[test]
fn scard_commands_on_piv_authenticator() {
    let Some(tp) = ThirdParty::start("scard_commands_on_piv_authenticator", Card::Piv) else {
        return;
    };
    let info = tp.ok(&["info"], &[]);
    assert!(info.contains("(piv)"), "{info}");
    exercise(&tp, "0", "p256", Some("ecdsa-sha256"), PIV_MGMT, "123456");
    exercise(&tp, "2", "rsa2048", Some("rsa-pkcs1-sha256"), PIV_MGMT, "123456");
}

#[test]
fn scard_commands_on_opcard() {
    let Some(tp) = ThirdParty::start("scard_commands_on_opcard", Card::OpenPgp) else { return };
    let info = tp.ok(&["info"], &[]);
    assert!(info.contains("(openpgp)"), "{info}");
    exercise(&tp, "0", "p256", Some("ecdsa-sha256"), "12345678", "123456");
    exercise(&tp, "1", "rsa2048", None, "12345678", "123456");
    exercise(&tp, "2", "p256", Some("ecdsa-sha256"), "12345678", "123456");
}
