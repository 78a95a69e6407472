#![no_main]
// Harness and invariants: scard_tests::harness::cert_eligibility.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scard_tests::harness::cert_eligibility(data));
