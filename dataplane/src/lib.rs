//! weft-dataplane: the forwarder of a weft gateway.
//!
//! The core is a sans-IO state machine: packets and time go in, packets to send come out.
//! Around it, a thin shell owns TUN devices, the UDP socket and Linux plumbing. This crate
//! knows nothing of weft's configuration file; the gateway translates into [`DataplaneConfig`].

pub mod config;
pub mod core;
pub mod counters;
pub mod fragment;
pub mod label_codec;
pub mod linux;
pub mod mtu;
mod outputs;
pub mod packet;
mod peers;
pub mod policy;
pub mod routing;

pub use config::{
    DataplaneConfig, GatewayPeerConfig, NetworkConfig, PeerKey, RemoteRoute, WorkloadPeerConfig,
};
