//! What the sync worker's benches share: each measured run is a child process of the bench, so
//! its peak memory is its own; these read it and summarise the rounds.

/// Peak resident memory of this process, in KiB (`VmHWM`).
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The middle value of the rounds.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs this bench binary again as `--child <mode> <addr>` with `env`, and returns the last
/// line it printed, split on whitespace.
pub fn child_line(mode: &str, addr: std::net::SocketAddr, env: &[(&str, &str)]) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--child", mode, &addr.to_string()])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap_or_default().split_whitespace().map(str::to_owned).collect()
}
