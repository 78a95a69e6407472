#![no_main]
// Harness and invariants: scard_tests::harness::ccid_descriptor.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scard_tests::harness::ccid_descriptor(data));
