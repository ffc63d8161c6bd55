//! `vrfwd-config`: writes a vrfwd configuration from command-line options through
//! the config builder (`vrfwd::config::Builder`), so that the shell and Python
//! testbeds assemble theirs the way the Rust tests and benchmarks do, checked by
//! vrfwd's own validation before anything starts.
//!
//!   vrfwd-config --core 0 --prefix vrfwd-x --socket /run/x.sock \
//!     --set control.listen='"0.0.0.0:7700"' --port u0=net_af_packet0,iface=u0 \
//!     --port v0 --segment lan0=u0 --vr 1,name=red,credential=SECRET \
//!     --interface 1,eth0,02:00:00:00:01:01,10.0.1.1/24,lan0,v0 \
//!     --route 1,10.9.0.0/16,10.0.1.2 --neighbor 1,10.0.1.2,02:00:00:00:aa:02 -o x.toml
use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use vrfwd::config::{AttachDriver, Builder, TableSize, VrBuilder};

#[derive(Parser)]
#[command(about = "Write a vrfwd configuration (for testbeds)")]
struct Args {
    /// The lcore's core.
    #[arg(long)]
    core: u16,
    /// The EAL file prefix (unique per instance on a host).
    #[arg(long)]
    prefix: String,
    /// The operator socket.
    #[arg(long)]
    socket: PathBuf,
    /// An extra EAL argument.
    #[arg(long = "eal-arg", allow_hyphen_values = true)]
    eal_args: Vec<String>,
    #[arg(long)]
    mbufs: Option<u32>,
    /// DRIVER[,ARGS]: vifs attached at run time through a PMD (af_packet or
    /// af_xdp) with device arguments, instead of vrfwd's own sockets.
    #[arg(long)]
    attach_pmd: Option<String>,
    /// KEY=VALUE: a dotted key and a TOML value, e.g. control.hold_time_s=90.
    #[arg(long = "set")]
    sets: Vec<String>,
    /// NAME or NAME=DEVICE.
    #[arg(long = "port")]
    ports: Vec<String>,
    /// NAME=UPLINK[,mtu=N].
    #[arg(long = "segment")]
    segments: Vec<String>,
    /// ID[,name=N][,credential=C][,standby=true|false][,table=auto|compact|wide].
    #[arg(long = "vr")]
    vrs: Vec<String>,
    /// VR,NAME,MAC,ADDRESS/LEN,SEGMENT,VIF[,extra_mac=MAC][,extra_address=ADDRESS][,address6=ADDRESS/LEN][,link_local=ADDRESS]...
    #[arg(long = "interface")]
    interfaces: Vec<String>,
    /// VR,PREFIX,VIA[,INTERFACE] (either family; an IPv6 link-local VIA names
    /// its interface).
    #[arg(long = "route")]
    routes: Vec<String>,
    /// A file of routes, one VR,PREFIX,VIA a line (for tables too long for a command line).
    #[arg(long)]
    route_file: Option<PathBuf>,
    /// VR,ADDRESS,MAC[,INTERFACE].
    #[arg(long = "neighbor")]
    neighbors: Vec<String>,
    /// Where to write (mode 0600); standard output if unset.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

fn main() -> Result<()> {
    let mut a = Args::parse();
    if let Some(path) = &a.route_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        a.routes.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    let mut b = Builder::new(a.core, &a.prefix, a.socket.clone());
    for arg in &a.eal_args {
        b = b.eal_arg(arg);
    }
    if let Some(n) = a.mbufs {
        b = b.mbufs(n);
    }
    if let Some(pmd) = &a.attach_pmd {
        let (driver, args) = pmd.split_once(',').unwrap_or((pmd, ""));
        let driver = match driver {
            "af_packet" => AttachDriver::AfPacket,
            "af_xdp" => AttachDriver::AfXdp,
            other => bail!("--attach-pmd: {other:?} is not af_packet or af_xdp"),
        };
        b = b.attach_pmd(driver, args);
    }
    for port in &a.ports {
        b = match port.split_once('=') {
            Some((name, device)) => b.port(name, Some(device)),
            None => b.port(port, None),
        };
    }
    for s in &a.segments {
        let (spec, mtu) = match s.split_once(",mtu=") {
            Some((spec, mtu)) => (spec, Some(mtu.parse()?)),
            None => (s.as_str(), None),
        };
        let (name, uplink) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--segment {s:?}: expected NAME=UPLINK[,mtu=N]"))?;
        b = b.segment(name, uplink);
        if let Some(mtu) = mtu {
            b = b.mtu(mtu);
        }
    }
    let ids: Vec<&str> = a.vrs.iter().map(|v| split_vr(v).0).collect();
    for item in a.interfaces.iter().chain(&a.routes).chain(&a.neighbors) {
        let vr = split_vr(item).0;
        if !ids.contains(&vr) {
            bail!("{item:?} names VR {vr:?}, which no --vr declares");
        }
    }
    for vr in &a.vrs {
        b = add_vr(b, vr, &a)?;
    }
    for set in &a.sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {set:?}: expected KEY=VALUE"))?;
        b = b.set(key, value)?;
    }
    match &a.output {
        Some(path) => {
            b.write(path)?;
        }
        None => {
            b.build()?;
            print!("{}", b.to_toml());
        }
    }
    Ok(())
}

/// Adds the VR described by `spec` with the interfaces, routes and neighbours the
/// options give it.
fn add_vr(b: Builder, spec: &str, a: &Args) -> Result<Builder> {
    let (id_text, settings) = split_vr(spec);
    let id: u32 = id_text
        .parse()
        .with_context(|| format!("--vr {spec:?}: id"))?;
    let mut v = VrBuilder::new(id);
    // No settings at all (`--vr 1`), or each one KEY=VALUE.
    let settings = Some(settings).filter(|s| !s.is_empty());
    for f in settings.into_iter().flat_map(|s| s.split(',')) {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("--vr {spec:?}: {f:?} is not KEY=VALUE"))?;
        v = match key {
            "name" => v.name(value),
            "credential" => v.credential(value),
            "standby" => v.standby(value.parse()?),
            "table" => v.table(match value {
                "auto" => TableSize::Auto,
                "compact" => TableSize::Compact,
                "wide" => TableSize::Wide,
                _ => bail!("--vr {spec:?}: table {value:?}"),
            }),
            _ => bail!("--vr {spec:?}: unknown setting {key:?}"),
        };
    }
    for f in of_vr(id_text, &a.interfaces) {
        let [name, mac, address, segment, vif, extras @ ..] = &f[..] else {
            bail!(
                "--interface {id},{}: expected VR,NAME,MAC,ADDRESS,SEGMENT,VIF[,extra_mac=MAC|extra_address=ADDRESS|address6=ADDRESS/LEN|link_local=ADDRESS]...",
                f.join(",")
            );
        };
        v = v.interface(name, mac.parse()?, address.parse()?, segment, vif);
        for extra in extras {
            v = match extra.split_once('=') {
                Some(("extra_mac", mac)) => v.extra_mac(mac.parse()?),
                Some(("extra_address", ip)) => v.extra_address(ip.parse()?),
                Some(("address6", net)) => v.address6(net.parse()?),
                Some(("link_local", ip)) => v.link_local(ip.parse()?),
                _ => bail!(
                    "--interface {id},{}: unknown setting {extra:?}",
                    f.join(",")
                ),
            };
        }
    }
    for f in of_vr(id_text, &a.routes) {
        let (prefix, via, interface) = match &f[..] {
            [prefix, via] => (prefix, via, None),
            [prefix, via, interface] => (prefix, via, Some(*interface)),
            _ => bail!(
                "--route {id},{}: expected VR,PREFIX,VIA[,INTERFACE]",
                f.join(",")
            ),
        };
        v = v.route_on(
            prefix.parse::<ipnet::IpNet>()?,
            via.parse::<std::net::IpAddr>()?,
            interface,
        );
    }
    for f in of_vr(id_text, &a.neighbors) {
        let (address, mac, interface) = match &f[..] {
            [address, mac] => (address, mac, None),
            [address, mac, interface] => (address, mac, Some(*interface)),
            _ => bail!(
                "--neighbor {id},{}: expected VR,ADDRESS,MAC[,INTERFACE]",
                f.join(",")
            ),
        };
        v = v.neighbor_on(
            address.parse::<std::net::IpAddr>()?,
            mac.parse()?,
            interface,
        );
    }
    Ok(b.vr(v))
}

/// An option's VR id (its first comma-separated field) and the rest.
fn split_vr(option: &str) -> (&str, &str) {
    option.split_once(',').unwrap_or((option, ""))
}

/// The comma-separated fields after the VR id of the options in `items` for the
/// VR whose id is written `id`.
fn of_vr<'a>(id: &str, items: &'a [String]) -> Vec<Vec<&'a str>> {
    items
        .iter()
        .map(|i| split_vr(i))
        .filter(|&(vr, _)| vr == id)
        .map(|(_, rest)| rest.split(',').collect())
        .collect()
}
