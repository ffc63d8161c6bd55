//! The `vrfwd` binary: run the appliance, check a config, or read a running
//! appliance's counters.
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vrfwd::config::Config;

#[derive(Parser)]
#[command(
    version,
    about = "Kernel-bypass Dom0 data plane for migratable virtual routers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance until SIGINT or SIGTERM.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file and print the EAL arguments it yields.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Ask a running appliance: vrs, routes VR, neighbors VR, route add VR PREFIX
    /// (via ADDR | dev IFACE), route del VR PREFIX, stats.
    Ctl {
        #[arg(short, long, default_value = "/run/vrfwd.sock")]
        socket: PathBuf,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Print a running appliance's counters.
    Stats {
        #[arg(short, long, default_value = "/run/vrfwd.sock")]
        socket: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run { config } => {
            let cfg =
                Config::load(&config).with_context(|| format!("config {}", config.display()))?;
            let quit = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&quit))
                    .context("installing signal handlers")?;
            }
            let last = vrfwd::appliance::run(&cfg, &quit).context("vrfwd")?;
            tracing::info!("stopped");
            print!("{}", last.render());
        }
        Command::Check { config } => {
            let cfg =
                Config::load(&config).with_context(|| format!("config {}", config.display()))?;
            println!("{}: ok", config.display());
            println!("EAL: {}", vrfwd::appliance::eal_args(&cfg).join(" "));
        }
        Command::Ctl { socket, command } => {
            let reply = vrfwd::control::request(&socket, &command.join(" "))?;
            print!("{reply}");
        }
        Command::Stats { socket, json } => {
            let reply =
                vrfwd::control::request(&socket, if json { "stats-json" } else { "stats" })?;
            print!("{reply}");
        }
    }
    Ok(())
}
