#![no_main]
// Harness and invariants: scard_tests::harness::ber_tlv.
libfuzzer_sys::fuzz_target!(|data: &[u8]| scard_tests::harness::ber_tlv(data));
