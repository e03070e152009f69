//! One line naming why a stage trapped: the limit it hit (with its key), or the trap and where
//! it happened; never the full backtrace, which can be thousands of lines.

use wasmtime::Trap;

use super::Limits;
use super::limits::{MAX_HANDLES, MAX_IMPORT_SIZE, TIMEOUT};

/// Consecutive frames of one function on top of the call stack from which an out-of-bounds trap
/// is reported as a runaway recursion (Rust guests keep their data stack in linear memory and
/// overflow it that way, rather than the engine's stack). wasmtime captures 20 frames by default.
const RECURSION_FRAMES: usize = 16;

/// Why a stage that ran out of time was stopped.
pub(super) fn time_limit(limits: &Limits) -> String {
    format!(
        "the stage exceeded its time limit of {} s ({}) and was stopped",
        limits.timeout.as_secs_f64(),
        TIMEOUT.key
    )
}

/// One line naming why a stage trapped: the limit it hit, or the trap and where it happened.
/// Never the full backtrace, which can be thousands of lines.
pub(super) fn describe_trap(e: &wasmtime::Error, limits: &Limits) -> String {
    let trap = e.downcast_ref::<Trap>();
    let frames = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.frames());
    let depth = frames.map_or(0, <[_]>::len);
    let top = frames
        .and_then(|f| f.first())
        .and_then(|frame| frame.func_name());
    let place = top
        .map(|name| format!(" in {:#}", rustc_demangle::demangle(name)))
        .unwrap_or_default();
    let recursing = depth >= RECURSION_FRAMES
        && frames.is_some_and(|f| {
            f.iter()
                .take(RECURSION_FRAMES)
                .all(|frame| frame.func_name() == top)
        });
    if e.root_cause().is::<crate::capabilities::DeadlineInHost>() {
        return format!(
            "the stage exceeded its time limit of {} s ({}) during a database call and was stopped",
            limits.timeout.as_secs_f64(),
            TIMEOUT.key
        );
    }
    match trap {
        Some(Trap::Interrupt) => time_limit(limits),
        Some(Trap::StackOverflow) => {
            "the stage overflowed its stack (too deep a recursion)".to_owned()
        }
        Some(Trap::MemoryOutOfBounds) if recursing => format!(
            "the stage overflowed its stack (too deep a recursion): out of bounds memory access{place}, \
             the same function on every one of the {depth} innermost frames"
        ),
        Some(trap) => format!("the stage trapped: {trap}{place}"),
        // Not a trap: an error from a host function, the limiter or the component runtime,
        // whose own message (the root of the chain, under the backtrace context) says it all.
        None => {
            let cause = e.root_cause().to_string();
            if cause.contains("handle limit") {
                format!(
                    "the stage exceeded its limit of {} live resource handles ({}): {cause}",
                    limits.max_handles, MAX_HANDLES.key
                )
            } else if cause.contains("fuel allocated for hostcalls") && frames.is_none() {
                // No guest frame on the stack: the guest had returned, and what could not be
                // copied out was the result of `run` itself (its summary or error).
                format!(
                    "the stage returned a result (its summary or error) of more than {} MiB, its \
                     import size limit ({}); only the first {} characters of a \
                     summary are kept anyway",
                    limits.max_import_bytes >> 20,
                    MAX_IMPORT_SIZE.key,
                    super::MAX_REPORT_CHARS
                )
            } else if cause.contains("fuel allocated for hostcalls") {
                format!(
                    "the stage passed more than {} MiB to one host call, its import size limit ({}): {cause}",
                    limits.max_import_bytes >> 20,
                    MAX_IMPORT_SIZE.key
                )
            } else {
                cause
            }
        }
    }
}
