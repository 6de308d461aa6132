//! What one query may cost: SQLite's own size limits, so it cannot allocate past the result
//! budget, and a watchdog that interrupts a query at its deadline whatever it is doing.
//!
//! The progress handler alone is not enough for either. It counts virtual-machine
//! operations, and a query whose rows each call one expensive function (`randomblob` of
//! 50 MB) runs few operations for a long time; and a row cap bounds rows, not bytes, so
//! `zeroblob(1e9)` on twenty rows allocated until the process aborted.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::limits::Limit;

/// Stops the query running on one connection, from another thread (SQLite's and DuckDB's
/// interrupt handles).
pub(crate) trait Interrupt: Send + Sync + 'static {
    fn interrupt(&self);
}

impl Interrupt for rusqlite::InterruptHandle {
    fn interrupt(&self) {
        rusqlite::InterruptHandle::interrupt(self);
    }
}

impl Interrupt for Arc<duckdb::InterruptHandle> {
    fn interrupt(&self) {
        duckdb::InterruptHandle::interrupt(self);
    }
}

/// SQLite's heap may grow to this many times the result budget, and never below
/// [`HEAP_FLOOR`]. One query holds the value it builds plus the copy it returns, sorter
/// and page-cache memory, and a second connection (the app's own SQL pane, the feedback
/// store) may run at the same time; tantivy and llama.cpp do not allocate through SQLite.
const HEAP_PER_BUDGET: i64 = 4;
/// The smallest process-wide SQLite heap limit: enough for the page caches and sorters of
/// ordinary queries on a large database, far below the memory of the machines we run on.
pub(crate) const HEAP_FLOOR: i64 = 512 << 20;

/// The process-wide heap limit set so far (0: none). It only ever rises, so two databases
/// opened with different budgets never shrink the limit under each other's queries.
static HEAP_LIMIT: AtomicI64 = AtomicI64::new(0);

/// Caps what SQLite may allocate for queries on `conn` given a result budget of
/// `byte_limit` bytes: no string or blob may be longer than the budget, and the whole
/// process's SQLite heap stays under `max(4 x budget, 512 MiB)`.
pub(crate) fn install_limits(conn: &Connection, byte_limit: usize) -> rusqlite::Result<()> {
    set_value_limit(conn, byte_limit)?;
    raise_heap_limit(byte_limit);
    Ok(())
}

/// No string or blob on `conn` may be longer than `byte_limit` bytes ("string or blob too
/// big" instead of an allocation of that size).
pub(crate) fn set_value_limit(conn: &Connection, byte_limit: usize) -> rusqlite::Result<()> {
    let length = i32::try_from(byte_limit).unwrap_or(i32::MAX).max(1);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, length)?;
    Ok(())
}

/// The process-wide SQLite heap limit in bytes now in force (0 before any database opened).
pub(crate) fn heap_limit() -> i64 {
    HEAP_LIMIT.load(Ordering::SeqCst)
}

fn raise_heap_limit(byte_limit: usize) {
    let budget = i64::try_from(byte_limit).unwrap_or(i64::MAX);
    let wanted = budget.saturating_mul(HEAP_PER_BUDGET).max(HEAP_FLOOR);
    let previous = HEAP_LIMIT.fetch_max(wanted, Ordering::SeqCst);
    if wanted > previous {
        // SAFETY: sqlite3_hard_heap_limit64 only stores a number under SQLite's own mutex;
        // it is safe to call from any thread at any time.
        unsafe {
            rusqlite::ffi::sqlite3_hard_heap_limit64(wanted);
        }
    }
}

/// Interrupts the query running on one connection when its deadline passes, whatever the
/// query is doing. One thread per connection, started with it and joined when it is
/// dropped; a query costs two lock-and-notify steps, not a thread (a thread per query cost
/// about 170 us, which the rewrite audit's hundred thousand queries would feel).
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<Watch>,
    wake: Condvar,
    interrupt: Box<dyn Interrupt>,
    /// Set when the watchdog interrupted the current query at its deadline.
    fired: AtomicBool,
}

#[derive(Clone, Copy, PartialEq)]
enum Watch {
    Idle,
    /// A query is running; `None`: it has no deadline.
    Running(Option<Instant>),
    /// The running query was interrupted; nothing more to do until it ends.
    Fired,
    Shutdown,
}

impl Watchdog {
    pub(crate) fn start(interrupt: impl Interrupt) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(Watch::Idle),
            wake: Condvar::new(),
            interrupt: Box::new(interrupt),
            fired: AtomicBool::new(false),
        });
        let watched = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("query-watchdog".into())
            .spawn(move || watch(&watched))
            .map_err(|error| {
                // The progress handler still checks the deadline, only less promptly.
                tracing::warn!(%error, "cannot start the query watchdog");
            })
            .ok();
        Self { shared, thread }
    }

    /// Runs `query` with the deadline `timeout` from now. The interrupt can only land while
    /// `query` runs: the watchdog sends it holding the lock that marks the query finished,
    /// so it never reaches the next query on the connection.
    pub(crate) fn run<T>(&self, timeout: Duration, query: impl FnOnce() -> T) -> T {
        self.shared.fired.store(false, Ordering::SeqCst);
        self.set(Watch::Running(Instant::now().checked_add(timeout)));
        let result = query();
        self.set(Watch::Idle);
        result
    }

    /// Whether the last query was interrupted at its deadline.
    pub(crate) fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::SeqCst)
    }

    fn set(&self, next: Watch) {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *state = next;
        self.shared.wake.notify_all();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.set(Watch::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        state = match *state {
            Watch::Shutdown => return,
            Watch::Idle | Watch::Fired | Watch::Running(None) => shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Watch::Running(Some(deadline)) => {
                let now = Instant::now();
                if now >= deadline {
                    shared.fired.store(true, Ordering::SeqCst);
                    shared.interrupt.interrupt();
                    *state = Watch::Fired;
                    continue;
                }
                shared
                    .wake
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

/// "512 B", "1.5 KiB", "64.0 MiB": sizes in messages and result tables.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1 << 20), "1.0 MiB");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
    }

    #[test]
    fn the_value_limit_makes_sqlite_refuse_a_huge_blob() {
        let conn = Connection::open_in_memory().unwrap();
        install_limits(&conn, 1 << 20).unwrap();
        let error = conn
            .query_row("SELECT zeroblob(1000000000)", [], |_| Ok(()))
            .unwrap_err();
        assert_eq!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::TooBig),
            "{error}"
        );
        assert!(heap_limit() >= HEAP_FLOOR);
    }

    #[test]
    fn the_watchdog_interrupts_only_a_query_that_is_still_running() {
        let conn = Connection::open_in_memory().unwrap();
        let watchdog = Watchdog::start(conn.get_interrupt_handle());
        let quick = watchdog.run(Duration::from_millis(50), || {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
        });
        assert_eq!(quick.unwrap(), 1);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!watchdog.fired());
        // The next query is not interrupted by the earlier deadline.
        assert!(conn.query_row("SELECT 2", [], |_| Ok(())).is_ok());
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                       SELECT count(*) FROM n";
        let started = Instant::now();
        let stopped = watchdog.run(Duration::from_millis(100), || {
            conn.query_row(endless, [], |_| Ok(()))
        });
        assert_eq!(
            stopped.unwrap_err().sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted)
        );
        assert!(watchdog.fired());
        assert!(started.elapsed() < Duration::from_secs(2));
        let after = watchdog.run(Duration::from_secs(5), || {
            conn.query_row("SELECT 3", [], |_| Ok(()))
        });
        assert!(after.is_ok());
        assert!(!watchdog.fired());
        // Dropping it joins its thread (a hang here would time the test out).
        drop(watchdog);
    }
}
