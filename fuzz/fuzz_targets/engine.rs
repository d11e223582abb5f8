//! Fuzz target: the bytes drive a builder of valid event sequences fed to the engine, with
//! its invariants, determinism and agreement with `handoff::answers::replay` checked; see
//! `check_engine`.

#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = fuzz_checks::check_engine(data) {
        panic!("{e}");
    }
});
