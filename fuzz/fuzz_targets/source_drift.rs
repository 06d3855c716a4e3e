//! The `drift` source kind through `lb_vendors::robustness::exercise` (input
//! format and invariants: its documentation and fuzz/README.md).
#![no_main]

use lb_vendors::sources::drift::Drift;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lb_vendors::robustness::exercise(&Drift, data);
});
