//! Text on its way to a terminal: `printable` never lets through a character a terminal would
//! obey, respects its bound, and changes nothing in text that is already safe and short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vidpipe_host::text::{check_plain, cut, is_unsafe, printable};

fuzz_target!(|input: (u8, &str)| {
    let (max, text) = input;
    let max = usize::from(max);
    let shown = printable(text, max);
    assert!(!shown.chars().any(is_unsafe), "{shown:?}");
    assert!(shown.trim_end_matches('…').chars().count() <= max);
    let safe = !text.chars().any(is_unsafe);
    assert_eq!(check_plain("text", text).is_ok(), safe);
    if safe && text.chars().count() <= max {
        assert_eq!(shown, text);
    }
    let kept = cut(text, max);
    assert!(kept.trim_end_matches('…').chars().count() <= max);
    assert!(text.starts_with(kept.trim_end_matches('…')));
});
