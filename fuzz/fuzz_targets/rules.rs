//! Fuzz target `rules`: see `tidings_fuzz::rules` for what it drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::rules(data);
});
