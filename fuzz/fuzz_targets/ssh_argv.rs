#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shims::argv::fuzz_parse(data));
