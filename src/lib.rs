//! vrfwd: the Dom0 data plane of migratable virtual routers.
//!
//! - [`dpdk`]: safe wrappers over DPDK, the only `unsafe` code.
//! - [`lpm`]: per-VR route tables readable without locks, changed in atomic batches.
//! - [`config`]: the operator's TOML configuration, validated.
//! - [`dataplane`]: the shared state lcores read (VRs, segments, neighbours, MAC tables).
//! - [`lcore`]: the per-lcore forwarding loop and its stages (docs/architecture.md).
//!
//! Packet headers are read through the `vrfwd-wire` crate's checked views.
//! - [`stats`]: per-lcore counters, summed on read.
//! - [`control`]: the route writer, the route-protocol sessions, the operator socket.
//! - [`metrics`], [`telemetry`]: the figures for Prometheus and DPDK telemetry.
//! - [`appliance`]: start-up and shutdown of the whole appliance.
pub mod appliance;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod dpdk;
pub mod lcore;
pub mod lpm;
pub mod metrics;
pub mod stats;
pub mod telemetry;
pub mod upgrade;
