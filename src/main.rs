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
    /// How log lines are written to standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The log's form: for people, or one JSON object a line for a collector.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance until SIGINT or SIGTERM; SIGHUP reloads the config's VRs.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Take over the vrfwd running on the config's operator socket (what
        /// `vrfwd upgrade` starts): its ports, VRs and listeners, with no loss.
        #[arg(long)]
        take_over: bool,
    },
    /// Replace the running vrfwd by BINARY with no packet lost: starts
    /// `BINARY run --take-over`, shows its progress, and returns once it holds
    /// everything (docs/operating.md, "Upgrading").
    Upgrade {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        binary: PathBuf,
        /// Where the new vrfwd's log goes (appended).
        #[arg(long, default_value = "/var/log/vrfwd.log")]
        log: PathBuf,
    },
    /// Validate a configuration file and print the EAL arguments it yields.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Ask a running appliance (`vrfwd ctl help` lists the commands; docs/operating.md).
    Ctl {
        #[arg(short, long, default_value = "/run/vrfwd.sock")]
        socket: PathBuf,
        /// Machine-readable output: one JSON document (docs/operating.md, "JSON").
        #[arg(long)]
        json: bool,
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
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.json().init(),
    }
    match cli.command {
        Command::Run { config, take_over } => {
            let cfg =
                Config::load(&config).with_context(|| format!("config {}", config.display()))?;
            let quit = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&quit))
                    .context("installing signal handlers")?;
            }
            let reload = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
                .context("installing signal handlers")?;
            let signals = vrfwd::appliance::Signals {
                quit: &quit,
                reload: &reload,
                file: Some(std::fs::canonicalize(&config).unwrap_or(config.clone())),
            };
            let start = match take_over {
                true => vrfwd::appliance::Start::TakeOver,
                false => vrfwd::appliance::Start::Fresh,
            };
            let last = vrfwd::appliance::run(&cfg, &signals, start).context("vrfwd")?;
            tracing::info!("stopped");
            print!("{}", last.render());
        }
        Command::Upgrade {
            config,
            binary,
            log,
        } => upgrade(&config, &binary, &log)?,
        Command::Check { config } => {
            let cfg =
                Config::load(&config).with_context(|| format!("config {}", config.display()))?;
            println!("{}: ok", config.display());
            println!("EAL: {}", vrfwd::appliance::eal_args(&cfg).join(" "));
        }
        Command::Ctl {
            socket,
            json,
            command,
        } => {
            let reply = vrfwd::control::request(&socket, &ctl_line(json, &command.join(" ")))?;
            print!("{reply}");
        }
        Command::Stats { socket, json } => {
            let reply = vrfwd::control::request(&socket, &ctl_line(json, "stats"))?;
            print!("{reply}");
        }
    }
    Ok(())
}

/// The operator-socket line for `command`, asked as JSON when `json`.
fn ctl_line(json: bool, command: &str) -> String {
    match json {
        true => format!("--json {command}"),
        false => command.to_owned(),
    }
}

/// `vrfwd upgrade`: starts the successor in its own session (it outlives this
/// command), its output appended to `log`, and echoes that output until the
/// successor reports the take-over complete or exits.
fn upgrade(
    config: &std::path::Path,
    binary: &std::path::Path,
    log: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Seek};
    use std::os::unix::process::CommandExt;
    Config::load(config).with_context(|| format!("config {}", config.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("log {}", log.display()))?;
    let from = file.seek(std::io::SeekFrom::End(0))?;
    let mut child = std::process::Command::new(binary)
        .args(["run", "--take-over", "--config"])
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut reader = std::io::BufReader::new(std::fs::File::open(log)?);
    reader.seek(std::io::SeekFrom::Start(from))?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? > 0 {
            eprint!("{line}");
            if line.contains(vrfwd::upgrade::COMPLETE) {
                println!("vrfwd {} (pid {}) took over", binary.display(), child.id());
                return Ok(());
            }
            continue;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the new vrfwd exited ({status}); the running one forwards on");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
