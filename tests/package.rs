//! The Debian packages, as an operator installs them: `bash scripts/package.sh`
//! builds them (the test command runs it first), and they go into a clean
//! Debian 12 root (scripts/debian-root.sh: debootstrap, cached in
//! /var/cache/vrfwd-testbed like the Xen testbed's image). apt resolves their
//! dependencies from Debian's archive; the config is root's only; both units
//! pass `systemd-analyze verify` and are enabled; `vrfwd check` runs from the
//! installed files; an upgrade (a reinstall over an edited config) keeps the
//! operator's config and its maintainer scripts never stop or restart vrfwd.
//! Needs root, and Debian's mirror the first time.
mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const CACHE: &str = "/var/cache/vrfwd-testbed";

/// A copy of the cached root, removed on drop (also when the test fails).
struct Root(PathBuf);

impl Root {
    fn copy() -> Root {
        sh(Command::new("bash")
            .arg(root().join("scripts/debian-root.sh"))
            .arg(CACHE));
        let dir = std::env::temp_dir().join("vrfwd-package-root");
        let _ = std::fs::remove_dir_all(&dir);
        let copy = Root(dir);
        sh(Command::new("cp")
            .args(["-a", &format!("{CACHE}/debian12-root")])
            .arg(&copy.0));
        copy
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.0.join(inside.trim_start_matches('/'))
    }

    /// Runs `args` inside the root; panics if it fails.
    fn run(&self, args: &[&str]) -> String {
        sh(Command::new("chroot").arg(&self.0).args(args))
    }

    fn read(&self, inside: &str) -> String {
        std::fs::read_to_string(self.path(inside)).unwrap_or_else(|e| panic!("{inside}: {e}"))
    }

    /// Keeps what apt downloaded in the cached root, for the next run.
    fn keep_downloads(&self) {
        let archives = "var/cache/apt/archives";
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cp -n {}/*.deb {CACHE}/debian12-root/{archives}/ 2>/dev/null",
                self.path(archives).display()
            ))
            .status();
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The package file `name_*.deb` scripts/package.sh made.
fn package(name: &str) -> PathBuf {
    let dir = root().join("target/package");
    let found = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}_")) && f.ends_with(".deb"))
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "no {name} package in {}: run `bash scripts/package.sh`",
            dir.display()
        )
    })
}

/// Copies the packages into the root; returns their paths there.
fn stage(r: &Root, packages: &[&Path]) -> Vec<String> {
    std::fs::create_dir_all(r.path("/tmp/pkgs")).expect("a folder for the packages");
    packages
        .iter()
        .map(|p| {
            let inside = format!("/tmp/pkgs/{}", p.file_name().unwrap().to_string_lossy());
            std::fs::copy(p, r.path(&inside)).expect("the package copied");
            inside
        })
        .collect()
}

#[test]
fn the_packages_install_into_a_clean_debian_root_and_an_upgrade_restarts_nothing() {
    let (vrfwd, agent) = (package("vrfwd"), package("vrfwd-agent"));
    let r = Root::copy();
    let debs = stage(&r, &[&vrfwd, &agent]);
    let install = |extra: &[&str]| {
        let mut args = vec![
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-q",
        ];
        args.extend_from_slice(extra);
        args.extend(debs.iter().map(String::as_str));
        r.run(&args)
    };
    install(&[]);
    r.keep_downloads();

    // The config holds credentials: root's alone.
    let config = std::fs::metadata(r.path("/etc/vrfwd/vrfwd.toml")).expect("the config");
    assert_eq!(config.permissions().mode() & 0o777, 0o600);
    assert_eq!((config.uid(), config.gid()), (0, 0));
    // It runs from the installed files (and their libraries, which apt brought).
    let checked = r.run(&["vrfwd", "check", "-c", "/etc/vrfwd/vrfwd.toml"]);
    assert!(checked.contains("/etc/vrfwd/vrfwd.toml: ok"), "{checked}");
    r.run(&["vrfwd-agent", "--help"]);
    // (The chroot has no /sys: the hugepage script runs on the host, asking
    // for no more than the host has.)
    sh(Command::new("sh")
        .arg(r.path("/usr/lib/vrfwd/hugepages"))
        .arg("0"));
    // The units: valid, every command they name present, enabled for boot.
    sh(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", r.0.display()))
        .args(["vrfwd.service", "vrfwd-agent.service"]));
    for unit in ["vrfwd.service", "vrfwd-agent.service"] {
        let wants = r.path(&format!(
            "/etc/systemd/system/multi-user.target.wants/{unit}"
        ));
        assert!(wants.is_symlink(), "{unit} enabled");
    }
    let unit = r.read("/lib/systemd/system/vrfwd.service");
    assert!(unit.contains("ExecStartPre=/usr/bin/vrfwd check -c ${VRFWD_CONFIG}"));
    assert!(unit.contains("ExecStartPre=/usr/lib/vrfwd/hugepages ${HUGEPAGES}"));

    // An upgrade over an operator's config: the config stays theirs, and no
    // maintainer script starts, stops or restarts vrfwd but for a removal.
    let edited = format!(
        "{}\n# the operator's edit\n",
        r.read("/etc/vrfwd/vrfwd.toml")
    );
    std::fs::write(r.path("/etc/vrfwd/vrfwd.toml"), &edited).expect("the edit");
    install(&["--reinstall", "-o", "Dpkg::Options::=--force-confold"]);
    assert_eq!(
        r.read("/etc/vrfwd/vrfwd.toml"),
        edited,
        "the operator's config kept"
    );
    let scripts: String = ["postinst", "prerm", "postrm", "preinst"]
        .iter()
        .filter_map(|s| {
            std::fs::read_to_string(r.path(&format!("/var/lib/dpkg/info/vrfwd.{s}"))).ok()
        })
        .collect();
    let service_commands = (scripts.lines())
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.contains("deb-systemd-invoke") || l.contains("systemctl"));
    for line in service_commands {
        let stop = line.contains("deb-systemd-invoke stop vrfwd.service");
        assert!(
            stop || line.contains("daemon-reload"),
            "a script starts or restarts vrfwd: {line}"
        );
    }
    let prerm = r.read("/var/lib/dpkg/info/vrfwd.prerm");
    assert!(
        prerm.contains(r#"if [ "$1" = remove ]"#),
        "stopped on removal only:\n{prerm}"
    );
}
