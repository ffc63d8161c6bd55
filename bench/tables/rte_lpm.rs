//! `rte_lpm`, wrapped only as the baseline that vrfwd's own table is measured
//! against. The data plane does not use it (`vrfwd::lpm` says why), so it lives
//! here, outside the product.
use std::ffi::CString;
use std::ptr::NonNull;
use vrfwd::dpdk::{check, errno_error, DpdkError};

/// A DPDK LPM table.
pub struct RteLpm {
    raw: NonNull<dpdk_sys::rte_lpm>,
}

impl RteLpm {
    /// Creates a table for `max_rules` rules and `tbl8s` second-level groups.
    pub fn new(name: &str, max_rules: u32, tbl8s: u32) -> Result<Self, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
        let conf = dpdk_sys::rte_lpm_config {
            max_rules,
            number_tbl8s: tbl8s,
            flags: 0,
        };
        // SAFETY: the EAL is up; valid name and config.
        let raw = unsafe { dpdk_sys::rte_lpm_create(cname.as_ptr(), -1, &conf) };
        NonNull::new(raw)
            .map(|raw| RteLpm { raw })
            .ok_or_else(|| errno_error("rte_lpm_create"))
    }

    /// Adds `ip/depth → next_hop`.
    pub fn add(&mut self, ip: u32, depth: u8, next_hop: u32) -> Result<(), DpdkError> {
        // SAFETY: valid table, exclusive access (&mut).
        check("rte_lpm_add", unsafe {
            dpdk_sys::rte_lpm_add(self.raw.as_ptr(), ip, depth, next_hop)
        })
        .map(|_| ())
    }

    /// Looks up `ips` in bulk; `out[i]` gets the next hop, or `u32::MAX` on a miss.
    pub fn lookup_bulk(&self, ips: &[u32], out: &mut [u32]) {
        let n = ips.len().min(out.len());
        // SAFETY: ips and out hold n elements; the table is valid.
        unsafe {
            dpdk_sys::rte_lpm_lookup_bulk_func(
                self.raw.as_ptr(),
                ips.as_ptr(),
                out.as_mut_ptr(),
                n as u32,
            )
        };
        const HIT: u32 = dpdk_sys::RTE_LPM_LOOKUP_SUCCESS;
        for v in &mut out[..n] {
            *v = if *v & HIT != 0 {
                *v & 0x00ff_ffff
            } else {
                u32::MAX
            };
        }
    }
}

impl Drop for RteLpm {
    fn drop(&mut self) {
        // SAFETY: we own the table.
        unsafe { dpdk_sys::rte_lpm_free(self.raw.as_ptr()) };
    }
}
