//! Shared test support for scard: the fuzz harness (used by the cargo-fuzz targets in `fuzz/`
//! and by the corpus replay test on stable Rust) and, from later issues, end-to-end helpers.

pub mod harness;
