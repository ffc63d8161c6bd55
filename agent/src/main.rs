//! `vrfwd-agent`: runs inside a virtual router and mirrors the IPv4 and IPv6 routes its
//! routing daemons install in the kernel into the VR's table in vrfwd on the host
//! (docs/agent.md). No DPDK; talks rtnetlink to the kernel and the route protocol
//! (vrfwd-proto) to the host.
#![deny(unsafe_code)]
mod agent;
mod config;
mod kernel;

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(version, about = "Exports a virtual router's kernel routes to vrfwd")]
struct Cli {
    /// The agent's TOML configuration.
    #[arg(short, long, default_value = "/etc/vrfwd/agent.toml")]
    config: PathBuf,
    /// vrfwd's route-protocol address (overrides `host`).
    #[arg(long)]
    host: Option<std::net::SocketAddr>,
    /// This VR's id (overrides `vr`).
    #[arg(long)]
    vr: Option<u32>,
    /// The credential file (overrides `credential_file`).
    #[arg(long)]
    credential_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = config::AgentConfig::load(&cli.config)
        .with_context(|| format!("config {}", cli.config.display()))?;
    let filter = kernel::Filter {
        tables: config.tables.clone(),
        protocols: config.protocol_numbers(),
        interfaces: config.interfaces.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(agent::run(config, kernel::KernelState::new(filter)))
}
