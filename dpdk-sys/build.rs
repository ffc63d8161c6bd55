//! Generates the raw DPDK bindings against the system's `libdpdk` (pkg-config) and
//! compiles bindgen's wrappers for the static-inline fast-path functions.
//!
//! Pitfalls found on Debian's 22.11 headers (see shared/STYLE.md): the raw cflags
//! (`-include rte_config.h -march=corei7`) must reach both clang and cc; some packed
//! protocol headers contain aligned members and must be opaque; `rte_lpm_lookupx4`
//! takes an SSE vector by value and cannot be wrapped.
use std::env;
use std::path::PathBuf;

fn main() {
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(true)
        .probe("libdpdk")
        .expect("libdpdk not found by pkg-config: install libdpdk-dev (Debian 12: apt-get install libdpdk-dev)");
    let raw_cflags: Vec<String> = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let wrap_path = out.join("static_fns");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&raw_cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .derive_debug(false)
        .derive_default(true)
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_ether_hdr")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_strerror|vrfwd_rte_errno")
        .allowlist_function("rte_lcore_.*|rte_get_.*lcore.*|rte_socket_id|rte_thread_register|rte_thread_unregister")
        .allowlist_function("rte_get_tsc_hz|rte_rdtsc|rte_get_tsc_cycles|rte_delay_us_sleep")
        .allowlist_function("rte_pktmbuf_.*|rte_mbuf_refcnt_.*|rte_mempool_avail_count|rte_mempool_in_use_count|rte_mempool_free|rte_mempool_lookup")
        .allowlist_function("rte_eth_dev_.*|rte_eth_rx_burst|rte_eth_tx_burst|rte_eth_rx_queue_setup|rte_eth_tx_queue_setup|rte_eth_stats_get|rte_eth_macaddr_get|rte_eth_promiscuous_enable|rte_eth_link_get_nowait")
        .allowlist_function("rte_lpm_create|rte_lpm_free|rte_lpm_add|rte_lpm_delete|rte_lpm_lookup|rte_lpm_lookup_bulk_func")
        .allowlist_function("rte_rcu_qsbr_.*")
        .allowlist_function("rte_tel_data_.*|rte_telemetry_register_cmd")
        .allowlist_var("RTE_.*")
        .allowlist_type("rte_mbuf|rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_lpm_config|rte_lpm|vrfwd_flags|rte_tel_value_type")
        .blocklist_function("rte_lpm_lookupx4")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrap_path)
        .layout_tests(false)
        .generate()
        .expect("bindgen failed on the DPDK headers");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrap_path.with_extension("c"))
        .include(".")
        .warnings(false);
    for flag in &raw_cflags {
        build.flag(flag);
    }
    for inc in &dpdk.include_paths {
        build.include(inc);
    }
    build.compile("dpdk_static_fns");
    println!("cargo:rerun-if-changed=wrapper.h");
}
