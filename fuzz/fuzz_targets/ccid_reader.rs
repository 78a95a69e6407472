#![no_main]
// Harness and invariants: scard_tests::harness::ccid_reader.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scard_tests::harness::ccid_reader(data));
