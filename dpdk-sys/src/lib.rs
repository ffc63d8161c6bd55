//! Raw, generated bindings to the system DPDK. Nothing here is safe to call without
//! reading DPDK's documentation; the `vrfwd::dpdk` module is the only user and the
//! only place where these functions are called.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all, improper_ctypes, unsafe_op_in_unsafe_fn)]
include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
