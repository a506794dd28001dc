//! Facts about the host and this process for `system.info` (the Control UI's host card): read
//! from `/proc` and `statvfs` on the scan thread, never on a shard.

use std::path::Path;

use serde_json::{json, Value};

/// What `system.info` reports, in the original's shape (`eventLoop` is per shard in ringgate
/// and reported by `status`; it is left out here).
pub fn system_info(state_dir: &Path, port: u16, uptime_ms: u64, instance_id: &str) -> Value {
    let hostname = read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into());
    let release = read_trim("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load: Vec<f64> = read_trim("/proc/loadavg")
        .map(|s| {
            s.split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|k| k * 1024);
    let disk = disk_usage(state_dir);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut v = json!({
        "machineName": hostname,
        "hostname": hostname,
        "platform": std::env::consts::OS,
        "release": release,
        "arch": arch,
        "osLabel": format!("Linux {release}"),
        "port": port,
        "runtimeVersion": format!("ringgate {}", crate::state::VERSION),
        "pid": std::process::id(),
        "processInstanceId": instance_id,
        "uptimeMs": uptime_ms,
        "cpuCount": cpu_count,
        "cpuModel": cpu_model(),
        "loadAverage": load,
        "memoryTotalBytes": mem_kib("MemTotal:").map(|k| k * 1024),
        "memoryFreeBytes": mem_kib("MemAvailable:").map(|k| k * 1024),
        "processMemory": {"rssBytes": rss_bytes},
        "diskPath": state_dir.display().to_string(),
    });
    if let Some((total, avail)) = disk {
        v["disks"] = json!([{"path": state_dir.display().to_string(), "totalBytes": total,
                             "availableBytes": avail}]);
        v["diskTotalBytes"] = json!(total);
        v["diskAvailableBytes"] = json!(avail);
    } else {
        v["disks"] = json!([]);
    }
    v
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// Total and available bytes of the filesystem holding `dir`.
fn disk_usage(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; `c` is a valid NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frag = s.f_frsize as u64;
    Some((s.f_blocks as u64 * frag, s.f_bavail as u64 * frag))
}

/// This host's own interface addresses (`getifaddrs`), non-loopback: a request from one of
/// them came from a process on this host, whatever proxy it claims to be.
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: the family tells which sockaddr type `ifa_addr` points to.
            let ip = match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))))
                }
                libc::AF_INET6 => {
                    let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    Some(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)))
                }
                _ => None,
            };
            if let Some(ip) = ip.filter(|ip| !ip.is_loopback() && !out.contains(ip)) {
                out.push(ip);
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: freed once, after the walk.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_this_host() {
        let v = super::system_info(std::path::Path::new("/"), 1, 2, "i");
        assert_eq!(v["platform"], "linux");
        assert!(v["cpuCount"].as_u64().unwrap() >= 1);
        assert!(v["memoryTotalBytes"].as_u64().unwrap() > 0);
        assert!(v["diskTotalBytes"].as_u64().unwrap() > 0);
        assert_eq!(v["pid"], std::process::id());
    }
}
