//! The scard PKCS#11 3.0 module, `libscard_pkcs11.so`: every PKCS#11 application (OpenSSL,
//! OpenSSH, Firefox, GnuTLS, p11-kit) signs, decrypts and agrees keys with keys that never
//! leave the card, over the key storage provider [`scard_ksp`].
//!
//! - **Slots are readers** (`SCARD_READERS`, else `readers` of
//!   `$XDG_CONFIG_HOME/scard/scard.toml`; `sim:piv:FILE` gives an in-process simulated card),
//!   **tokens are cards**; a reader keeps its slot id while the module is loaded.
//! - **Objects**: per key container a private key (`CKA_SENSITIVE`, never extractable), its
//!   public key and its certificate, tied by `CKA_ID` = container index + 1 (PIV 01 = 9A,
//!   02 = 9C, 03 = 9D, 04 = 9E; OpenPGP 01 signature, 02 decryption, 03 authentication).
//! - **Logins**: `CKU_USER` is the user PIN; `CKU_SO` the card's admin credential (the PIV
//!   management key and the GIDS admin key in hex, OpenPGP PW3); `CKU_CONTEXT_SPECIFIC` the
//!   PIN of a `CKA_ALWAYS_AUTHENTICATE` key (PIV 9C) right before its operation. No PIN is
//!   ever prompted for: a PIN that is needed and not given is `CKR_USER_NOT_LOGGED_IN`.
//! - **Mechanisms**: RSA PKCS#1 v1.5 (raw and SHA-1/256/384/512), PSS (raw and hashed), OAEP,
//!   X.509 (raw); ECDSA (raw and hashed); ECDH1 derive (`CKD_NULL`); RSA and EC key pair
//!   generation. Hashing for the hash-and-sign mechanisms (and multi-part signing) is done
//!   on the host.
//! - **Logging**: to the file named by `SCARD_LOG` (filter `SCARD_LOG_LEVEL`), redacted.
//!
//! All `unsafe` code is in the private `ffi` module (the exported functions are thin shims
//! over safe code); errors become CK_RV in one function, [`Error::rv`].

mod error;
mod ffi;
mod logging;
mod mechanisms;
mod module;
mod objects;

pub use error::{Error, Result};
pub use logging::{LEVEL_ENV, LOG_ENV};
