//! Fuzz target `config`: see `tidings_fuzz::config` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::config(data);
});
