//! The standard process metrics, read from `/proc/self` at each scrape (I/O): resident and
//! virtual memory, CPU seconds, open and maximum file descriptors, start time. Unprefixed,
//! as every Prometheus client names them, so the usual dashboards and alerts find them.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// What `/proc/self` says now (each `None` when it cannot be read).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Sample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Parses `/proc/self/stat` (fields after the command's closing parenthesis), with the
/// clock tick and page size, and `/proc/stat`'s boot time.
pub fn from_stat(stat: &str, ticks: f64, page: f64, boot_time: Option<f64>) -> Sample {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // After ")": state is field 3 of stat(5), so index = field number - 3.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let cpu = field(14).zip(field(15)).map(|(u, s)| (u + s) / ticks);
    let start = field(22).zip(boot_time).map(|(t, boot)| boot + t / ticks);
    Sample {
        cpu_seconds: cpu,
        virtual_bytes: field(23),
        resident_bytes: field(24).map(|pages| pages * page),
        start_time_seconds: start,
        ..Sample::default()
    }
}

/// `Max open files` (soft limit) of `/proc/self/limits`.
pub fn max_fds(limits: &str) -> Option<f64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sample() -> Sample {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    });
    let mut s = std::fs::read_to_string("/proc/self/stat")
        .map(|stat| from_stat(&stat, ticks, page, boot))
        .unwrap_or_default();
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    s.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_fds(&l));
    s
}

#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = sample();
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                s.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None::<&Unit>, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

/// A registry (no prefix) holding the process metrics.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(ProcessCollector));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_limits_are_read_as_proc_5_lays_them_out() {
        // A command name with a space and a parenthesis, as the kernel allows.
        let stat = "42 (upgrade (guard)) S 1 42 42 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 \
                    1000 123456789 2048 18446744073709551615";
        let s = from_stat(stat, 100.0, 4096.0, Some(1_700_000_000.0));
        assert_eq!(s.cpu_seconds, Some(3.0));
        assert_eq!(s.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(s.virtual_bytes, Some(123_456_789.0));
        assert_eq!(s.resident_bytes, Some(2048.0 * 4096.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), Some(1024.0));
        assert_eq!(from_stat("garbage", 100.0, 4096.0, None), Sample::default());
    }

    #[test]
    fn this_process_is_measured() {
        let text = crate::metrics::encode(&registry()).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
    }
}
