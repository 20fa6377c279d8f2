//! weft-gateway: the `weft` program's library half.
//!
//! The only crate that knows both the configuration model and the parts that act on it: it
//! turns an [`weft_config::Intent`] into per-gateway plans with pure, unit-tested functions.

pub mod bench;
pub mod daemon;
pub mod lab;
pub mod parity;
pub mod plan;
pub mod render;
pub mod translate;
