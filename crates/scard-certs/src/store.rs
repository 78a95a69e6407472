//! The certificate propagation store: what the Windows certificate propagation service does
//! with the user's MY and ROOT stores, as a folder.
//!
//! - `DIR/my/<SHA-1>.der`: every container certificate of a present card, with
//!   `DIR/my/<SHA-1>.json` naming the reader, the card id, the container, the key spec and the
//!   key name the key storage provider understands (`\\.\<reader>\<container>`, the
//!   Microsoft Smart Card KSP's fully qualified container name).
//! - `DIR/root/<SHA-1>.der`: CA certificates of the card (basicConstraints cA TRUE), with
//!   `DIR/root/<SHA-1>.json` listing the cards that brought them.
//!
//! Every write goes to a temporary file in the same folder, is synced, then renamed over the
//! final name (POSIX `rename(2)` is atomic), so a crash never leaves a half-written
//! certificate. The sidecar is written before its certificate and removed after it: a sidecar
//! is the record of what this store put there, and a crash leaves at worst a sidecar without
//! a certificate, which the next removal cleans up.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rules::KeySpec;
use crate::{CertError, LogonCert};

/// A card as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIdentity {
    /// The reader the card is in.
    pub reader: String,
    /// The card id (the `cardid` file, 16 bytes) in hex.
    pub card_id: String,
}

/// One container certificate to propagate.
#[derive(Debug, Clone)]
pub struct ContainerCert {
    /// The container name.
    pub container: String,
    /// The key spec of its key.
    pub key_spec: KeySpec,
    /// The certificate.
    pub cert: LogonCert,
}

/// The sidecar of a `my/` certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySidecar {
    /// The reader.
    pub reader: String,
    /// The card id, hex.
    pub card_id: String,
    /// The container name.
    pub container: String,
    /// `AT_KEYEXCHANGE` or `AT_SIGNATURE`.
    pub key_spec: String,
    /// The key name for the key storage provider: `\\.\<reader>\<container>`.
    pub key_name: String,
    /// SHA-1 thumbprint, upper-case hex.
    pub thumbprint: String,
    /// The certificate's subject (RFC 4514).
    pub subject: String,
    /// The UPN, when there is one.
    pub upn: Option<String>,
}

/// The sidecar of a `root/` certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootSidecar {
    /// SHA-1 thumbprint, upper-case hex.
    pub thumbprint: String,
    /// The certificate's subject.
    pub subject: String,
    /// Card ids of the cards that brought it (it stays while one is listed).
    pub cards: Vec<String>,
}

/// What a propagation or removal changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Certificates written.
    pub written: Vec<PathBuf>,
    /// Certificates removed.
    pub removed: Vec<PathBuf>,
}

/// The store under a folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.to_path_buf(), source }
}

/// The key name the key storage provider understands for a container.
pub fn key_name(reader: &str, container: &str) -> String {
    format!("\\\\.\\{reader}\\{container}")
}

impl Store {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `DIR/my`.
    pub fn my_dir(&self) -> PathBuf {
        self.dir.join("my")
    }

    /// `DIR/root`.
    pub fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Propagates a card's certificates: each container certificate into `my/`; with
    /// `roots`, the CA ones (basicConstraints cA TRUE) also into `root/`.
    pub fn propagate(
        &self,
        card: &CardIdentity,
        certs: &[ContainerCert],
        roots: bool,
    ) -> Result<Changes, CertError> {
        let mut changes = Changes::default();
        let my = self.my_dir();
        for c in certs {
            let thumbprint = c.cert.thumbprint_hex();
            let sidecar = MySidecar {
                reader: card.reader.clone(),
                card_id: card.card_id.clone(),
                container: c.container.clone(),
                key_spec: c.key_spec.registry_name().to_owned(),
                key_name: key_name(&card.reader, &c.container),
                thumbprint: thumbprint.clone(),
                subject: c.cert.subject(),
                upn: c.cert.upn().map(str::to_owned),
            };
            let der_path = my.join(format!("{thumbprint}.der"));
            write_json(&my.join(format!("{thumbprint}.json")), &sidecar)?;
            write_atomic(&der_path, c.cert.der())?;
            changes.written.push(der_path);
        }
        if roots {
            let root = self.root_dir();
            for c in certs.iter().filter(|c| c.cert.is_ca()) {
                let thumbprint = c.cert.thumbprint_hex();
                let json = root.join(format!("{thumbprint}.json"));
                let mut sidecar = match read_json::<RootSidecar>(&json)? {
                    Some(s) => s,
                    None => RootSidecar {
                        thumbprint: thumbprint.clone(),
                        subject: c.cert.subject(),
                        cards: Vec::new(),
                    },
                };
                if !sidecar.cards.contains(&card.card_id) {
                    sidecar.cards.push(card.card_id.clone());
                }
                let der_path = root.join(format!("{thumbprint}.der"));
                write_json(&json, &sidecar)?;
                write_atomic(&der_path, c.cert.der())?;
                changes.written.push(der_path);
            }
        }
        Ok(changes)
    }

    /// Removes what was propagated for the card `card_id` into `my/`; with `roots`, also drops
    /// the card from the `root/` sidecars and removes the roots no present card brought.
    pub fn remove_card(&self, card_id: &str, roots: bool) -> Result<Changes, CertError> {
        let mut changes = Changes::default();
        for (json, sidecar) in self.my_sidecars()? {
            if sidecar.card_id == card_id {
                changes.removed.extend(remove_pair(&json)?);
            }
        }
        if roots {
            for (json, mut sidecar) in self.root_sidecars()? {
                if !sidecar.cards.iter().any(|c| c == card_id) {
                    continue;
                }
                sidecar.cards.retain(|c| c != card_id);
                if sidecar.cards.is_empty() {
                    changes.removed.extend(remove_pair(&json)?);
                } else {
                    write_json(&json, &sidecar)?;
                }
            }
        }
        Ok(changes)
    }

    /// Removes every `my/` certificate this store propagated (a service starting over, or
    /// stopping).
    pub fn clear_my(&self) -> Result<Changes, CertError> {
        let mut changes = Changes::default();
        for (json, _) in self.my_sidecars()? {
            changes.removed.extend(remove_pair(&json)?);
        }
        Ok(changes)
    }

    /// Removes every `root/` certificate this store propagated (RootCertificateCleanupOption
    /// 1: at sign-out).
    pub fn clear_roots(&self) -> Result<Changes, CertError> {
        let mut changes = Changes::default();
        for (json, _) in self.root_sidecars()? {
            changes.removed.extend(remove_pair(&json)?);
        }
        Ok(changes)
    }

    /// The `my/` sidecars.
    pub fn my_sidecars(&self) -> Result<Vec<(PathBuf, MySidecar)>, CertError> {
        sidecars(&self.my_dir())
    }

    /// The `root/` sidecars.
    pub fn root_sidecars(&self) -> Result<Vec<(PathBuf, RootSidecar)>, CertError> {
        sidecars(&self.root_dir())
    }
}

/// Every `*.json` sidecar of a folder (none when the folder does not exist), sorted by name.
fn sidecars<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<(PathBuf, T)>, CertError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        if let Some(sidecar) = read_json(&path)? {
            out.push((path, sidecar));
        }
    }
    Ok(out)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, CertError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CertError::Sidecar { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CertError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| CertError::Sidecar { path: path.to_path_buf(), reason: e.to_string() })?;
    write_atomic(path, &text)
}

/// Removes a sidecar's certificate, then the sidecar. Returns the certificate's path when it
/// was there.
fn remove_pair(json: &Path) -> Result<Option<PathBuf>, CertError> {
    let der = json.with_extension("der");
    let removed = match fs::remove_file(&der) {
        Ok(()) => Some(der),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&der)(e)),
    };
    match fs::remove_file(json) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(json)(e)),
    }
    Ok(removed)
}

/// Writes `data` to `path` atomically: a temporary file in the same folder, synced, renamed.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), CertError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    // The rename is durable once the folder is synced (best effort: not every platform lets
    // a folder be opened for that).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testcert::CertSpec;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn scratch(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("scard-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        Dir(d)
    }

    fn cert(spec: CertSpec) -> LogonCert {
        LogonCert::from_der(&spec.build().unwrap()).unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|r| {
                r.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn propagate_and_remove() {
        let d = scratch("basic");
        let store = Store::new(&d.0);
        let user = cert(CertSpec::logon("alice@example.com"));
        let ca = cert(CertSpec::bare("Root").issuer(None).basic_constraints(true));
        let card = CardIdentity { reader: "sim:gids".into(), card_id: "00AA".into() };
        let certs = [
            ContainerCert {
                container: "auth".into(),
                key_spec: KeySpec::Exchange,
                cert: user.clone(),
            },
            ContainerCert {
                container: "ca".into(),
                key_spec: KeySpec::Signature,
                cert: ca.clone(),
            },
        ];
        let changes = store.propagate(&card, &certs, true).unwrap();
        assert_eq!(changes.written.len(), 3);
        let t = user.thumbprint_hex();
        assert_eq!(files(&store.my_dir()).len(), 4);
        assert_eq!(fs::read(store.my_dir().join(format!("{t}.der"))).unwrap(), user.der());
        let sidecars = store.my_sidecars().unwrap();
        let (_, sidecar) = sidecars.iter().find(|(_, s)| s.container == "auth").unwrap();
        assert_eq!(sidecar.key_name, "\\\\.\\sim:gids\\auth");
        assert_eq!(sidecar.key_spec, "AT_KEYEXCHANGE");
        assert_eq!(sidecar.upn.as_deref(), Some("alice@example.com"));
        assert_eq!(
            files(&store.root_dir()),
            [format!("{}.der", ca.thumbprint_hex()), format!("{}.json", ca.thumbprint_hex())]
        );

        // A second card brings the same root: it stays until both are gone.
        let other = CardIdentity { reader: "sim:piv".into(), card_id: "00BB".into() };
        store.propagate(&other, &certs[1..], true).unwrap();
        let removed = store.remove_card("00AA", true).unwrap();
        assert_eq!(
            removed.removed.len(),
            1,
            "only the user certificate; the CA is in my/ for 00BB"
        );
        assert_eq!(files(&store.root_dir()).len(), 2);
        store.remove_card("00BB", true).unwrap();
        assert!(files(&store.my_dir()).is_empty());
        assert!(files(&store.root_dir()).is_empty());
    }

    #[test]
    fn roots_stay_unless_asked_and_no_temporary_files_remain() {
        let d = scratch("roots");
        let store = Store::new(&d.0);
        let ca = cert(CertSpec::bare("Root").issuer(None).basic_constraints(true));
        let card = CardIdentity { reader: "r".into(), card_id: "01".into() };
        let certs =
            [ContainerCert { container: "c".into(), key_spec: KeySpec::Exchange, cert: ca }];
        store.propagate(&card, &certs, true).unwrap();
        store.remove_card("01", false).unwrap();
        assert!(files(&store.my_dir()).is_empty());
        assert_eq!(files(&store.root_dir()).len(), 2);
        assert!(files(&store.root_dir()).iter().all(|f| !f.starts_with('.')));
        store.clear_roots().unwrap();
        assert!(files(&store.root_dir()).is_empty());
        // Without root propagation nothing goes to root/.
        store.propagate(&card, &certs, false).unwrap();
        assert!(files(&store.root_dir()).is_empty());
        store.clear_my().unwrap();
        assert!(files(&store.my_dir()).is_empty());
    }

    #[test]
    fn a_crash_leftover_sidecar_is_cleaned_and_a_bad_one_is_named() {
        let d = scratch("crash");
        let store = Store::new(&d.0);
        let sidecar = MySidecar {
            reader: "r".into(),
            card_id: "02".into(),
            container: "c".into(),
            key_spec: "AT_KEYEXCHANGE".into(),
            key_name: key_name("r", "c"),
            thumbprint: "AB".into(),
            subject: "CN=x".into(),
            upn: None,
        };
        write_json(&store.my_dir().join("AB.json"), &sidecar).unwrap();
        assert_eq!(store.remove_card("02", true).unwrap().removed.len(), 0);
        assert!(files(&store.my_dir()).is_empty());
        fs::write(store.my_dir().join("bad.json"), b"{}").unwrap();
        let err = store.remove_card("02", false).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
    }
}
