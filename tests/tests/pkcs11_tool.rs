//! The scard PKCS#11 module (`libscard_pkcs11.so`) judged by software nobody here wrote:
//! OpenSC's `pkcs11-tool`, GnuTLS's `p11tool`, OpenSSL (with libp11's pkcs11 engine) and
//! OpenSSH's `ssh-keygen -D`, on simulated PIV, OpenPGP and GIDS cards.
//!
//! Each card is exercised by one program after another on the same card state, as people use
//! it: `-L`, `-O`, key pair generation (in a named container, or the first free one), the
//! certificates written for the PIV keys, `--test --login` (no errors), `--sign` with every
//! signature mechanism and `--decrypt` with every decryption mechanism the card takes (each
//! result checked with OpenSSL on the host; what the card does not take must be refused with
//! `CKR_MECHANISM_INVALID`), `--derive` (ECDH, checked against OpenSSL), `p11tool
//! --list-all` / `--list-all-certs`, a file signed through the OpenSSL engine and verified,
//! and `ssh-keygen -D` listing every public key.
//!
//! Twice: with the module's in-process simulated card (`SCARD_READERS=sim:<family>:FILE`, no
//! root needed), and through a real pcscd with `scard sim` attached to vsmartcard's vpcd
//! (`SCARD_READERS=pcsc:*`, in the namespace sandbox of `scard_tests::interop`).
//!
//! PIV caveat: a PIV card cannot tell a key's public key; the module (like OpenSC) knows a
//! key from its certificate, or from its generation in the same process. So each PIV key
//! pair is generated and read out in one `pkcs11-tool` run, a certificate is made for it with
//! OpenSSL and written with `pkcs11-tool --write-object --type cert --id NN` in the next run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scard_tests::interop::{Sandbox, pkcs11_module, sandbox, tail, tools_present};

const PIN: &str = "123456";
/// The default PIV management key, the SO PIN (in hex).
const PIV_SO: &str = "010203040506070801020304050607080102030405060708";
/// OpenPGP PW3, the SO PIN.
const OPENPGP_SO: &str = "12345678";
/// libp11's OpenSSL engine on Debian (libengine-pkcs11-openssl).
const ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";
const TOOLS: [&str; 5] = ["pkcs11-tool", "openssl", "p11tool", "ssh-keygen", ENGINE];

/// A card family and how keys are made on it.
struct Card {
    family: &'static str,
    /// The login that may generate keys and write certificates.
    writer: &'static [&'static str],
    /// Keys to generate: `CKA_ID` (None: the first free container) and pkcs11-tool key type.
    keys: &'static [(Option<u8>, &'static str)],
    /// A certificate is made for each key and written to its container (PIV needs it: the
    /// key is not known to the next process otherwise).
    certificates: bool,
    /// Mechanisms the card does not take (refused with CKR_MECHANISM_INVALID).
    unsupported: &'static [&'static str],
    /// The SO login that may set the user PIN (`C_InitPIN`), where the admin may.
    pin_reset: Option<&'static [&'static str]>,
}

const SO_PIV: &[&str] = &["--login", "--login-type", "so", "--so-pin", PIV_SO];
const SO_OPENPGP: &[&str] = &["--login", "--login-type", "so", "--so-pin", OPENPGP_SO];
const USER: &[&str] = &["--login", "--pin", PIN];
/// The simulated GIDS card's admin key (3DES, 24 zero bytes), in hex.
const SO_GIDS: &[&str] = &[
    "--login",
    "--login-type",
    "so",
    "--so-pin",
    "000000000000000000000000000000000000000000000000",
];

const PIV: Card = Card {
    family: "piv",
    writer: SO_PIV,
    keys: &[
        // 9A: RSA, signs and decrypts.
        (Some(0x01), "RSA:2048"),
        // 9C: PIN always (CKA_ALWAYS_AUTHENTICATE).
        (Some(0x02), "EC:prime256v1"),
        // 9D: key management, an EC key there does ECDH.
        (Some(0x03), "EC:prime256v1"),
        // 9E: card authentication, no PIN.
        (Some(0x04), "EC:secp384r1"),
        // 82: retired key management, RSA.
        (Some(0x05), "RSA:2048"),
    ],
    certificates: true,
    unsupported: &[],
    // Only the PUK resets the PIV PIN.
    pin_reset: None,
};

const OPENPGP: Card = Card {
    family: "openpgp",
    writer: SO_OPENPGP,
    keys: &[(Some(0x01), "RSA:2048"), (Some(0x02), "RSA:2048"), (Some(0x03), "EC:secp384r1")],
    certificates: true,
    // PSO:CDS signs a DigestInfo, PSO:DECIPHER removes PKCS#1 v1.5 padding itself.
    unsupported: &[
        "RSA-X-509",
        "RSA-PKCS-PSS",
        "SHA1-RSA-PKCS-PSS",
        "SHA256-RSA-PKCS-PSS",
        "SHA384-RSA-PKCS-PSS",
        "SHA512-RSA-PKCS-PSS",
        "RSA-PKCS-OAEP",
    ],
    pin_reset: Some(SO_OPENPGP),
};

const GIDS: Card = Card {
    family: "gids",
    // GIDS containers belong to the user: the user PIN generates.
    writer: USER,
    keys: &[(None, "RSA:2048"), (None, "EC:prime256v1"), (None, "EC:secp384r1")],
    certificates: true,
    unsupported: &[],
    pin_reset: Some(SO_GIDS),
};

/// One place for every program of a test: the module, its readers, a scratch directory.
struct Rig {
    dir: PathBuf,
    module: PathBuf,
    readers: String,
}

/// A key on the card, as `pkcs11-tool --login -O` lists it.
#[derive(Debug, Clone, Default)]
struct KeyInfo {
    id: String,
    rsa: bool,
    sign: bool,
    decrypt: bool,
    derive: bool,
    always_authenticate: bool,
    /// `CKA_EC_POINT` in hex (a DER OCTET STRING), for EC keys.
    ec_point: Option<String>,
    curve_bits: u16,
}

impl Rig {
    fn new(dir: &Path, readers: &str) -> Self {
        let module = pkcs11_module().expect("the PKCS#11 module");
        fs::create_dir_all(dir.join("config")).unwrap();
        Self { dir: dir.to_path_buf(), module, readers: readers.to_owned() }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("SCARD_READERS", &self.readers)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .env("SCARD_LOG", self.dir.join("module.log"))
            .env("SCARD_LOG_LEVEL", "debug")
            .env_remove("OPENSSL_CONF");
        cmd
    }

    fn run(&self, cmd: &mut Command) -> Output {
        cmd.stdin(std::process::Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    /// Runs a program that must succeed; its standard output and error together.
    fn ok(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = self.command(program, args);
        let out = self.run(&mut cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ {program} {}\n{}", args.join(" "), tail(&text, 12));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{text}\n--- module log (tail) ---\n{}",
            out.status,
            tail(&fs::read_to_string(self.dir.join("module.log")).unwrap_or_default(), 40)
        );
        text
    }

    fn p11(&self, args: &[&str]) -> String {
        let module = self.module.display().to_string();
        let mut all = vec!["--module", module.as_str()];
        all.extend_from_slice(args);
        self.ok("pkcs11-tool", &all)
    }

    /// pkcs11-tool that may be refused with `CKR_MECHANISM_INVALID` (`false` then).
    fn p11_maybe(&self, args: &[&str]) -> bool {
        let module = self.module.display().to_string();
        let mut all = vec!["--module", module.as_str()];
        all.extend_from_slice(args);
        let mut cmd = self.command("pkcs11-tool", &all);
        let out = self.run(&mut cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            return true;
        }
        assert!(
            text.contains("CKR_MECHANISM_INVALID"),
            "pkcs11-tool {args:?} failed: {text}\n--- module log ---\n{}",
            tail(&fs::read_to_string(self.dir.join("module.log")).unwrap_or_default(), 40)
        );
        false
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.dir.join(name)).unwrap()
    }
}

/// The EC_POINT value pkcs11-tool prints after `EC_POINT:`.
fn ec_point_of(listing: &str) -> Option<String> {
    listing.lines().find_map(|l| l.trim().strip_prefix("EC_POINT:").map(|v| v.trim().to_owned()))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// A DER SubjectPublicKeyInfo of an EC point (RFC 5480 §2: id-ecPublicKey, namedCurve).
fn ec_spki(point: &[u8]) -> Vec<u8> {
    let prefix = match point.len() {
        // secp256r1
        65 => "3059301306072a8648ce3d020106082a8648ce3d030107034200",
        // secp384r1
        97 => "3076301006072a8648ce3d020106052b81040022036200",
        n => panic!("an EC point of {n} bytes"),
    };
    let mut der = hex(prefix);
    der.extend_from_slice(point);
    der
}

/// Parses `pkcs11-tool -O` blocks: the private keys, with the public key's EC point.
fn private_keys(listing: &str) -> Vec<KeyInfo> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in listing.lines() {
        if line.contains(" Object") && !line.starts_with(' ') && !line.starts_with('\t') {
            blocks.push((line.to_owned(), Vec::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push(line.trim().to_owned());
        }
    }
    let field = |body: &[String], name: &str| {
        body.iter().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let mut points = BTreeMap::new();
    for (head, body) in &blocks {
        if head.starts_with("Public Key Object; EC") {
            if let (Some(id), Some(p)) = (field(body, "ID:"), field(body, "EC_POINT:")) {
                points.insert(id, p);
            }
        }
    }
    blocks
        .iter()
        .filter(|(head, _)| head.starts_with("Private Key Object"))
        .map(|(head, body)| {
            let id = field(body, "ID:").unwrap_or_default();
            let usage = field(body, "Usage:").unwrap_or_default();
            let access = field(body, "Access:").unwrap_or_default();
            let ec_point = points.get(&id).cloned();
            KeyInfo {
                rsa: head.contains("RSA"),
                sign: usage.contains("sign"),
                decrypt: usage.contains("decrypt"),
                derive: usage.contains("derive"),
                always_authenticate: access.contains("always authenticate"),
                curve_bits: ec_point.as_ref().map_or(0, |p| if p.len() > 140 { 384 } else { 256 }),
                ec_point,
                id,
            }
        })
        .collect()
}

/// The whole exercise on one card (see the module documentation).
fn exercise(rig: &Rig, card: &Card) {
    let listed = rig.p11(&["-L"]);
    assert!(listed.contains("token label") && listed.contains("login required"), "{listed}");
    let mechs = rig.p11(&["-M"]);
    assert!(mechs.contains("ECDSA-SHA256") && mechs.contains("RSA-PKCS-OAEP"), "{mechs}");
    rig.p11(&["-O"]);

    // Key pairs, one pkcs11-tool run each.
    let ca = rig.path("ca.key");
    rig.ok("openssl", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &ca]);
    let mut generated = Vec::new();
    for (id, kind) in card.keys {
        let mut args: Vec<String> = card.writer.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--keypairgen", "--key-type", kind].map(str::to_owned));
        if let Some(id) = id {
            let id = format!("{id:02x}");
            args.extend(["--id".into(), id.clone()]);
            if kind.starts_with("RSA") {
                // The PIV public key is only known in this process: read it out now.
                let out = rig.path(&format!("gen{id}.der"));
                args.extend(
                    ["--read-object", "--type", "pubkey", "--id", &id, "-o", &out]
                        .map(str::to_owned),
                );
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rig.p11(&refs);
        assert!(out.contains("Key pair generated"), "{out}");
        let gen_id = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("ID:").map(|v| v.trim().to_owned()))
            .expect("the generated key's ID");
        if let Some(want) = id {
            assert_eq!(gen_id, format!("{want:02x}"), "the CKA_ID names the container");
        }
        let spki = match ec_point_of(&out) {
            Some(p) => ec_spki(&hex(&p)[2..]),
            None => {
                let file = rig.path(&format!("gen{gen_id}.der"));
                if id.is_none() {
                    rig.p11(&["--read-object", "--type", "pubkey", "--id", &gen_id, "-o", &file]);
                }
                fs::read(&file).unwrap()
            }
        };
        let der = rig.write(&format!("gen{gen_id}.spki"), &spki);
        let pem = rig.path(&format!("gen{gen_id}.pem"));
        rig.ok("openssl", &["pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem]);
        generated.push(gen_id);
    }
    if card.certificates {
        for id in &generated {
            let cert = rig.path(&format!("cert{id}.der"));
            let subject = format!("/CN=scard {} {id}/", card.family);
            let public = rig.path(&format!("gen{id}.pem"));
            rig.ok(
                "openssl",
                &[
                    "x509",
                    "-new",
                    "-subj",
                    &subject,
                    "-force_pubkey",
                    &public,
                    "-key",
                    &ca,
                    "-days",
                    "30",
                    "-outform",
                    "DER",
                    "-out",
                    &cert,
                ],
            );
            let mut args: Vec<&str> = card.writer.to_vec();
            args.extend(["--write-object", &cert, "--type", "cert", "--id", id]);
            rig.p11(&args);
        }
    }

    // Another process sees every key (and the PIV certificates).
    let public = rig.p11(&["-O"]);
    for id in &generated {
        assert!(public.contains(&format!("ID:         {id}")), "key {id} is listed:\n{public}");
    }
    if card.certificates {
        assert!(public.matches("Certificate Object").count() >= generated.len(), "{public}");
    }
    let listing = rig.p11(&["--login", "--pin", PIN, "-O"]);
    let keys = private_keys(&listing);
    assert!(keys.len() >= generated.len(), "{keys:?}");
    println!("keys: {keys:?}");

    // pkcs11-tool's own test of the module.
    let test = rig.p11(&["--test", "--login", "--pin", PIN]);
    assert!(test.contains("No errors") && !test.contains("ERR:"), "{test}");

    // The public keys as the card reports them, as PEM for OpenSSL.
    for k in &keys {
        let der = match &k.ec_point {
            Some(p) => rig.write(&format!("pub{}.der", k.id), &ec_spki(&hex(p)[2..])),
            None => {
                let out = rig.path(&format!("pub{}.der", k.id));
                rig.p11(&["--read-object", "--type", "pubkey", "--id", &k.id, "-o", &out]);
                out
            }
        };
        let pem = rig.path(&format!("pub{}.pem", k.id));
        rig.ok("openssl", &["pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem]);
    }

    let data = rig.write("data", b"signed by a simulated card through PKCS#11\n");
    let digest = |alg: &str| {
        let out = rig.path(&format!("data.{alg}"));
        rig.ok("openssl", &["dgst", &format!("-{alg}"), "-binary", "-out", &out, &data]);
        out
    };
    let mut refused = Vec::new();
    let mut checked = 0;

    // RSA signatures: every mechanism on the first RSA signing key, SHA-256 on the others.
    let rsa_signers: Vec<&KeyInfo> = keys.iter().filter(|k| k.rsa && k.sign).collect();
    for (n, k) in rsa_signers.iter().enumerate() {
        let public = rig.path(&format!("pub{}.pem", k.id));
        let sig = rig.path(&format!("sig{}", k.id));
        let sign = |mech: &str, input: &str, extra: &[&str]| {
            let mut args = vec![
                "--login", "--pin", PIN, "--sign", "--id", &k.id, "-m", mech, "-i", input, "-o",
                &sig,
            ];
            args.extend_from_slice(extra);
            rig.p11_maybe(&args)
        };
        let hashes: &[&str] =
            if n == 0 { &["sha1", "sha256", "sha384", "sha512"] } else { &["sha256"] };
        for h in hashes {
            let mech = format!("{}-RSA-PKCS", h.to_uppercase());
            if sign(&mech, &data, &[]) {
                rig.ok(
                    "openssl",
                    &["dgst", &format!("-{h}"), "-verify", &public, "-signature", &sig, &data],
                );
                checked += 1;
            } else {
                refused.push(mech);
            }
            let mech = format!("{}-RSA-PKCS-PSS", h.to_uppercase());
            if sign(&mech, &data, &[]) {
                rig.ok(
                    "openssl",
                    &[
                        "dgst",
                        &format!("-{h}"),
                        "-sigopt",
                        "rsa_padding_mode:pss",
                        "-sigopt",
                        "rsa_pss_saltlen:auto",
                        "-verify",
                        &public,
                        "-signature",
                        &sig,
                        &data,
                    ],
                );
                checked += 1;
            } else {
                refused.push(mech);
            }
        }
        if n > 0 {
            continue;
        }
        // CKM_RSA_PKCS over a DigestInfo (RFC 8017 §9.2 note 1: SHA-256's prefix).
        let mut info = hex("3031300d060960864801650304020105000420");
        info.extend_from_slice(&fs::read(digest("sha256")).unwrap());
        let info_file = rig.write("digestinfo", &info);
        if sign("RSA-PKCS", &info_file, &[]) {
            rig.ok("openssl", &["dgst", "-sha256", "-verify", &public, "-signature", &sig, &data]);
            checked += 1;
        } else {
            refused.push("RSA-PKCS".into());
        }
        // CKM_RSA_X_509 over the whole EMSA-PKCS1-v1_5 block: a PKCS#1 signature again.
        let mut block = vec![0x00, 0x01];
        block.resize(256 - info.len() - 1, 0xFF);
        block.push(0x00);
        block.extend_from_slice(&info);
        let block_file = rig.write("block", &block);
        if sign("RSA-X-509", &block_file, &[]) {
            rig.ok("openssl", &["dgst", "-sha256", "-verify", &public, "-signature", &sig, &data]);
            checked += 1;
        } else {
            refused.push("RSA-X-509".into());
        }
        // CKM_RSA_PKCS_PSS over a digest.
        let d = digest("sha256");
        if sign("RSA-PKCS-PSS", &d, &["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"]) {
            rig.ok(
                "openssl",
                &[
                    "pkeyutl",
                    "-verify",
                    "-pubin",
                    "-inkey",
                    &public,
                    "-in",
                    &d,
                    "-sigfile",
                    &sig,
                    "-pkeyopt",
                    "rsa_padding_mode:pss",
                    "-pkeyopt",
                    "digest:sha256",
                    "-pkeyopt",
                    "rsa_pss_saltlen:auto",
                ],
            );
            checked += 1;
        } else {
            refused.push("RSA-PKCS-PSS".into());
        }
    }

    // ECDSA: every mechanism on every EC signing key (P-256, P-384, PIN-always keys).
    for k in keys.iter().filter(|k| !k.rsa && k.sign) {
        let public = rig.path(&format!("pub{}.pem", k.id));
        let sig = rig.path(&format!("sig{}", k.id));
        let sign = |mech: &str, input: &str| {
            rig.p11(&[
                "--login",
                "--pin",
                PIN,
                "--sign",
                "--id",
                &k.id,
                "-m",
                mech,
                "--signature-format",
                "openssl",
                "-i",
                input,
                "-o",
                &sig,
            ]);
        };
        let d = digest(if k.curve_bits == 384 { "sha384" } else { "sha256" });
        sign("ECDSA", &d);
        rig.ok(
            "openssl",
            &["pkeyutl", "-verify", "-pubin", "-inkey", &public, "-in", &d, "-sigfile", &sig],
        );
        for h in ["sha1", "sha256", "sha384", "sha512"] {
            sign(&format!("ECDSA-{}", h.to_uppercase()), &data);
            rig.ok(
                "openssl",
                &["dgst", &format!("-{h}"), "-verify", &public, "-signature", &sig, &data],
            );
        }
        checked += 5;
    }

    // Decryption: every mechanism on the first RSA decryption key.
    if let Some(k) = keys.iter().find(|k| k.rsa && k.decrypt) {
        let public = rig.path(&format!("pub{}.pem", k.id));
        let message = rig.write("message", b"ten bytes!");
        let cipher = rig.path("cipher");
        let plain = rig.path("plain");
        let cases: [(&str, &[&str], &[&str]); 3] = [
            ("RSA-PKCS", &["-pkeyopt", "rsa_padding_mode:pkcs1"], &[]),
            (
                "RSA-PKCS-OAEP",
                &[
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    "rsa_oaep_md:sha256",
                    "-pkeyopt",
                    "rsa_mgf1_md:sha256",
                ],
                &["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"],
            ),
            (
                "RSA-PKCS-OAEP",
                &[
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    "rsa_oaep_md:sha1",
                    "-pkeyopt",
                    "rsa_mgf1_md:sha1",
                ],
                &["--hash-algorithm", "SHA-1", "--mgf", "MGF1-SHA1"],
            ),
        ];
        for (mech, enc, dec) in cases {
            let mut args = vec![
                "pkeyutl", "-encrypt", "-pubin", "-inkey", &public, "-in", &message, "-out",
                &cipher,
            ];
            args.extend_from_slice(enc);
            rig.ok("openssl", &args);
            let mut args = vec![
                "--login",
                "--pin",
                PIN,
                "--decrypt",
                "--id",
                &k.id,
                "-m",
                mech,
                "-i",
                &cipher,
                "-o",
                &plain,
            ];
            args.extend_from_slice(dec);
            if rig.p11_maybe(&args) {
                assert_eq!(rig.read("plain"), b"ten bytes!", "{mech}");
                checked += 1;
            } else {
                refused.push(mech.into());
            }
        }
        // Raw RSA: a block below the modulus comes back whole.
        let mut block = vec![0u8; 256];
        block[1] = 0x5C;
        block[255] = 0xA5;
        let block_file = rig.write("rawblock", &block);
        rig.ok(
            "openssl",
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-inkey",
                &public,
                "-in",
                &block_file,
                "-out",
                &cipher,
                "-pkeyopt",
                "rsa_padding_mode:none",
            ],
        );
        if rig.p11_maybe(&[
            "--login",
            "--pin",
            PIN,
            "--decrypt",
            "--id",
            &k.id,
            "-m",
            "RSA-X-509",
            "-i",
            &cipher,
            "-o",
            &plain,
        ]) {
            assert_eq!(rig.read("plain"), block);
            checked += 1;
        } else {
            refused.push("RSA-X-509".into());
        }
    }

    // ECDH with every key that derives, checked against OpenSSL's own derivation.
    for k in keys.iter().filter(|k| k.derive) {
        let curve = if k.curve_bits == 384 { "P-384" } else { "P-256" };
        let peer = rig.path("peer.key");
        let peer_pub = rig.path("peer.der");
        rig.ok(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-out",
                &peer,
            ],
        );
        rig.ok("openssl", &["pkey", "-in", &peer, "-pubout", "-outform", "DER", "-out", &peer_pub]);
        let secret = rig.path("secret");
        rig.p11(&[
            "--login",
            "--pin",
            PIN,
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--id",
            &k.id,
            "-i",
            &peer_pub,
            "-o",
            &secret,
        ]);
        let expected = rig.path("expected");
        let public = rig.path(&format!("pub{}.pem", k.id));
        rig.ok(
            "openssl",
            &["pkeyutl", "-derive", "-inkey", &peer, "-peerkey", &public, "-out", &expected],
        );
        assert_eq!(rig.read("secret"), rig.read("expected"), "ECDH with key {}", k.id);
        checked += 1;
    }
    refused.sort();
    refused.dedup();
    let mut expected: Vec<String> = card.unsupported.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(refused, expected, "mechanisms the card refused");
    println!(
        "{}: {checked} operations checked with OpenSSL; refused as expected: {refused:?}",
        card.family
    );

    // GnuTLS's p11tool.
    let provider = rig.module.display().to_string();
    let all = rig.ok("p11tool", &["--provider", &provider, "--list-all"]);
    assert!(all.matches("Type: Public key").count() >= generated.len(), "{all}");
    let certs = rig.ok("p11tool", &["--provider", &provider, "--list-all-certs"]);
    if card.certificates {
        assert!(certs.matches("Type: X.509 Certificate").count() >= generated.len(), "{certs}");
    }

    // OpenSSL signs a file through libp11's engine; OpenSSL verifies it.
    let conf = format!(
        "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n\
         [engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n\
         dynamic_path = {ENGINE}\nMODULE_PATH = {provider}\ninit = 0\n"
    );
    let conf = rig.write("engine.cnf", conf.as_bytes());
    for k in keys.iter().filter(|k| k.sign && !k.always_authenticate).take(2) {
        let uri = format!("pkcs11:id=%{};type=private;pin-value={PIN}", k.id);
        let sig = rig.path(&format!("engine{}.sig", k.id));
        let mut cmd = rig.command(
            "openssl",
            &[
                "dgst", "-engine", "pkcs11", "-keyform", "engine", "-sign", &uri, "-sha256",
                "-out", &sig, &data,
            ],
        );
        cmd.env("OPENSSL_CONF", &conf);
        let out = rig.run(&mut cmd);
        assert!(out.status.success(), "openssl engine: {}", String::from_utf8_lossy(&out.stderr));
        let public = rig.path(&format!("pub{}.pem", k.id));
        rig.ok("openssl", &["dgst", "-sha256", "-verify", &public, "-signature", &sig, &data]);
    }

    // PINs: the SO sets the user PIN where the admin may, else the user changes it; then
    // the user changes it back.
    match card.pin_reset {
        Some(so) => {
            let mut args = so.to_vec();
            args.extend(["--init-pin", "--new-pin", "654321"]);
            let out = rig.p11(&args);
            assert!(out.contains("User PIN successfully initialized"), "{out}");
        }
        None => {
            rig.p11(&["--login", "--pin", PIN, "--change-pin", "--new-pin", "654321"]);
        }
    }
    rig.p11(&["--login", "--pin", "654321", "--change-pin", "--new-pin", PIN]);
    let listing = rig.p11(&["--login", "--pin", PIN, "-O"]);
    assert_eq!(private_keys(&listing).len(), keys.len());

    // OpenSSH lists the public keys.
    let ssh = rig.ok("ssh-keygen", &["-D", &provider]);
    let lines: Vec<&str> =
        ssh.lines().filter(|l| l.starts_with("ssh-") || l.starts_with("ecdsa-")).collect();
    assert!(lines.len() >= generated.len(), "{ssh}");
    assert!(lines.iter().any(|l| l.starts_with("ecdsa-sha2-nistp384")), "{ssh}");
    if keys.iter().any(|k| k.rsa) {
        assert!(lines.iter().any(|l| l.starts_with("ssh-rsa")), "{ssh}");
    }
}

/// A test with the module's in-process simulated card.
fn direct(test: &str, card: &Card) {
    if !tools_present(test, &TOOLS) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("scard-p11tool-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let readers = format!("sim:{}:{}", card.family, dir.join("card.json").display());
    let rig = Rig::new(&dir, &readers);
    exercise(&rig, card);
    let _ = fs::remove_dir_all(&dir);
}

/// The same through pcscd, with `scard sim` on vpcd slot 0.
fn through_pcscd(test: &str, card: &Card) {
    if !tools_present(test, &TOOLS) {
        return;
    }
    let Some(mut sb) = sandbox(test, &["pkcs11-tool", "openssl", "p11tool", "ssh-keygen"]) else {
        return;
    };
    let state = sb.dir().join("sim.json");
    sb.attach(card.family, 0, &[std::ffi::OsStr::new("--state"), state.as_os_str()]);
    let before = sb.apdu_count();
    let rig = Rig::new(sb.dir(), &format!("pcsc:{}", Sandbox::reader(0)));
    exercise(&rig, card);
    println!("{}: {} APDUs through pcscd", card.family, sb.apdu_count() - before);
}

#[test]
fn pkcs11_tool_piv() {
    direct("pkcs11_tool_piv", &PIV);
}

#[test]
fn pkcs11_tool_openpgp() {
    direct("pkcs11_tool_openpgp", &OPENPGP);
}

#[test]
fn pkcs11_tool_gids() {
    direct("pkcs11_tool_gids", &GIDS);
}

#[test]
fn pkcs11_tool_piv_pcscd() {
    through_pcscd("pkcs11_tool_piv_pcscd", &PIV);
}

#[test]
fn pkcs11_tool_openpgp_pcscd() {
    through_pcscd("pkcs11_tool_openpgp_pcscd", &OPENPGP);
}

#[test]
fn pkcs11_tool_gids_pcscd() {
    through_pcscd("pkcs11_tool_gids_pcscd", &GIDS);
}
