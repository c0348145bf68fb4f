//! The standard `process_*` metrics (CPU, memory, file descriptors, start time), read from
//! /proc at each scrape and appended to the exposition, as Prometheus client libraries do:
//! Grafana's usual process panels work on them unchanged. Linux only; elsewhere, nothing.

use std::fmt::Write;

/// The exposition text of the process metrics (empty where /proc is missing).
pub fn render() -> String {
    let mut out = String::new();
    let Some(stat) = read_stat() else {
        return out;
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        (stat.utime + stat.stime) as f64 / ticks,
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        stat.rss_pages as f64 * page,
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        stat.vsize as f64,
    );
    metric(
        "process_threads",
        "gauge",
        "Threads of the process.",
        stat.threads as f64,
    );
    if let Some(boot) = boot_time() {
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            boot + stat.start_ticks as f64 / ticks,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            fds.count() as f64,
        );
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        metric(
            "process_max_fds",
            "gauge",
            "Limit on open file descriptors.",
            limit.rlim_cur as f64,
        );
    }
    out
}

struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&text)
}

/// Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses:
/// it ends at the last `)`).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_name_with_spaces() {
        let line = "4242 (sluice (io) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1234 567890 321 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.utime, stat.stime), (250, 50));
        assert_eq!(stat.threads, 7);
        assert_eq!(stat.start_ticks, 1234);
        assert_eq!(stat.vsize, 567890);
        assert_eq!(stat.rss_pages, 321);
    }

    #[test]
    fn renders_this_process() {
        let text = render();
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(rss > 1e5, "{rss}");
    }
}
