//! The agent's configuration: a small TOML file, validated at start with the key
//! and the problem named.
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What to export and where.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// vrfwd's route-protocol address on the control network.
    pub host: SocketAddr,
    /// This virtual router's id on the host.
    pub vr: u32,
    /// A file holding the VR's credential (one line).
    pub credential_file: PathBuf,
    /// Kernel routing tables to export (254 = main), in the order the guest's
    /// policy rules consult them: for a prefix in several, the route exported is
    /// the one of the first table, and within it the lowest metric.
    #[serde(default = "default_tables")]
    pub tables: Vec<u32>,
    /// Route protocols to export, by name (as in /etc/iproute2/rt_protos) or number.
    #[serde(default = "default_protocols")]
    pub protocols: Vec<String>,
    /// Interfaces to export (default: every interface with an IPv4 address but lo).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Changes arriving within this window go out in one stanza.
    #[serde(default = "default_coalesce_ms")]
    pub coalesce_ms: u64,
    /// Longest wait between reconnection attempts.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The agent sends a keepalive after this long without sending anything.
    #[serde(default = "default_keepalive_ms")]
    pub keepalive_ms: u64,
    /// The host is presumed gone after this long without a word from it (vrfwd
    /// sends a keepalive every `control.keepalive_s`, 10 s by default).
    #[serde(default = "default_host_timeout_ms")]
    pub host_timeout_ms: u64,
}

fn default_host_timeout_ms() -> u64 {
    35_000
}

fn default_tables() -> Vec<u32> {
    vec![254]
}

fn default_protocols() -> Vec<String> {
    [
        "kernel",
        "boot",
        "static",
        "zebra",
        "bird",
        "bgp",
        "ospf",
        "rip",
        "isis",
        "frr-static",
    ]
    .map(String::from)
    .to_vec()
}

fn default_coalesce_ms() -> u64 {
    5
}

fn default_reconnect_max_ms() -> u64 {
    5000
}

fn default_keepalive_ms() -> u64 {
    3000
}

/// The protocol numbers of /etc/iproute2/rt_protos that routing daemons use.
pub fn protocol_number(name: &str) -> Option<u8> {
    Some(match name {
        "kernel" => 2,
        "boot" => 3,
        "static" => 4,
        "zebra" => 11,
        "bird" => 12,
        "dhcp" => 16,
        "babel" => 42,
        "bgp" => 186,
        "isis" => 187,
        "ospf" => 188,
        "rip" => 189,
        "eigrp" => 192,
        // FRR names it "static" in /etc/iproute2/rt_protos.d/frr.conf.
        "frr-static" => 196,
        other => return other.parse().ok(),
    })
}

/// The configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        AgentConfig::parse(&text)
    }

    pub fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        let c: AgentConfig = toml::from_str(text)?;
        let invalid = |key, problem: String| Err(ConfigError::Invalid { key, problem });
        if c.vr == 0 {
            return invalid("vr", "VR ids start at 1".into());
        }
        if let Some(p) = c.protocols.iter().find(|p| protocol_number(p).is_none()) {
            return invalid(
                "protocols",
                format!("{p:?} is not a route protocol name or number"),
            );
        }
        if c.tables.is_empty() {
            return invalid("tables", "export at least one table".into());
        }
        if c.keepalive_ms == 0 || c.reconnect_max_ms == 0 || c.host_timeout_ms <= c.keepalive_ms {
            return invalid(
                "keepalive_ms",
                "timers must be positive, host_timeout_ms above keepalive_ms".into(),
            );
        }
        Ok(c)
    }

    /// The credential, read from its file.
    pub fn credential(&self) -> Result<String, ConfigError> {
        let text = std::fs::read_to_string(&self.credential_file)
            .map_err(|e| ConfigError::Read(self.credential_file.clone(), e))?;
        let credential = text.trim().to_owned();
        if credential.is_empty() {
            return Err(ConfigError::Invalid {
                key: "credential_file",
                problem: "the file is empty".into(),
            });
        }
        Ok(credential)
    }

    /// The protocol numbers to export.
    pub fn protocol_numbers(&self) -> Vec<u8> {
        self.protocols
            .iter()
            .filter_map(|p| protocol_number(p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = AgentConfig::parse("host = \"10.255.0.1:7700\"\nvr = 3\ncredential_file = \"/x\"")
            .unwrap();
        assert_eq!(c.tables, vec![254]);
        assert!(c.protocol_numbers().contains(&12));
        assert!(c.protocol_numbers().contains(&196), "FRR's static routes");
        for (text, want) in [
            ("host = \"10.255.0.1:7700\"\nvr = 0\ncredential_file = \"/x\"", "vr"),
            ("host = \"10.255.0.1:7700\"\nvr = 1\ncredential_file = \"/x\"\nprotocols = [\"birdd\"]", "protocols"),
            ("host = \"nowhere\"\nvr = 1\ncredential_file = \"/x\"", "host"),
        ] {
            let e = AgentConfig::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
