//! The `CardModule` trait: what the Smart Card Minidriver Specification v7 asks of a card
//! minidriver (Card* entry points), as Rust methods. One implementation per card family.
//!
//! Every method runs inside a transaction on the module's [`CardChannel`] (joining the
//! caller's when one is open: see [`CardChannel::in_transaction`]). A failed VERIFY is
//! returned, never retried. Unsupported algorithms and paddings are refused by the `check_*`
//! methods before any PIN is asked for.

use crate::channel::CardChannel;
use crate::error::{CardError, Result};
use crate::fs::{
    CardCf, FileInfo, FilePath, compress_certificate, decompress_certificate, encode_cmapfile,
};
use crate::model::CardModel;
use crate::types::{
    CardIdentity, CardProperties, ContainerInfo, DecryptPadding, KeyAlgorithm, Pin, PinId, PinInfo,
    PinSet, PublicKey, Secret, SignRequest,
};

/// A card, driven through its family's profile.
pub trait CardModule: Send + std::fmt::Debug {
    /// The card model the module was opened with.
    fn model(&self) -> &CardModel;

    /// The channel to the card (transactions, stats, authenticated state).
    fn channel(&mut self) -> &mut CardChannel;

    /// Card properties: family, model, card id, serial, capabilities, algorithms, free
    /// containers (Minidriver v7 §4.1 CardGetProperty).
    fn properties(&mut self) -> Result<CardProperties>;

    /// The card's identity and what its model can do, reading no more than it takes to
    /// identify the card (a host calls it on every insertion and in every new process).
    /// Default: [`CardModule::properties`], which may read every container.
    fn identity(&mut self) -> Result<CardIdentity> {
        self.properties().map(CardIdentity::from)
    }

    /// The 16-byte card identity (the `cardid` file): stable per card, derived from the
    /// card's own unique data, never a repeated serial.
    fn card_id(&mut self) -> Result<[u8; 16]>;

    /// The PINs with their info and, where the card tells without spending a try, tries left.
    fn pins(&mut self) -> Result<Vec<PinInfo>>;

    /// Tries left of one PIN, when the card can tell without spending a try.
    fn tries_left(&mut self, pin: PinId) -> Result<Option<u8>>;

    /// The PINs with their info, sending nothing only to learn the tries left: those are
    /// given where the profile knows them already (from a VERIFY's answer, from data it read
    /// anyway), else `None`. Default: [`CardModule::pins`].
    fn pins_without_probe(&mut self) -> Result<Vec<PinInfo>> {
        self.pins()
    }

    /// Verifies a PIN (CardAuthenticatePin / CardAuthenticateEx). Length rules are checked
    /// before anything is sent; a wrong PIN is [`CardError::WrongPin`] with the tries left.
    fn authenticate(&mut self, pin: PinId, value: &Pin) -> Result<()>;

    /// For cards whose admin is a key (PIV management key): a fresh challenge
    /// (CardGetChallengeEx).
    fn admin_challenge(&mut self) -> Result<Vec<u8>> {
        Err(self.unsupported("admin challenge-response"))
    }

    /// Answers the last challenge (CardAuthenticateChallenge).
    fn admin_response(&mut self, response: &[u8]) -> Result<()> {
        let _ = response;
        Err(self.unsupported("admin challenge-response"))
    }

    /// Authenticates the admin with a key held by the caller (the PIV management key, the
    /// GIDS admin key), doing the challenge-response on the host.
    fn authenticate_admin_key(&mut self, key: &Pin) -> Result<()> {
        let _ = key;
        Err(self.unsupported("admin key authentication"))
    }

    /// Changes a PIN (CardChangeAuthenticatorEx with PIN_CHANGE_FLAG_CHANGEPIN).
    fn change_pin(&mut self, pin: PinId, old: &Pin, new: &Pin) -> Result<()>;

    /// Unblocks a PIN with an unblock code or admin credential and sets a new value
    /// (PIN_CHANGE_FLAG_UNBLOCK).
    fn unblock_pin(&mut self, pin: PinId, unblock: &Pin, new: &Pin) -> Result<()>;

    /// Drops authentication of a set of PINs (CardDeauthenticateEx).
    fn deauthenticate(&mut self, set: PinSet) -> Result<()>;

    /// The containers, in index order, empty ones included.
    fn containers(&mut self) -> Result<Vec<ContainerInfo>>;

    /// One container.
    fn container(&mut self, index: u8) -> Result<ContainerInfo> {
        let all = self.containers()?;
        let count = all.len();
        all.into_iter().find(|c| c.index == index).ok_or(CardError::NoContainer { index, count })
    }

    /// One container for an operation with its key: as [`CardModule::container`] (the
    /// public key included), but a card may leave `has_certificate` false when finding out
    /// would cost reads the key does not need (OpenPGP: its certificate record). Default:
    /// [`CardModule::container`].
    fn container_for_key(&mut self, index: u8) -> Result<ContainerInfo> {
        self.container(index)
    }

    /// The container read from the card again, dropping what the profile kept about it
    /// (in this process or from an earlier one): after an operation whose result shows the
    /// key is not the one known (a signature that does not verify under it). Default:
    /// [`CardModule::container`].
    fn reread_container(&mut self, index: u8) -> Result<ContainerInfo> {
        self.container(index)
    }

    /// Generates a key on the card in a container (CardCreateContainerEx, CARD_CREATE_CONTAINER_KEY_GEN).
    fn generate_key(&mut self, index: u8, algorithm: KeyAlgorithm) -> Result<PublicKey>;

    /// Imports a private key (PKCS#8 DER) into a container (CARD_CREATE_CONTAINER_KEY_IMPORT).
    fn import_key(&mut self, index: u8, pkcs8_der: &Secret) -> Result<()> {
        let _ = (index, pkcs8_der);
        Err(self.unsupported("key import"))
    }

    /// Deletes a container's key and certificate (CardDeleteContainer).
    fn delete_container(&mut self, index: u8) -> Result<()>;

    /// Checks that a signature request can be served, without touching PINs
    /// (size-only queries and unsupported paddings fail here).
    fn check_sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<()>;

    /// Signs (CardSignData). RSA signatures are the modulus size; ECDSA is raw r || s.
    fn sign(&mut self, index: u8, request: &SignRequest<'_>) -> Result<Vec<u8>>;

    /// Checks that a decryption can be served, without touching PINs.
    fn check_decrypt(&mut self, index: u8, padding: &DecryptPadding) -> Result<()>;

    /// Decrypts (CardRSADecrypt) and removes the padding.
    fn decrypt(&mut self, index: u8, padding: &DecryptPadding, data: &[u8]) -> Result<Secret>;

    /// ECDH with a peer's public key (CardConstructDHAgreement); the shared secret is x.
    fn agree(&mut self, index: u8, peer: &PublicKey) -> Result<Secret>;

    /// The certificate of a container (DER, uncompressed), if any.
    fn certificate(&mut self, index: u8) -> Result<Option<Vec<u8>>>;

    /// Stores (Some) or removes (None) a container's certificate. Needs admin authentication
    /// on most cards.
    fn put_certificate(&mut self, index: u8, der: Option<&[u8]>) -> Result<()>;

    /// The cache freshness counters. Cards that can store them keep them on the card; the
    /// others count in the module (and say so in [`CardModule::freshness_on_card`]).
    fn cardcf(&mut self) -> Result<CardCf>;

    /// Whether [`CardModule::cardcf`] is stored on the card (so a host cache keyed by it is
    /// valid across processes and writers).
    fn freshness_on_card(&self) -> bool;

    /// Names of the files in a directory (`None`: the root), for a synthesized file system:
    /// the standard files plus one kxc/ksc per container with a certificate.
    fn list_files(&mut self, dir: Option<&str>) -> Result<Vec<String>> {
        match dir.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("/") => {
                Ok(vec!["cardid".into(), "cardcf".into(), "cardapps".into()])
            }
            Some("mscp") => {
                let mut names = vec!["cmapfile".to_owned()];
                for c in self.containers()? {
                    if c.has_certificate {
                        if let Some(p) = FilePath::certificate(&c) {
                            names.push(p.name().trim_start_matches("mscp/").to_owned());
                        }
                    }
                }
                Ok(names)
            }
            Some(other) => Err(CardError::FileNotFound { path: other.to_owned() }),
        }
    }

    /// Reads a file (CardReadFile). Synthesized by default from the card's objects.
    fn read_file(&mut self, path: &FilePath) -> Result<Vec<u8>> {
        match path {
            FilePath::CardId => Ok(self.card_id()?.to_vec()),
            FilePath::CardCf => Ok(self.cardcf()?.encode().to_vec()),
            // Minidriver v7 §5.1.3: one 8-byte application name, "mscp", zero-padded.
            FilePath::CardApps => Ok(b"mscp\0\0\0\0".to_vec()),
            FilePath::CmapFile => Ok(encode_cmapfile(&self.containers()?)),
            FilePath::KeyExchangeCert(i) | FilePath::SignatureCert(i) => {
                let container = self.container(*i)?;
                if FilePath::certificate(&container).as_ref() != Some(path) {
                    return Err(CardError::FileNotFound { path: path.name() });
                }
                match self.certificate(*i)? {
                    Some(der) if self.model().certificate_compression => compress_certificate(&der),
                    Some(der) => Ok(der),
                    None => Err(CardError::FileNotFound { path: path.name() }),
                }
            }
            _ => Err(CardError::FileNotFound { path: path.name() }),
        }
    }

    /// Writes a file (CardWriteFile). A synthesized file system takes certificate files only.
    fn write_file(&mut self, path: &FilePath, data: &[u8]) -> Result<()> {
        match path {
            FilePath::KeyExchangeCert(i) | FilePath::SignatureCert(i) => {
                let der = decompress_certificate(data)?;
                self.put_certificate(*i, Some(&der))
            }
            _ => Err(self
                .unsupported(&format!("writing {} (synthesized from card objects)", path.name()))),
        }
    }

    /// Deletes a file (CardDeleteFile). A synthesized file system deletes certificate files only.
    fn delete_file(&mut self, path: &FilePath) -> Result<()> {
        match path {
            FilePath::KeyExchangeCert(i) | FilePath::SignatureCert(i) => {
                self.put_certificate(*i, None)
            }
            _ => Err(self
                .unsupported(&format!("deleting {} (synthesized from card objects)", path.name()))),
        }
    }

    /// File info (CardGetFileInfo).
    fn file_info(&mut self, path: &FilePath) -> Result<FileInfo> {
        let size = self.read_file(path)?.len();
        Ok(FileInfo { size, read_everyone: true, write_user: false })
    }

    /// An "unsupported" error naming this card's model.
    fn unsupported(&self, what: &str) -> CardError {
        CardError::Unsupported { what: what.to_owned(), model: self.model().name.clone() }
    }
}

/// Runs `f` inside one transaction on the module's card: everything `f` does (e.g. VERIFY
/// then sign) happens without another application in between.
pub fn with_transaction<R>(
    card: &mut dyn CardModule,
    f: impl FnOnce(&mut dyn CardModule) -> Result<R>,
) -> Result<R> {
    card.channel().begin()?;
    let result = f(card);
    let ended = card.channel().end();
    let value = result?;
    ended?;
    Ok(value)
}
