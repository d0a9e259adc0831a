#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::frame_decoder(data));
