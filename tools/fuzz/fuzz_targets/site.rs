//! Fuzzes the site file reader: no text may make it panic, and every mistake it reports
//! has a position inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trapgate::engine::config::Site;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(errors) = Site::parse(text) {
        assert!(!errors.is_empty());
        let lines = text.lines().count().max(1) + 1;
        for e in errors {
            assert!(e.line >= 1 && e.line <= lines && e.column >= 1, "{e} in {lines} lines");
        }
    }
});
