//! What a panic does to the gateway (RELIABILITY.md, "Panics").
//!
//! The policy, in one sentence: **a panic never leaves a half-dead gateway.** Either the damage
//! is confined to the connection whose frame caused it, or the process stops at once.
//!
//! * A panic while one connection's frame is handled — parsing, validation, the permission
//!   gate, the method handler — runs inside [`contain`]. That handling touches the shard's
//!   state only through the handler, which decides before it changes anything shared, so the
//!   shard is still whole: the connection is closed 1011 "internal error", the panic is
//!   logged with the method, and the shard serves on.
//! * A panic anywhere else — an owner's state (sessions, approvals, invokes, cron), a timer,
//!   the bus, the storage thread, the runtime — may have left state that other connections
//!   depend on half-changed. The hook installed by [`install`] then logs one line naming the
//!   thread and location and ends the process with [`EXIT_CODE`], so a supervisor (systemd,
//!   Kubernetes) restarts it. What the storage thread acknowledged is on disk; nothing
//!   acknowledged is lost.
//!
//! A shard that stops making progress without panicking (a stuck loop) is caught by the
//! watchdog in the shard module and handled like an uncontained panic.

use std::{
    any::Any,
    cell::Cell,
    panic::{self, AssertUnwindSafe},
};

/// Exit code of a process stopped by an uncontained panic or a stalled shard (`EX_SOFTWARE`).
pub const EXIT_CODE: i32 = 70;

thread_local! {
    /// Depth of [`contain`] calls on this thread: a panic inside one is caught and handled.
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Installs the process-wide panic hook (once, at start-up in `main`).
pub fn install() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = payload_text(info.payload());
        if CONTAINED.with(Cell::get) > 0 {
            tracing::error!(thread = name, %location, %message, "panic contained: closing the connection that caused it");
            return;
        }
        // Uncontained: say so where an operator looks first, then stop.
        default(info);
        eprintln!(
            "ringgate: fatal: panic on thread {name} at {location}: {message}; \
             exiting with code {EXIT_CODE} so a supervisor restarts the gateway"
        );
        tracing::error!(thread = name, %location, %message, "fatal panic: exiting");
        fatal_exit();
    }));
}

/// Ends the process now with [`EXIT_CODE`] (no unwinding, no waiting for other threads).
pub fn fatal_exit() -> ! {
    // Give the background log writer a moment to persist the line above.
    std::thread::sleep(std::time::Duration::from_millis(50));
    // SAFETY: `_exit` ends the process without running destructors or atexit handlers, which
    // other threads may be using concurrently.
    unsafe { libc::_exit(EXIT_CODE) }
}

/// Runs `f`; a panic inside it is caught and returned as its message.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    CONTAINED.with(|c| c.set(c.get() + 1));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(c.get() - 1));
    r.map_err(|p| payload_text(&*p))
}

fn payload_text(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_is_returned_with_its_message() {
        let r = contain(|| -> u32 { panic!("boom {}", 7) });
        assert_eq!(r.unwrap_err(), "boom 7");
        assert_eq!(contain(|| 5).unwrap(), 5);
        assert_eq!(CONTAINED.with(Cell::get), 0, "depth restored");
    }
}
