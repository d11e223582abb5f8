//! Fuzz target: arbitrary bytes through the envelope (UTF-8, JSON, schema, decoder) the way
//! the live service and `handoff replay` read a message; see `check_envelope`.

#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = fuzz_checks::check_envelope(data) {
        panic!("{e}");
    }
});
