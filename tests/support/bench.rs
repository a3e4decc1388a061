//! Helpers shared by the benchmark commands: the machine's description, percentiles,
//! units, and writing one section of `docs/benchmarks.md`.

use std::time::Duration;

/// `name` from the environment as a number, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value at quantile `p` of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Cores, CPU model and memory of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    format!(
        "{} × {cpu}, {:.0} GiB RAM",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        total as f64 / 1024.0 / 1024.0
    )
}

/// KiB as MiB.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Replaces the section between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`
/// of docs/benchmarks.md (other benchmarks keep their sections).
pub fn write_section(name: &str, section: &str) -> std::path::PathBuf {
    let begin = format!("<!-- bench:{name}:begin -->");
    let end = format!("<!-- bench:{name}:end -->");
    let path = super::stack::repo_root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\n".to_string());
    let block = format!("{begin}\n{section}{end}\n");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{block}{}",
            &old[..b],
            &old[e + end.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n\n{block}", old.trim_end()),
    };
    std::fs::write(&path, new).expect("write docs/benchmarks.md");
    path
}

/// The body of a GET of `url` (a metrics page), empty when it cannot be had.
pub async fn text(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The sum of every sample of metric `name` (any labels) in a metrics page.
pub fn sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// glibc's malloc settings the image runs the daemon with (deploy/Dockerfile): two arenas,
/// and blocks from 1 MiB up mapped on their own (returned to the kernel when freed).
pub const IMAGE_MALLOC: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "1048576"),
];

/// The daemon's malloc settings: each of [`IMAGE_MALLOC`] unless `BENCH_<NAME>` says
/// otherwise (`BENCH_MALLOC_ARENA_MAX=4`; set empty, glibc's default: `None`).
pub fn malloc_settings() -> Vec<(&'static str, Option<String>)> {
    IMAGE_MALLOC
        .iter()
        .map(|(name, image)| {
            let value = match std::env::var(format!("BENCH_{name}")) {
                Ok(v) if v.trim().is_empty() => None,
                Ok(v) => Some(v),
                Err(_) => Some((*image).to_string()),
            };
            (*name, value)
        })
        .collect()
}

/// The malloc settings in words, for a report.
pub fn malloc_words() -> String {
    let set: Vec<String> = malloc_settings()
        .into_iter()
        .map(|(name, v)| match v {
            Some(v) => format!("`{name}={v}`"),
            None => format!("`{name}` unset (glibc's default)"),
        })
        .collect();
    format!("glibc's malloc with {}", set.join(" and "))
}

/// Sets the daemon's environment as the image does ([`malloc_settings`]).
pub fn as_the_image_runs_it(command: &mut std::process::Command) {
    for (name, value) in malloc_settings() {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    ticks / hz
}
