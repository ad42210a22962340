//! A settings file (and no environment): loaded and checked, or refused with a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trdscreen::settings::Settings;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Settings::from_text(text, &|_| None);
    }
});
