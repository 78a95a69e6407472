#![no_main]
// Harness and invariants: scard_tests::harness::piv_session.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scard_tests::harness::piv_session(data));
