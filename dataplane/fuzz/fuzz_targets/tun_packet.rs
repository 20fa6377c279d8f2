//! Arbitrary bytes from a network's TUN device into gateway A, then across the WireGuard
//! session into gateway B: IP parsing, routing, MTU and ICMP, MSS clamping, the label codec
//! on both sides and B's anti-spoofing all see them. Nothing may panic.

#![no_main]

use std::sync::Mutex;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;

#[path = "pair.rs"]
mod pair;

static PAIR: Mutex<Option<pair::Pair>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = PAIR.lock().unwrap();
    let pair = guard.get_or_insert_with(pair::Pair::new);
    let (network, packet) = match data.split_first() {
        Some((selector, rest)) => (if selector & 1 == 0 { 1001 } else { 1002 }, rest),
        None => (1001, data),
    };
    pair.a.handle_tun_packet(network, packet, Instant::now());
    pair.pump();
});
