#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fakessh::fuzzing::known_hosts(data));
