//! DPDK's telemetry library: commands registered once per process (DPDK
//! cannot unregister them), answered by a handler that lives only as long as
//! its [`Registration`]; after that they answer ENODEV.
use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::sync::{Mutex, Once};

/// A value of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    U64(u64),
    Str(String),
}

/// What a command answers: what DPDK's telemetry can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Dict(Vec<(String, Value)>),
    List(Vec<Value>),
}

/// Answers a command (with its parameter, empty if none); None: EINVAL.
pub type Handler<'h> = dyn Fn(&str, &str) -> Option<Answer> + Sync + 'h;

/// The handler while registered; None before and after.
static HANDLER: Mutex<Option<&'static Handler<'static>>> = Mutex::new(None);

/// `handler` answering `commands` (name, help) until dropped.
pub struct Registration<'a> {
    _handler: PhantomData<&'a Handler<'a>>,
}

impl<'a> Registration<'a> {
    /// Registers `commands` with DPDK (the first call only: the set is the
    /// process's) and makes `handler` answer them. Call after the EAL is up;
    /// a command DPDK refuses is logged.
    pub fn new(
        commands: &'static [(&'static str, &'static str)],
        handler: &'a Handler<'a>,
    ) -> Registration<'a> {
        // SAFETY: the reference is erased to 'static only inside HANDLER,
        // which `Drop` empties (under the lock) before 'a ends; the callback
        // uses it only while holding the lock, so it never outlives the
        // referent.
        let erased =
            unsafe { std::mem::transmute::<&'a Handler<'a>, &'static Handler<'static>>(handler) };
        *lock() = Some(erased);
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| register(commands));
        Registration {
            _handler: PhantomData,
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        *lock() = None;
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<&'static Handler<'static>>> {
    HANDLER.lock().unwrap_or_else(|e| e.into_inner())
}

fn register(commands: &[(&str, &str)]) {
    for &(cmd, help) in commands {
        let (c, h) = (
            CString::new(cmd).expect("no NUL"),
            CString::new(help).expect("no NUL"),
        );
        // SAFETY: valid C strings, which DPDK copies; `callback` has the
        // signature telemetry_cb names.
        let ret =
            unsafe { dpdk_sys::rte_telemetry_register_cmd(c.as_ptr(), Some(callback), h.as_ptr()) };
        if ret != 0 {
            tracing::warn!(cmd, "DPDK telemetry refused the command: {ret}");
        }
    }
}

/// DPDK's telemetry thread asking: the answer written into `d`, or a negative
/// errno (a parameter that names nothing, or no handler any more).
unsafe extern "C" fn callback(
    cmd: *const c_char,
    params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    let text = |p: *const c_char| match p.is_null() {
        true => "",
        // SAFETY: DPDK passes NUL-terminated strings that live for the call.
        false => unsafe { CStr::from_ptr(p) }.to_str().unwrap_or(""),
    };
    let handler = lock();
    let Some(handler) = *handler else {
        return -libc::ENODEV;
    };
    match handler(text(cmd), text(params)) {
        // SAFETY: `d` is the data object DPDK handed this call.
        Some(a) => unsafe { fill(d, &a) },
        None => -libc::EINVAL,
    }
}

/// Writes `a` into telemetry data `d`.
///
/// # Safety
/// `d` must be a data object DPDK passed to a telemetry callback.
unsafe fn fill(d: *mut dpdk_sys::rte_tel_data, a: &Answer) -> c_int {
    let c = |s: &str| CString::new(s.replace('\0', "")).expect("no NUL left");
    // SAFETY: every call below writes into `d`, valid for the callback (the
    // caller's promise), with C strings that DPDK copies before returning.
    unsafe {
        match a {
            Answer::Dict(entries) => {
                dpdk_sys::rte_tel_data_start_dict(d);
                for (k, v) in entries {
                    let k = c(k);
                    match v {
                        Value::U64(n) => dpdk_sys::rte_tel_data_add_dict_u64(d, k.as_ptr(), *n),
                        Value::Str(s) => {
                            dpdk_sys::rte_tel_data_add_dict_string(d, k.as_ptr(), c(s).as_ptr())
                        }
                    };
                }
            }
            Answer::List(items) => {
                let strings = items.iter().any(|v| matches!(v, Value::Str(_)));
                let kind = match strings {
                    true => dpdk_sys::rte_tel_value_type_RTE_TEL_STRING_VAL,
                    false => dpdk_sys::rte_tel_value_type_RTE_TEL_U64_VAL,
                };
                dpdk_sys::rte_tel_data_start_array(d, kind);
                for v in items {
                    match v {
                        Value::U64(n) => dpdk_sys::rte_tel_data_add_array_u64(d, *n),
                        Value::Str(s) => dpdk_sys::rte_tel_data_add_array_string(d, c(s).as_ptr()),
                    };
                }
            }
        }
    }
    0
}
