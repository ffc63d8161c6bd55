//! `bench/agent`: how long a route change in a guest's kernel takes to be live in
//! the VR's table on the host, through `vrfwd-agent` and vrfwd. The guest is a
//! network namespace with the VR's interface MACs and a control link to the host;
//! the changes are `ip route` commands fed to one `ip -batch -` process in it
//! (so no process start-up is timed); the host table is read through the
//! operator socket. 1, 1k and 100k changes. The same 100k batch is also timed
//! into a namespace of its own without an agent (`kernel100_ms`, the kernel alone):
//! the floor the agent's figure is held against. A benchmark, not a test.
//!
//! Run (root, after `cargo build --release --workspace`): `target/release/vrfwd-agent-bench`
//! Last line: `agent: one_ms=<ms> k100_ms=<ms> kernel100_ms=<ms>`
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use vrfwd::config::TableSize;

#[path = "../gen.rs"]
#[allow(dead_code)] // shared with the other benchmarks and tests
mod gen;
#[path = "../rig.rs"]
#[allow(dead_code)] // shared with the other benchmarks
mod rig;

const NS: &str = "vrfwd-bench-guest";
/// The namespace where the kernel alone takes the batch.
const KERNEL_NS: &str = "vrfwd-bench-kernel";
const PORT: u16 = 17792;

fn sh(args: &[&str]) -> Result<()> {
    let st = Command::new(args[0]).args(&args[1..]).status()?;
    if !st.success() {
        bail!("{args:?} failed");
    }
    Ok(())
}

/// The guest namespace: removed on drop.
struct Guest;

impl Guest {
    fn up() -> Result<Guest> {
        Guest::down();
        sh(&["ip", "netns", "add", NS])?;
        let guest = Guest;
        for (i, (host, addr)) in [("vbh0", "10.0.0.1/24"), ("vbh1", "10.1.0.1/24")]
            .into_iter()
            .enumerate()
        {
            let name = format!("eth{i}");
            sh(&[
                "ip", "link", "add", host, "type", "veth", "peer", "name", &name, "netns", NS,
            ])?;
            let mac = rig::vr_mac(0, i).to_string();
            sh(&["ip", "-n", NS, "link", "set", &name, "address", &mac, "up"])?;
            sh(&["ip", "-n", NS, "addr", "add", addr, "dev", &name])?;
            sh(&["ip", "link", "set", host, "up"])?;
        }
        sh(&[
            "ip", "link", "add", "vbctl", "type", "veth", "peer", "name", "ctl0", "netns", NS,
        ])?;
        sh(&["ip", "addr", "add", "10.254.0.1/24", "dev", "vbctl"])?;
        sh(&["ip", "link", "set", "vbctl", "up"])?;
        sh(&[
            "ip",
            "-n",
            NS,
            "addr",
            "add",
            "10.254.0.2/24",
            "dev",
            "ctl0",
        ])?;
        sh(&["ip", "-n", NS, "link", "set", "ctl0", "up"])?;
        sh(&["ip", "-n", NS, "link", "set", "lo", "up"])?;
        Ok(guest)
    }

    fn down() {
        let _ = Command::new("ip")
            .args(["netns", "del", NS])
            .stderr(Stdio::null())
            .status();
        for l in ["vbh0", "vbh1", "vbctl"] {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        Guest::down();
    }
}

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Milliseconds the kernel alone takes for `lines` (one `ip -batch` into a fresh
/// namespace with the next hop's subnet on a veth), process start
/// included; the namespace is removed afterwards. With `listened`, an
/// `ip monitor route` listens meanwhile, as the agent does: the kernel then
/// builds a notification for every change.
fn kernel_alone(lines: &str, listened: bool) -> Result<f64> {
    let del = || {
        Command::new("ip")
            .args(["netns", "del", KERNEL_NS])
            .stderr(Stdio::null())
            .status()
    };
    let _ = del();
    sh(&["ip", "netns", "add", KERNEL_NS])?;
    let result = (|| {
        for args in [
            &[
                "link", "add", "eth1", "type", "veth", "peer", "name", "peer1",
            ][..],
            &["addr", "add", "10.1.0.1/24", "dev", "eth1"],
            &["link", "set", "peer1", "up"],
            &["link", "set", "eth1", "up"],
        ] {
            sh(&[&["ip", "-n", KERNEL_NS][..], args].concat())?;
        }
        let _monitor = match listened {
            true => Some(Proc(
                Command::new("ip")
                    .args(["-n", KERNEL_NS, "monitor", "route"])
                    .stdout(Stdio::null())
                    .spawn()?,
            )),
            false => None,
        };
        // Time for the monitor to subscribe.
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let mut ip = Command::new("ip")
            .args(["-n", KERNEL_NS, "-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()?;
        ip.stdin
            .take()
            .expect("piped")
            .write_all(lines.as_bytes())?;
        if !ip.wait()?.success() {
            bail!("ip -batch in {KERNEL_NS} failed");
        }
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    })();
    let _ = del();
    result
}

fn routes(socket: &Path) -> Option<usize> {
    let reply = vrfwd::control::request(socket, "stats-json").ok()?;
    let s: vrfwd::stats::Snapshot = serde_json::from_str(&reply).ok()?;
    s.vrs.first().map(|v| v.routes)
}

/// Writes `lines` to the guest's `ip -batch` and times until the host holds `want` routes.
fn timed(batch: &mut ChildStdin, lines: &str, socket: &Path, want: usize) -> Result<f64> {
    let start = Instant::now();
    batch.write_all(lines.as_bytes())?;
    batch.flush()?;
    while routes(socket) != Some(want) {
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "the host never reached {want} routes (has {:?})",
                routes(socket)
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("vrfwd-agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    rig::empty_pcap(&dir.join("empty.pcap"))?;
    rig::empty_pcap(&dir.join("in.pcap"))?;
    let _guest = Guest::up()?;
    let _vrfwd = rig::start_vrfwd(
        &dir,
        &rig::vrfwd_config(
            &dir,
            1,
            &[Vec::<(u32, u8)>::new()],
            TableSize::Wide,
            Some(PORT),
        ),
    )?;
    let socket = dir.join("vrfwd.sock");
    std::fs::write(dir.join("credential"), format!("{}\n", rig::CREDENTIAL))?;
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "host = \"10.254.0.1:{PORT}\"\nvr = 1\ncredential_file = \"{}\"\ninterfaces = [\"eth0\", \"eth1\"]\ncoalesce_ms = 1\n",
            dir.join("credential").display()
        ),
    )?;
    let agent_bin = std::env::current_exe()?.with_file_name("vrfwd-agent");
    let _agent = Proc(
        Command::new("ip")
            .args(["netns", "exec", NS])
            .arg(&agent_bin)
            .arg("-c")
            .arg(dir.join("agent.toml"))
            .stderr(Stdio::null())
            .spawn()
            .context("vrfwd-agent (build the workspace in release)")?,
    );
    let mut ip = Proc(
        Command::new("ip")
            .args(["-n", NS, "-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()?,
    );
    let batch = ip.0.stdin.as_mut().expect("piped");
    // The agent's first sync carries the connected routes.
    let start = Instant::now();
    let base = loop {
        match routes(&socket) {
            Some(n) if n > 0 && start.elapsed() > Duration::from_secs(2) => break n,
            _ if start.elapsed() > Duration::from_secs(30) => bail!("the agent did not sync"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let route = |i: u32| {
        format!(
            "route add {}.{}.{}.0/24 via 10.1.0.2 proto bird\n",
            20 + i / 65536,
            (i / 256) % 256,
            i % 256
        )
    };
    let mut ones = Vec::new();
    for i in 0..20u32 {
        ones.push(timed(batch, &route(i), &socket, base + 1 + i as usize)?);
    }
    ones.sort_by(f64::total_cmp);
    let one = ones[ones.len() / 2];
    println!(
        "1 change: median {one:.2} ms over 20 (min {:.2}, max {:.2})",
        ones[0],
        ones[ones.len() - 1]
    );
    let k1: String = (100..1100).map(route).collect();
    let k1_ms = timed(batch, &k1, &socket, base + 20 + 1000)?;
    println!("1k changes: {k1_ms:.1} ms");
    let k100: String = (10_000..110_000).map(route).collect();
    let kernel100_ms = kernel_alone(&k100, false)?;
    let listened_ms = kernel_alone(&k100, true)?;
    // A deleted namespace's routes are freed afterwards by a kernel worker, which
    // must not compete with the agent.
    std::thread::sleep(Duration::from_secs(3));
    let k100_ms = timed(batch, &k100, &socket, base + 20 + 1000 + 100_000)?;
    println!(
        "100k changes: {k100_ms:.0} ms; the kernel alone {kernel100_ms:.0} ms (ratio {:.2}), \
         with a route listener {listened_ms:.0} ms (ratio {:.2})",
        k100_ms / kernel100_ms,
        k100_ms / listened_ms
    );
    drop(ip);
    let _ = std::fs::remove_dir_all(&dir);
    println!("agent: one_ms={one:.2} k100_ms={k100_ms:.0} kernel100_ms={kernel100_ms:.0}");
    Ok(())
}
