#![no_main]
// Harness and invariants: scard_tests::harness::command_apdu.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scard_tests::harness::command_apdu(data));
