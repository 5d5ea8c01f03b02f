//! Fuzz target `message`: see `tidings_fuzz::message` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::message(data);
});
