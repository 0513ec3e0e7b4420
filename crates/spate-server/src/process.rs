//! The process and its disk, for `/metrics`: CPU time, memory, file descriptors, threads and
//! start time read from `/proc/self` (Linux; named as the Prometheus client libraries name
//! them, so dashboards built for any exporter work), and the free and total bytes of the
//! filesystem that holds the data directory (`statvfs`).
//!
//! Reading blocks on the filesystem (`/proc` is cheap, a network filesystem's `statvfs` may
//! not be): call [`render`] off the async workers. What cannot be read is left out of the
//! scrape, logged once at DEBUG, rather than reported as zero.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use spate_metrics::write_single;

/// What `/proc/self/stat` and friends say about the process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    /// Resident set size.
    pub resident_bytes: u64,
    /// Virtual memory size.
    pub virtual_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Start time since the epoch.
    pub start_time_seconds: f64,
}

/// Fields of `/proc/<pid>/stat` (proc(5)), counted from 1 as the manual does.
const STAT_UTIME: usize = 14;
const STAT_STIME: usize = 15;
const STAT_NUM_THREADS: usize = 20;
const STAT_STARTTIME: usize = 22;
const STAT_VSIZE: usize = 23;
const STAT_RSS: usize = 24;

/// Parses `/proc/self/stat`. Times are in clock ticks since boot, so the boot time
/// (`/proc/stat`'s `btime`) turns the start into wall-clock seconds.
pub(crate) fn parse_stat(
    text: &str,
    ticks_per_second: u64,
    page_size: u64,
    boot_time_seconds: u64,
) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself:
    // the fields that follow start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts with field 3 (state).
    let field = |n: usize| -> Option<u64> { fields.get(n.checked_sub(3)?)?.parse().ok() };
    let ticks = ticks_per_second.max(1) as f64;
    Some(ProcessStats {
        cpu_seconds: (field(STAT_UTIME)? + field(STAT_STIME)?) as f64 / ticks,
        resident_bytes: field(STAT_RSS)?.saturating_mul(page_size),
        virtual_bytes: field(STAT_VSIZE)?,
        threads: field(STAT_NUM_THREADS)?,
        start_time_seconds: boot_time_seconds as f64 + field(STAT_STARTTIME)? as f64 / ticks,
    })
}

/// The boot time in seconds since the epoch, from `/proc/stat`.
pub(crate) fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// A soft limit from `/proc/self/limits` (`Max open files`, `Max address space`); `unlimited`
/// is `u64::MAX`, as the Go client reports it.
pub(crate) fn parse_limit(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let soft = line[name.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// Logs the first failure to read something, at DEBUG; later scrapes stay quiet.
fn unreadable(what: &str, error: &dyn std::fmt::Display) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::debug!(%error, "{what} cannot be read; its metrics are left out");
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .map_err(|e| unreadable(path, &e))
        .ok()
}

/// Reads the process's figures; `None` where `/proc` is missing (not Linux).
pub(crate) fn process_stats() -> Option<ProcessStats> {
    let boot = parse_boot_time(&read("/proc/stat")?)?;
    let page_size = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
    parse_stat(
        &read("/proc/self/stat")?,
        rustix::param::clock_ticks_per_second(),
        page_size,
        boot,
    )
}

/// Open file descriptors: the entries of `/proc/self/fd` (the directory's own included, as
/// the Go client counts).
fn open_fds() -> Option<u64> {
    match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => Some(entries.count() as u64),
        Err(err) => {
            unreadable("/proc/self/fd", &err);
            None
        }
    }
}

/// Appends the `process_*` metrics and the data directory's filesystem space.
pub(crate) fn render(out: &mut String, data_dir: &Path) {
    if let Some(stats) = process_stats() {
        write_single(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stats.cpu_seconds,
        );
        write_single(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            stats.resident_bytes,
        );
        write_single(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stats.virtual_bytes,
        );
        write_single(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            stats.start_time_seconds,
        );
        write_single(
            out,
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            stats.threads,
        );
    }
    if let Some(fds) = open_fds() {
        write_single(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        );
    }
    if let Some(limits) = read("/proc/self/limits") {
        if let Some(max) = parse_limit(&limits, "Max open files") {
            write_single(
                out,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max,
            );
        }
        if let Some(max) = parse_limit(&limits, "Max address space") {
            write_single(
                out,
                "process_virtual_memory_max_bytes",
                "gauge",
                "Maximum amount of virtual memory available in bytes.",
                max as f64,
            );
        }
    }
    match rustix::fs::statvfs(data_dir) {
        Ok(fs) => {
            write_single(
                out,
                "spate_data_dir_free_bytes",
                "gauge",
                "Bytes free for Spate on the filesystem of the data directory (df's Avail).",
                fs.f_bavail.saturating_mul(fs.f_frsize),
            );
            write_single(
                out,
                "spate_data_dir_total_bytes",
                "gauge",
                "Size in bytes of the filesystem of the data directory.",
                fs.f_blocks.saturating_mul(fs.f_frsize),
            );
        }
        Err(err) => unreadable("the data directory's filesystem (statvfs)", &err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line from Linux 6.1, with a command name that holds a space and a parenthesis.
    const STAT: &str = "4242 (spate (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 \
                        9 0 123456 987654321 5000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 \
                        17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stats = parse_stat(STAT, 100, 4096, 1_700_000_000).expect("parses");
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.25,
                resident_bytes: 5000 * 4096,
                virtual_bytes: 987_654_321,
                threads: 9,
                start_time_seconds: 1_700_000_000.0 + 1234.56,
            }
        );
    }

    #[test]
    fn a_short_or_garbled_stat_is_refused() {
        assert_eq!(parse_stat("4242 (spate) S 1 2 3", 100, 4096, 0), None);
        assert_eq!(parse_stat("no parenthesis", 100, 4096, 0), None);
        let garbled = STAT.replace(" 250 ", " x ");
        assert_eq!(parse_stat(&garbled, 100, 4096, 0), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5 6\nctxt 789\nbtime 1699999000\nprocesses 42\n";
        assert_eq!(parse_boot_time(text), Some(1_699_999_000));
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn limits_give_the_soft_value_and_unlimited_is_max() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1048576              1048576              files     \n\
                    Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(parse_limit(text, "Max open files"), Some(1_048_576));
        assert_eq!(parse_limit(text, "Max address space"), Some(u64::MAX));
        assert_eq!(parse_limit(text, "Max locked memory"), None);
    }

    #[test]
    fn this_process_reads_as_alive() {
        let stats = process_stats().expect("/proc on Linux");
        assert!(stats.resident_bytes > 0 && stats.virtual_bytes >= stats.resident_bytes);
        assert!(stats.threads >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(stats.start_time_seconds > 1e9 && stats.start_time_seconds <= now + 1.0);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut out = String::new();
        render(&mut out, dir.path());
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
            "spate_data_dir_free_bytes",
            "spate_data_dir_total_bytes",
        ] {
            let value: f64 = out
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing in\n{out}"))
                .parse()
                .expect(name);
            assert!(value >= 0.0, "{name} {value}");
        }
    }
}
