//! Mechanisms: which the module offers for a card, their parameters (read by the C boundary
//! into [`MechParams`], checked here), and how a signature or decryption request is formed
//! for the key storage provider (hashing on the host for the hash-and-sign mechanisms).

use cryptoki_sys::*;
use scard_ksp::CardSummary;
use scard_minidriver::{Curve, DecryptPadding, HashAlg, KeyAlgorithm, PublicKey, SignPadding};

use crate::error::{Error, Result};
use crate::objects::Key;

/// A mechanism as the application gave it.
#[derive(Debug, Clone)]
pub(crate) struct Mechanism {
    /// `CKM_*`.
    pub(crate) kind: CK_MECHANISM_TYPE,
    /// Its parameter.
    pub(crate) params: MechParams,
}

/// Which parameter structure a mechanism takes (the C boundary reads that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamKind {
    /// No parameter.
    None,
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    Pss,
    /// `CK_RSA_PKCS_OAEP_PARAMS`.
    Oaep,
    /// `CK_ECDH1_DERIVE_PARAMS`.
    Ecdh,
}

/// A mechanism parameter, copied out of the application's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MechParams {
    /// None given.
    None,
    /// `CK_RSA_PKCS_PSS_PARAMS` (PKCS#11 3.0 §2.1.14).
    Pss {
        /// The hash of the message (`CKM_SHA256`...).
        hash_alg: CK_MECHANISM_TYPE,
        /// `CKG_MGF1_*`.
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// Salt length in bytes.
        salt_len: CK_ULONG,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS` (§2.1.7).
    Oaep {
        /// The hash of OAEP.
        hash_alg: CK_MECHANISM_TYPE,
        /// `CKG_MGF1_*`.
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// `CKZ_DATA_SPECIFIED` (or 0 with no label).
        source: CK_RSA_PKCS_OAEP_SOURCE_TYPE,
        /// The label.
        source_data: Vec<u8>,
    },
    /// `CK_ECDH1_DERIVE_PARAMS` (§2.3.15).
    Ecdh {
        /// `CKD_*`.
        kdf: CK_EC_KDF_TYPE,
        /// Shared data for the KDF.
        shared_data: Vec<u8>,
        /// The other party's public value.
        public_data: Vec<u8>,
    },
    /// A parameter the mechanism does not take, or a structure of the wrong size.
    Malformed,
}

/// The parameter structure of a mechanism.
pub(crate) fn param_kind(kind: CK_MECHANISM_TYPE) -> ParamKind {
    match kind {
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => ParamKind::Pss,
        CKM_RSA_PKCS_OAEP => ParamKind::Oaep,
        CKM_ECDH1_DERIVE => ParamKind::Ecdh,
        _ => ParamKind::None,
    }
}

/// A hash mechanism (`CKM_SHA_1`...) as a hash algorithm.
fn hash_of(m: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    match m {
        CKM_SHA_1 => Some(HashAlg::Sha1),
        CKM_SHA256 => Some(HashAlg::Sha256),
        CKM_SHA384 => Some(HashAlg::Sha384),
        CKM_SHA512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// The MGF1 generator of a hash (the key storage provider uses MGF1 with the same hash).
fn mgf1_of(hash: HashAlg) -> CK_RSA_PKCS_MGF_TYPE {
    match hash {
        HashAlg::Sha1 => CKG_MGF1_SHA1,
        HashAlg::Sha256 => CKG_MGF1_SHA256,
        HashAlg::Sha384 => CKG_MGF1_SHA384,
        HashAlg::Sha512 => CKG_MGF1_SHA512,
    }
}

const RSA_SIGN: [CK_MECHANISM_TYPE; 11] = [
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_RSA_X_509,
];
const RSA_DECRYPT: [CK_MECHANISM_TYPE; 3] = [CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP, CKM_RSA_X_509];
const EC_SIGN: [CK_MECHANISM_TYPE; 5] =
    [CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512];

/// The mechanisms of a card: RSA ones when it takes RSA keys, EC ones when it takes EC keys,
/// key generation when it generates keys.
pub(crate) fn list(card: &CardSummary) -> Vec<CK_MECHANISM_TYPE> {
    let rsa = card.algorithms.iter().any(|a| a.is_rsa());
    let ec = card.algorithms.iter().any(|a| !a.is_rsa());
    let generate = card.key_generation && !card.read_only;
    let mut out = Vec::new();
    if rsa {
        out.extend_from_slice(&RSA_SIGN);
        out.push(CKM_RSA_PKCS_OAEP);
        if generate {
            out.push(CKM_RSA_PKCS_KEY_PAIR_GEN);
        }
    }
    if ec {
        out.extend_from_slice(&EC_SIGN);
        out.push(CKM_ECDH1_DERIVE);
        if generate {
            out.push(CKM_EC_KEY_PAIR_GEN);
        }
    }
    out
}

/// `C_GetMechanismInfo`: key sizes from the card's algorithms (bits), what the mechanism does.
pub(crate) fn info(card: &CardSummary, kind: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    if !list(card).contains(&kind) {
        return Err(Error::MechanismInvalid(kind));
    }
    let rsa = kind != CKM_EC_KEY_PAIR_GEN && !EC_SIGN.contains(&kind) && kind != CKM_ECDH1_DERIVE;
    let sizes: Vec<CK_ULONG> = card
        .algorithms
        .iter()
        .filter(|a| a.is_rsa() == rsa)
        .map(|a| CK_ULONG::from(a.bits()))
        .collect();
    let mut flags = CKF_HW;
    if RSA_SIGN.contains(&kind) || EC_SIGN.contains(&kind) {
        flags |= CKF_SIGN;
    }
    if RSA_DECRYPT.contains(&kind) {
        flags |= CKF_DECRYPT;
    }
    match kind {
        CKM_ECDH1_DERIVE => flags |= CKF_DERIVE,
        CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_EC_KEY_PAIR_GEN => flags |= CKF_GENERATE_KEY_PAIR,
        _ => {}
    }
    if !rsa {
        // Prime-field curves by OID, uncompressed points (§2.3.2).
        flags |= CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    }
    Ok(CK_MECHANISM_INFO {
        ulMinKeySize: sizes.iter().copied().min().unwrap_or(0),
        ulMaxKeySize: sizes.iter().copied().max().unwrap_or(0),
        flags,
    })
}

/// The mechanisms a key may be used with (`CKA_ALLOWED_MECHANISMS`).
pub(crate) fn allowed(key: &Key) -> Vec<CK_MECHANISM_TYPE> {
    let mut out = Vec::new();
    match key.algorithm {
        KeyAlgorithm::Rsa(_) => {
            if key.usage.sign {
                out.extend_from_slice(&RSA_SIGN);
            }
            if key.usage.decrypt {
                for m in RSA_DECRYPT {
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
            }
        }
        KeyAlgorithm::Ec(_) => {
            if key.usage.sign {
                out.extend_from_slice(&EC_SIGN);
            }
            if key.usage.agree {
                out.push(CKM_ECDH1_DERIVE);
            }
        }
    }
    out
}

/// A signature mechanism with its checked parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignMech {
    /// `CKM_RSA_PKCS`: PKCS#1 v1.5 of the data as given (a DigestInfo, usually).
    RsaPkcs,
    /// `CKM_RSA_X_509`: raw RSA of a block (left-padded with zeros to the modulus length).
    RsaX509,
    /// `CKM_SHA*_RSA_PKCS`: the data is hashed here.
    RsaPkcsHash(HashAlg),
    /// `CKM_RSA_PKCS_PSS` (the data is the digest) and `CKM_SHA*_RSA_PKCS_PSS` (`hashed`).
    RsaPss {
        /// The digest's hash (and MGF1's).
        hash: HashAlg,
        /// Salt length.
        salt_len: usize,
        /// The module hashes the data.
        hashed: bool,
    },
    /// `CKM_ECDSA`: the data is the hash value.
    Ecdsa,
    /// `CKM_ECDSA_SHA*`: the data is hashed here.
    EcdsaHash(HashAlg),
}

impl SignMech {
    /// The mechanism of `m` for a key of `algorithm`: mechanism, key type and parameter are
    /// checked here, before anything reaches the card.
    pub(crate) fn parse(m: &Mechanism, algorithm: KeyAlgorithm) -> Result<Self> {
        let mech = match m.kind {
            CKM_RSA_PKCS => SignMech::RsaPkcs,
            CKM_RSA_X_509 => SignMech::RsaX509,
            CKM_SHA1_RSA_PKCS => SignMech::RsaPkcsHash(HashAlg::Sha1),
            CKM_SHA256_RSA_PKCS => SignMech::RsaPkcsHash(HashAlg::Sha256),
            CKM_SHA384_RSA_PKCS => SignMech::RsaPkcsHash(HashAlg::Sha384),
            CKM_SHA512_RSA_PKCS => SignMech::RsaPkcsHash(HashAlg::Sha512),
            CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS => {
                let (hash, salt_len) = pss_params(m)?;
                SignMech::RsaPss { hash, salt_len, hashed: m.kind != CKM_RSA_PKCS_PSS }
            }
            CKM_ECDSA => SignMech::Ecdsa,
            CKM_ECDSA_SHA1 => SignMech::EcdsaHash(HashAlg::Sha1),
            CKM_ECDSA_SHA256 => SignMech::EcdsaHash(HashAlg::Sha256),
            CKM_ECDSA_SHA384 => SignMech::EcdsaHash(HashAlg::Sha384),
            CKM_ECDSA_SHA512 => SignMech::EcdsaHash(HashAlg::Sha512),
            other => return Err(Error::MechanismInvalid(other)),
        };
        if !matches!(mech, SignMech::RsaPss { .. }) && m.params != MechParams::None {
            return Err(Error::MechanismParamInvalid("this mechanism takes no parameter"));
        }
        let rsa_mech = !matches!(mech, SignMech::Ecdsa | SignMech::EcdsaHash(_));
        if rsa_mech != algorithm.is_rsa() {
            return Err(Error::KeyTypeInconsistent {
                mechanism: m.kind,
                key_type: crate::objects::key_type(algorithm),
            });
        }
        Ok(mech)
    }

    /// The hash the module computes over the data (multi-part signing hashes as it goes).
    pub(crate) fn host_hash(self) -> Option<HashAlg> {
        match self {
            SignMech::RsaPkcsHash(h) | SignMech::EcdsaHash(h) => Some(h),
            SignMech::RsaPss { hash, hashed: true, .. } => Some(hash),
            _ => None,
        }
    }

    /// The request for the provider: (hash, padding, input) from the data (or, for the
    /// hashing mechanisms, its digest). Lengths are checked against the key here.
    pub(crate) fn request(
        self,
        algorithm: KeyAlgorithm,
        public_key: Option<&PublicKey>,
        input: &[u8],
    ) -> Result<(Option<HashAlg>, SignPadding, Vec<u8>)> {
        let k = algorithm.signature_len();
        match self {
            SignMech::RsaPkcs => {
                // RFC 8017 §9.2: at least 8 bytes of padding, 3 of framing.
                let max = k.saturating_sub(11);
                if input.len() > max {
                    return Err(Error::DataLenRange { len: input.len(), max });
                }
                Ok((None, SignPadding::Pkcs1, input.to_vec()))
            }
            SignMech::RsaX509 => {
                if input.len() > k {
                    return Err(Error::DataLenRange { len: input.len(), max: k });
                }
                let mut block = vec![0u8; k - input.len()];
                block.extend_from_slice(input);
                // RFC 8017 §5.2.1: the representative must be below the modulus.
                if let Some(PublicKey::Rsa { n, .. }) = public_key {
                    let mut modulus = vec![0u8; k.saturating_sub(n.len())];
                    modulus.extend_from_slice(n);
                    if block >= modulus {
                        return Err(Error::DataInvalid("the block is not below the modulus"));
                    }
                }
                Ok((None, SignPadding::None, block))
            }
            SignMech::RsaPkcsHash(h) => Ok((Some(h), SignPadding::Pkcs1, h.digest(input))),
            SignMech::RsaPss { hash, salt_len, hashed } => {
                let digest = if hashed { hash.digest(input) } else { input.to_vec() };
                if digest.len() != hash.len() {
                    return Err(Error::DataLenRange { len: digest.len(), max: hash.len() });
                }
                Ok((Some(hash), SignPadding::Pss { salt_len }, digest))
            }
            SignMech::Ecdsa => Ok((None, SignPadding::None, ecdsa_input(algorithm, input)?)),
            SignMech::EcdsaHash(h) => {
                Ok((None, SignPadding::None, ecdsa_input(algorithm, &h.digest(input))?))
            }
        }
    }

    /// The longest input a single-part signature takes before any hashing (multi-part input
    /// of the raw mechanisms is collected up to this).
    pub(crate) fn max_raw_input(self, algorithm: KeyAlgorithm) -> usize {
        match self {
            SignMech::Ecdsa => 1024,
            _ => algorithm.signature_len(),
        }
    }
}

/// The hash value of an ECDSA signature at the curve's length (FIPS 186-4 §6.4: the leftmost
/// bits of a longer hash; a shorter value is the same integer left-padded with zeros).
fn ecdsa_input(algorithm: KeyAlgorithm, hash: &[u8]) -> Result<Vec<u8>> {
    let KeyAlgorithm::Ec(curve) = algorithm else {
        return Err(Error::DataInvalid("ECDSA with an RSA key"));
    };
    if hash.is_empty() {
        return Err(Error::DataLenRange { len: 0, max: 0 });
    }
    let n = curve.field_len();
    if curve == Curve::P521 {
        // A 521-bit order is not a whole number of bytes: left to the card.
        return Ok(hash.to_vec());
    }
    Ok(match hash.len() {
        l if l >= n => hash.get(..n).unwrap_or(hash).to_vec(),
        l => {
            let mut v = vec![0u8; n - l];
            v.extend_from_slice(hash);
            v
        }
    })
}

/// The hash and salt length of PSS parameters, checked: the parameter is required, the
/// hash is one the module knows, MGF1 uses the same hash (the only form the provider signs),
/// and the `CKM_SHA*_RSA_PKCS_PSS` forms name their own hash.
fn pss_params(m: &Mechanism) -> Result<(HashAlg, usize)> {
    let MechParams::Pss { hash_alg, mgf, salt_len } = &m.params else {
        return Err(Error::MechanismParamInvalid("PSS needs CK_RSA_PKCS_PSS_PARAMS"));
    };
    let hash = hash_of(*hash_alg).ok_or(Error::MechanismParamInvalid("PSS hash not supported"))?;
    if *mgf != mgf1_of(hash) {
        return Err(Error::MechanismParamInvalid("PSS: MGF1 must use the message hash"));
    }
    let implied = match m.kind {
        CKM_SHA1_RSA_PKCS_PSS => Some(HashAlg::Sha1),
        CKM_SHA256_RSA_PKCS_PSS => Some(HashAlg::Sha256),
        CKM_SHA384_RSA_PKCS_PSS => Some(HashAlg::Sha384),
        CKM_SHA512_RSA_PKCS_PSS => Some(HashAlg::Sha512),
        _ => None,
    };
    if implied.is_some_and(|h| h != hash) {
        return Err(Error::MechanismParamInvalid("PSS: hashAlg is not the mechanism's hash"));
    }
    let salt_len =
        usize::try_from(*salt_len).map_err(|_| Error::MechanismParamInvalid("PSS salt length"))?;
    Ok((hash, salt_len))
}

/// The decryption padding of a mechanism, checked (OAEP: hash known, MGF1 of the same hash,
/// label from `CKZ_DATA_SPECIFIED` or none).
pub(crate) fn decrypt_padding(m: &Mechanism, algorithm: KeyAlgorithm) -> Result<DecryptPadding> {
    let padding = match (m.kind, &m.params) {
        (CKM_RSA_PKCS, MechParams::None) => DecryptPadding::Pkcs1,
        (CKM_RSA_X_509, MechParams::None) => DecryptPadding::None,
        (CKM_RSA_PKCS_OAEP, MechParams::Oaep { hash_alg, mgf, source, source_data }) => {
            let hash = hash_of(*hash_alg)
                .ok_or(Error::MechanismParamInvalid("OAEP hash not supported"))?;
            if *mgf != mgf1_of(hash) {
                return Err(Error::MechanismParamInvalid("OAEP: MGF1 must use the OAEP hash"));
            }
            if *source != CKZ_DATA_SPECIFIED && (*source != 0 || !source_data.is_empty()) {
                return Err(Error::MechanismParamInvalid(
                    "OAEP: source must be CKZ_DATA_SPECIFIED",
                ));
            }
            DecryptPadding::Oaep { hash, label: source_data.clone() }
        }
        (CKM_RSA_PKCS_OAEP, _) => {
            return Err(Error::MechanismParamInvalid("OAEP needs CK_RSA_PKCS_OAEP_PARAMS"));
        }
        (CKM_RSA_PKCS | CKM_RSA_X_509, _) => {
            return Err(Error::MechanismParamInvalid("this mechanism takes no parameter"));
        }
        (other, _) => return Err(Error::MechanismInvalid(other)),
    };
    if !algorithm.is_rsa() {
        return Err(Error::KeyTypeInconsistent {
            mechanism: m.kind,
            key_type: crate::objects::key_type(algorithm),
        });
    }
    Ok(padding)
}

/// The peer's public key of `CKM_ECDH1_DERIVE` with `CKD_NULL`: the raw uncompressed point,
/// or the point in a DER OCTET STRING (OpenSC's `--derive-pass-der`); told apart by length.
pub(crate) fn ecdh_peer(m: &Mechanism, curve: Curve) -> Result<PublicKey> {
    let MechParams::Ecdh { kdf, shared_data, public_data } = &m.params else {
        return Err(Error::MechanismParamInvalid("ECDH needs CK_ECDH1_DERIVE_PARAMS"));
    };
    if *kdf != CKD_NULL || !shared_data.is_empty() {
        return Err(Error::MechanismParamInvalid("ECDH: only CKD_NULL without shared data"));
    }
    let raw_len = 1 + 2 * curve.field_len();
    let point = if public_data.len() == raw_len {
        public_data.clone()
    } else {
        use der::Decode;
        let octets = der::asn1::OctetString::from_der(public_data)
            .map_err(|_| Error::MechanismParamInvalid("ECDH: public data is not a point"))?;
        octets.as_bytes().to_vec()
    };
    if point.len() != raw_len || point.first() != Some(&0x04) {
        return Err(Error::MechanismParamInvalid("ECDH: not an uncompressed point of the curve"));
    }
    Ok(PublicKey::Ec { curve, point })
}

/// Data collected by `C_SignUpdate`: a running hash, or the raw input.
#[derive(Debug, Clone)]
pub(crate) enum Accumulator {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
    /// The data as given, up to a limit.
    Raw(Vec<u8>, usize),
}

impl Accumulator {
    /// An empty accumulator for `mech`.
    pub(crate) fn new(mech: SignMech, algorithm: KeyAlgorithm) -> Self {
        use sha2::Digest;
        match mech.host_hash() {
            Some(HashAlg::Sha1) => Accumulator::Sha1(sha1::Sha1::new()),
            Some(HashAlg::Sha256) => Accumulator::Sha256(sha2::Sha256::new()),
            Some(HashAlg::Sha384) => Accumulator::Sha384(sha2::Sha384::new()),
            Some(HashAlg::Sha512) => Accumulator::Sha512(sha2::Sha512::new()),
            None => Accumulator::Raw(Vec::new(), mech.max_raw_input(algorithm)),
        }
    }

    /// Takes more data.
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<()> {
        use sha2::Digest;
        match self {
            Accumulator::Sha1(h) => h.update(data),
            Accumulator::Sha256(h) => h.update(data),
            Accumulator::Sha384(h) => h.update(data),
            Accumulator::Sha512(h) => h.update(data),
            Accumulator::Raw(buf, max) => {
                if buf.len() + data.len() > *max {
                    return Err(Error::DataLenRange { len: buf.len() + data.len(), max: *max });
                }
                buf.extend_from_slice(data);
            }
        }
        Ok(())
    }

    /// The digest (hashing mechanisms) or the collected data.
    pub(crate) fn finish(self) -> Finished {
        use sha2::Digest;
        match self {
            Accumulator::Sha1(h) => Finished::Digest(h.finalize().to_vec()),
            Accumulator::Sha256(h) => Finished::Digest(h.finalize().to_vec()),
            Accumulator::Sha384(h) => Finished::Digest(h.finalize().to_vec()),
            Accumulator::Sha512(h) => Finished::Digest(h.finalize().to_vec()),
            Accumulator::Raw(buf, _) => Finished::Data(buf),
        }
    }
}

/// What a multi-part signature collected.
#[derive(Debug)]
pub(crate) enum Finished {
    /// The digest of the data (already hashed).
    Digest(Vec<u8>),
    /// The data.
    Data(Vec<u8>),
}

impl SignMech {
    /// The provider request from what `C_SignUpdate` collected.
    pub(crate) fn request_from(
        self,
        algorithm: KeyAlgorithm,
        public_key: Option<&PublicKey>,
        collected: Finished,
    ) -> Result<(Option<HashAlg>, SignPadding, Vec<u8>)> {
        match (self, collected) {
            (_, Finished::Data(data)) => self.request(algorithm, public_key, &data),
            (SignMech::RsaPkcsHash(h), Finished::Digest(d)) => Ok((Some(h), SignPadding::Pkcs1, d)),
            (SignMech::RsaPss { hash, salt_len, .. }, Finished::Digest(d)) => {
                Ok((Some(hash), SignPadding::Pss { salt_len }, d))
            }
            (SignMech::EcdsaHash(_), Finished::Digest(d)) => {
                Ok((None, SignPadding::None, ecdsa_input(algorithm, &d)?))
            }
            (_, Finished::Digest(d)) => self.request(algorithm, public_key, &d),
        }
    }

    /// A request of the right shape and length for a check with the provider before any
    /// data is there (`C_SignInit`): zeros of the input length.
    pub(crate) fn probe(self, algorithm: KeyAlgorithm) -> (Option<HashAlg>, SignPadding, Vec<u8>) {
        let k = algorithm.signature_len();
        match self {
            // A DigestInfo-sized input.
            SignMech::RsaPkcs => (None, SignPadding::Pkcs1, vec![0; 51.min(k.saturating_sub(11))]),
            SignMech::RsaX509 => (None, SignPadding::None, vec![0; k]),
            SignMech::RsaPkcsHash(h) => (Some(h), SignPadding::Pkcs1, vec![0; h.len()]),
            SignMech::RsaPss { hash, salt_len, .. } => {
                (Some(hash), SignPadding::Pss { salt_len }, vec![0; hash.len()])
            }
            SignMech::Ecdsa | SignMech::EcdsaHash(_) => {
                let n = match algorithm {
                    KeyAlgorithm::Ec(c) => c.field_len(),
                    KeyAlgorithm::Rsa(_) => 32,
                };
                (None, SignPadding::None, vec![1; n])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mech(kind: CK_MECHANISM_TYPE, params: MechParams) -> Mechanism {
        Mechanism { kind, params }
    }

    #[test]
    fn pss_parameters_are_checked() {
        let rsa = KeyAlgorithm::Rsa(2048);
        let good = MechParams::Pss { hash_alg: CKM_SHA256, mgf: CKG_MGF1_SHA256, salt_len: 32 };
        assert_eq!(
            SignMech::parse(&mech(CKM_SHA256_RSA_PKCS_PSS, good.clone()), rsa).unwrap(),
            SignMech::RsaPss { hash: HashAlg::Sha256, salt_len: 32, hashed: true }
        );
        let wrong_mgf = MechParams::Pss { hash_alg: CKM_SHA256, mgf: CKG_MGF1_SHA1, salt_len: 32 };
        assert_eq!(
            SignMech::parse(&mech(CKM_RSA_PKCS_PSS, wrong_mgf), rsa).unwrap_err().rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            SignMech::parse(&mech(CKM_SHA384_RSA_PKCS_PSS, good.clone()), rsa).unwrap_err().rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            SignMech::parse(&mech(CKM_RSA_PKCS_PSS, MechParams::None), rsa).unwrap_err().rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            SignMech::parse(&mech(CKM_RSA_PKCS_PSS, good), KeyAlgorithm::Ec(Curve::P256))
                .unwrap_err()
                .rv(),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            SignMech::parse(&mech(CKM_MD5_RSA_PKCS, MechParams::None), rsa).unwrap_err().rv(),
            CKR_MECHANISM_INVALID
        );
    }

    #[test]
    fn ecdsa_input_is_the_field_length() {
        let p256 = KeyAlgorithm::Ec(Curve::P256);
        let (_, _, long) = SignMech::EcdsaHash(HashAlg::Sha512).request(p256, None, b"x").unwrap();
        assert_eq!(long, HashAlg::Sha512.digest(b"x")[..32].to_vec());
        let (_, _, short) = SignMech::EcdsaHash(HashAlg::Sha1).request(p256, None, b"x").unwrap();
        assert_eq!(&short[..12], &[0; 12]);
        assert_eq!(&short[12..], HashAlg::Sha1.digest(b"x").as_slice());
        assert_eq!(SignMech::Ecdsa.request(p256, None, b"").unwrap_err().rv(), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn rsa_inputs_are_bounded() {
        let rsa = KeyAlgorithm::Rsa(1024);
        assert_eq!(
            SignMech::RsaPkcs.request(rsa, None, &[0; 118]).unwrap_err().rv(),
            CKR_DATA_LEN_RANGE
        );
        let (_, _, block) = SignMech::RsaX509.request(rsa, None, &[7; 10]).unwrap();
        assert_eq!(block.len(), 128);
        assert_eq!(&block[118..], &[7; 10]);
        let n = PublicKey::Rsa { n: vec![0x80; 128], e: vec![1, 0, 1] };
        assert_eq!(
            SignMech::RsaX509.request(rsa, Some(&n), &[0xFF; 128]).unwrap_err().rv(),
            CKR_DATA_INVALID
        );
    }

    #[test]
    fn multi_part_equals_single_part() {
        let p384 = KeyAlgorithm::Ec(Curve::P384);
        let m = SignMech::EcdsaHash(HashAlg::Sha256);
        let mut acc = Accumulator::new(m, p384);
        acc.update(b"hello ").unwrap();
        acc.update(b"world").unwrap();
        assert_eq!(
            m.request_from(p384, None, acc.finish()).unwrap().2,
            m.request(p384, None, b"hello world").unwrap().2
        );
        let mut raw = Accumulator::new(SignMech::RsaX509, KeyAlgorithm::Rsa(1024));
        assert!(raw.update(&[0; 100]).is_ok());
        assert_eq!(raw.update(&[0; 29]).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
    }

    #[test]
    fn oaep_and_ecdh_parameters() {
        let rsa = KeyAlgorithm::Rsa(2048);
        let oaep = |source, data: &[u8]| {
            mech(
                CKM_RSA_PKCS_OAEP,
                MechParams::Oaep {
                    hash_alg: CKM_SHA256,
                    mgf: CKG_MGF1_SHA256,
                    source,
                    source_data: data.to_vec(),
                },
            )
        };
        assert_eq!(
            decrypt_padding(&oaep(CKZ_DATA_SPECIFIED, b"ABC"), rsa).unwrap(),
            DecryptPadding::Oaep { hash: HashAlg::Sha256, label: b"ABC".to_vec() }
        );
        assert!(decrypt_padding(&oaep(0, b""), rsa).is_ok());
        assert_eq!(
            decrypt_padding(&oaep(0, b"x"), rsa).unwrap_err().rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            decrypt_padding(&mech(CKM_RSA_PKCS, MechParams::None), KeyAlgorithm::Ec(Curve::P256))
                .unwrap_err()
                .rv(),
            CKR_KEY_TYPE_INCONSISTENT
        );
        let mut point = vec![0x04];
        point.extend_from_slice(&[9; 64]);
        let ecdh = |public_data: Vec<u8>| {
            mech(
                CKM_ECDH1_DERIVE,
                MechParams::Ecdh { kdf: CKD_NULL, shared_data: Vec::new(), public_data },
            )
        };
        let raw = ecdh_peer(&ecdh(point.clone()), Curve::P256).unwrap();
        let mut der = vec![0x04, 0x41];
        der.extend_from_slice(&point);
        assert_eq!(ecdh_peer(&ecdh(der), Curve::P256).unwrap(), raw);
        assert_eq!(
            ecdh_peer(&ecdh(point), Curve::P384).unwrap_err().rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
    }
}
