//! Shared test support for scard: the fuzz harness (used by the cargo-fuzz targets in `fuzz/`
//! and by the corpus replay test on stable Rust) and the interop sandbox (real clients against
//! simulated cards through a real pcscd).

pub mod gnupg;
pub mod harness;
pub mod interop;
pub mod third_party;
