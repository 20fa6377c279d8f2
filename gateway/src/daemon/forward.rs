//! The daemon's packet loops: they read TUN devices and the UDP socket in batches, hand a
//! whole batch to the dataplane core under one lock, and write what comes out in batches.
//!
//! One task waits on each network's TUN and one on the UDP socket; a timer task drives
//! WireGuard's timers. Waiting holds no buffer: a task that finds its device readable
//! borrows a [`Lane`] (read buffers and an [`Outbox`]) from a small shared pool, reads until
//! the device is empty or a batch is full, and gives the lane back, so memory does not grow
//! with the number of networks. The UDP task keeps its own lane, as it is always busy.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;
use weft_dataplane::core::{Dataplane, Transmit};
use weft_dataplane::counters::DropReason;
use weft_dataplane::linux::tun::{TunDevice, TunReadBatch, TunWriteBatch};
use weft_dataplane::linux::udp::{UdpReadBatch, UdpWriteBatch};

use super::Shared;

/// Packets a task takes from one device before it writes what they produced and lets the
/// other tasks in: large enough to fill GSO batches, small enough to bound latency.
const PACKETS_PER_TURN: usize = 256;
/// Packets an outbox gathers before it is written out mid-turn: a full GSO send (64 KiB
/// of 1,400-byte datagrams is 46).
const FLUSH_AT: usize = 64;
/// TUN write batches an outbox keeps between turns (one per network written to in a turn;
/// almost always one).
const KEPT_TUN_BATCHES: usize = 4;

/// What one batch of packets produced, grouped for batched writes.
pub(super) struct Outbox {
    udp: UdpWriteBatch,
    tun: Vec<(u32, TunWriteBatch)>,
}

impl Outbox {
    /// An empty outbox.
    pub(super) fn new() -> Self {
        Self {
            udp: UdpWriteBatch::new(),
            tun: Vec::new(),
        }
    }

    /// Moves everything the core has to send into the outbox, giving the core its buffers
    /// back.
    pub(super) fn take_from(&mut self, dataplane: &mut Dataplane) {
        while let Some(transmit) = dataplane.poll_transmit() {
            match &transmit {
                Transmit::Udp {
                    destination,
                    payload,
                } => self.udp.push(*destination, payload),
                Transmit::Tun { network, packet } => self.tun_batch(*network).push(packet),
            }
            dataplane.recycle(transmit);
        }
    }

    /// Packets and datagrams waiting.
    fn len(&self) -> usize {
        self.udp.len() + self.tun.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    fn tun_batch(&mut self, network: u32) -> &mut TunWriteBatch {
        let index = match self.tun.iter().position(|(label, _)| *label == network) {
            Some(index) => index,
            None => match self.tun.iter().position(|(_, batch)| batch.is_empty()) {
                Some(free) => {
                    self.tun[free].0 = network;
                    free
                }
                None => {
                    self.tun.push((network, TunWriteBatch::new()));
                    self.tun.len() - 1
                }
            },
        };
        &mut self.tun[index].1
    }

    /// Writes everything out: datagrams first (the far side is waiting), then each
    /// network's packets into its TUN.
    pub(super) async fn flush(&mut self, shared: &Shared) {
        if !self.udp.is_empty() {
            let failed = shared.socket.write(&mut self.udp).await;
            count_io_drops(shared, None, failed);
        }
        for (network, batch) in &mut self.tun {
            if batch.is_empty() {
                continue;
            }
            let device = shared
                .networks
                .read()
                .expect("lock")
                .get(network)
                .map(|n| n.device.clone());
            let packets = batch.len();
            let written = match device {
                Some(device) => device.write(batch).await,
                // Closed by a reload meanwhile.
                None => {
                    batch.clear();
                    Err(io::Error::from(io::ErrorKind::NotFound))
                }
            };
            if let Err(e) = written {
                tracing::debug!(network, error = %e, "TUN write failed");
                count_io_drops(shared, Some(*network), packets);
            }
        }
        self.tun.truncate(KEPT_TUN_BATCHES);
    }
}

/// Counts packets lost in I/O with the core's other drops, so `weft status` shows them.
fn count_io_drops(shared: &Shared, network: Option<u32>, packets: usize) {
    if packets > 0 {
        shared.dataplane.lock().expect("lock").count_io_drops(
            network,
            DropReason::SendFailed,
            packets as u64,
        );
    }
}

/// The buffers one task needs for a turn at a TUN device.
pub(super) struct Lane {
    read: TunReadBatch,
    outbox: Outbox,
}

/// Lanes not in use. Tasks take one when their device is readable; at most as many exist
/// as tasks were ever busy at once (with two worker threads, two or three).
#[derive(Default)]
pub(super) struct LanePool {
    free: Mutex<Vec<Lane>>,
}

impl LanePool {
    fn take(&self) -> Lane {
        self.free
            .lock()
            .expect("lock")
            .pop()
            .unwrap_or_else(|| Lane {
                read: TunReadBatch::new(),
                outbox: Outbox::new(),
            })
    }

    fn give_back(&self, lane: Lane) {
        self.free.lock().expect("lock").push(lane);
    }
}

/// Reads the UDP socket: datagrams from peers, decrypted and forwarded.
pub(super) async fn udp_loop(shared: Arc<Shared>) {
    let mut read = UdpReadBatch::new();
    let mut outbox = Outbox::new();
    loop {
        if let Err(e) = shared.socket.readable().await {
            warn!(error = %e, "UDP socket failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let mut taken = 0;
        while taken < PACKETS_PER_TURN {
            match shared.socket.try_read(&mut read) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "UDP receive failed");
                    break;
                }
            }
            {
                let now = Instant::now();
                let mut dataplane = shared.dataplane.lock().expect("lock");
                for (from, datagram) in read.datagrams() {
                    dataplane.handle_datagram(from, datagram, now);
                    taken += 1;
                }
                outbox.take_from(&mut dataplane);
            }
            if outbox.len() >= FLUSH_AT {
                outbox.flush(&shared).await;
            }
        }
        outbox.flush(&shared).await;
        if taken >= PACKETS_PER_TURN {
            // Still readable: let the TUN tasks have a turn first.
            tokio::task::yield_now().await;
        }
    }
}

/// Reads one network's TUN: packets from the site, sent on to peers.
pub(super) async fn tun_loop(shared: Arc<Shared>, label: u32, device: Arc<TunDevice>) {
    loop {
        if let Err(e) = device.readable().await {
            warn!(network = label, error = %e, "TUN device failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let mut lane = shared.lanes.take();
        let mut taken = 0;
        while taken < PACKETS_PER_TURN {
            match device.try_read(&mut lane.read) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // A super-packet tun-rs cannot split (a segment over the largest it
                    // handles, a malformed header) is lost; the device goes on.
                    tracing::debug!(network = label, error = %e, "TUN read failed");
                    shared.dataplane.lock().expect("lock").count_io_drops(
                        Some(label),
                        DropReason::UnreadableTunRead,
                        1,
                    );
                    taken += 1;
                    continue;
                }
            }
            {
                let now = Instant::now();
                let mut dataplane = shared.dataplane.lock().expect("lock");
                for packet in lane.read.packets() {
                    dataplane.handle_tun_packet(label, packet, now);
                    taken += 1;
                }
                lane.outbox.take_from(&mut dataplane);
            }
            if lane.outbox.len() >= FLUSH_AT {
                lane.outbox.flush(&shared).await;
            }
        }
        lane.outbox.flush(&shared).await;
        shared.lanes.give_back(lane);
        if taken >= PACKETS_PER_TURN {
            // Still readable: let the other devices and the socket have a turn first.
            tokio::task::yield_now().await;
        }
    }
}

/// Drives WireGuard's timers: handshakes, rekeys, keepalives.
pub(super) async fn timer_loop(shared: Arc<Shared>) {
    let mut outbox = Outbox::new();
    loop {
        let deadline = shared.dataplane.lock().expect("lock").poll_timeout();
        tokio::time::sleep_until(deadline.max(Instant::now()).into()).await;
        {
            let mut dataplane = shared.dataplane.lock().expect("lock");
            dataplane.handle_timeout(Instant::now());
            outbox.take_from(&mut dataplane);
        }
        outbox.flush(&shared).await;
    }
}
