//! The `custom_json` source kind through `lb_vendors::robustness::exercise` (input
//! format and invariants: its documentation and fuzz/README.md).
#![no_main]

use lb_vendors::sources::custom_json::CustomJson;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lb_vendors::robustness::exercise(&CustomJson, data);
});
