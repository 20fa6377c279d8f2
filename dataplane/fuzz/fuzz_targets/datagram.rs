//! Arbitrary bytes arriving at gateway B's UDP socket, three ways: as they are (mostly not
//! WireGuard at all), encrypted by gateway A's session as the inside of a gateway packet
//! (so the label codec, anti-spoofing and routing parse them), and encrypted by a workload
//! peer's session as a plain packet. Nothing may panic.

#![no_main]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use libfuzzer_sys::fuzz_target;

#[path = "pair.rs"]
mod pair;

struct World {
    pair: pair::Pair,
    /// A second session to B with A's key, so arbitrary inner bytes can be encrypted.
    as_gateway: Tunn,
    as_workload: Tunn,
    buf: Vec<u8>,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

/// Completes the handshake of `client` with B, sending from `from`.
fn handshake(client: &mut Tunn, pair: &mut pair::Pair, from: SocketAddr, buf: &mut [u8]) {
    let now = Instant::now();
    if let TunnResult::WriteToNetwork(init) = client.format_handshake_initiation(buf, false) {
        pair.b.handle_datagram(from, init, now);
    }
    while let Some(t) = pair.b.poll_transmit() {
        if let weft_dataplane::core::Transmit::Udp {
            destination,
            payload,
        } = t
            && destination == from
        {
            let mut out = vec![0u8; 2048];
            let _ = client.decapsulate(Some(from.ip()), &payload, &mut out);
        }
    }
}

fn world() -> World {
    let mut pair = pair::Pair::new();
    let mut buf = vec![0u8; 70_000];
    let b_public = PublicKey::from(pair::public([2; 32]));
    let mut as_gateway = Tunn::new(StaticSecret::from([1; 32]), b_public, None, None, 77, None);
    handshake(
        &mut as_gateway,
        &mut pair,
        pair::A.parse().unwrap(),
        &mut buf,
    );
    let mut as_workload = Tunn::new(
        StaticSecret::from(pair::WORKLOAD_KEY),
        b_public,
        None,
        None,
        78,
        None,
    );
    handshake(
        &mut as_workload,
        &mut pair,
        pair::WORKLOAD.parse().unwrap(),
        &mut buf,
    );
    World {
        pair,
        as_gateway,
        as_workload,
        buf,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut guard = WORLD.lock().unwrap();
    let w = guard.get_or_insert_with(world);
    let now = Instant::now();
    let Some((selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => w
            .pair
            .b
            .handle_datagram(pair::A.parse().unwrap(), rest, now),
        1 => {
            if let TunnResult::WriteToNetwork(d) = w.as_gateway.encapsulate(rest, &mut w.buf) {
                w.pair.b.handle_datagram(pair::A.parse().unwrap(), d, now);
            }
        }
        _ => {
            if let TunnResult::WriteToNetwork(d) = w.as_workload.encapsulate(rest, &mut w.buf) {
                w.pair
                    .b
                    .handle_datagram(pair::WORKLOAD.parse().unwrap(), d, now);
            }
        }
    }
    while w.pair.b.poll_transmit().is_some() {}
});
