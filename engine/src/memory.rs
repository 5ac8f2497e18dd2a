//! Room to load a model, checked before loading. Running out of memory halfway through a load is
//! not an error Rust can return: the allocator aborts the process (and an `ulimit -v` makes the
//! allocation fail rather than the kernel's OOM killer strike). In PostgreSQL an aborted backend
//! makes the postmaster end every session of the cluster and recover, so the only safe place to
//! say "not enough memory" is before the first big allocation.
//!
//! Three limits bound what a process may still take, and the smallest wins: its address space
//! (`RLIMIT_AS`, what `ulimit -v` sets, against the process's virtual size), the memory the kernel
//! says is available (`MemAvailable`), and its cgroup's `memory.max` (a container's or a systemd
//! unit's limit). Each is read from /proc or /sys; one that cannot be read is not a limit.

use crate::error::{Error, Result};
use std::path::Path;

/// The least room any limit leaves, and which limit that is (said in the error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Room {
    pub(crate) bytes: u64,
    pub(crate) limit: &'static str,
}

/// Fails with [`Error::NotEnoughMemory`] when loading `needed` bytes for the model at `path`
/// would go past one of the process's limits.
pub(crate) fn ensure_room(path: &Path, needed: u64) -> Result<()> {
    match room() {
        Some(room) if room.bytes < needed => Err(Error::NotEnoughMemory {
            path: path.to_owned(),
            needed_mib: needed >> 20,
            room_mib: room.bytes >> 20,
            limit: room.limit.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The room left under each limit that can be read, the least of them.
pub(crate) fn room() -> Option<Room> {
    [address_space_room(), available_memory(), cgroup_room()].into_iter().flatten().min_by_key(|room| room.bytes)
}

/// The process's virtual size (`VmSize`), what `RLIMIT_AS` limits, in bytes.
pub fn virtual_size() -> Option<u64> {
    Some(number_after(&read("/proc/self/status")?, "VmSize:")? * 1024)
}

/// `RLIMIT_AS`'s soft limit less the process's virtual size.
fn address_space_room() -> Option<Room> {
    let limit = number_after(&read("/proc/self/limits")?, "Max address space")?;
    Some(Room { bytes: limit.saturating_sub(virtual_size()?), limit: "the process's address-space limit (ulimit -v)" })
}

fn available_memory() -> Option<Room> {
    Some(Room { bytes: number_after(&read("/proc/meminfo")?, "MemAvailable:")? * 1024, limit: "the memory available on this machine" })
}

/// cgroup v2: `memory.max` less `memory.current` of the process's own group.
fn cgroup_room() -> Option<Room> {
    let group = read("/proc/self/cgroup")?.lines().find_map(|line| line.strip_prefix("0::").map(str::to_owned))?;
    let dir = Path::new("/sys/fs/cgroup").join(group.trim_start_matches('/'));
    let max = read(dir.join("memory.max"))?.trim().parse::<u64>().ok()?; // "max": no limit
    let current = read(dir.join("memory.current"))?.trim().parse::<u64>().ok()?;
    Some(Room { bytes: max.saturating_sub(current), limit: "the memory limit of the server's cgroup (container)" })
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The number after `name` on the row that starts with it: a `Name:  1234 kB` field of
/// /proc/self/status or /proc/meminfo (in KiB), or the soft limit of a /proc/self/limits row (in
/// its unit; `None` when "unlimited").
fn number_after(text: &str, name: &str) -> Option<u64> {
    let row = text.lines().find(|line| line.starts_with(name))?;
    row[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units
Max stack size            8388608              unlimited            bytes
Max address space         4294967296           unlimited            bytes
Max file locks            unlimited            unlimited            locks
";

    #[test]
    fn the_soft_limit_is_read_and_unlimited_is_none() {
        assert_eq!(number_after(LIMITS, "Max address space"), Some(4 << 30));
        assert_eq!(number_after(LIMITS, "Max file locks"), None);
        assert_eq!(number_after(LIMITS, "Max nice priority"), None);
    }

    #[test]
    fn kib_fields_are_read_by_name() {
        let status = "Name:\tpostgres\nVmPeak:\t  300000 kB\nVmSize:\t  250000 kB\n";
        assert_eq!(number_after(status, "VmSize:"), Some(250_000));
        assert_eq!(number_after(status, "VmRSS:"), None);
    }

    #[test]
    fn this_process_has_room_and_a_need_past_it_is_refused_with_the_limit_named() {
        let room = room().expect("/proc/meminfo is readable on Linux");
        assert!(room.bytes > 0, "{room:?}");
        ensure_room(Path::new("m.gguf"), 1 << 20).unwrap();
        let err = ensure_room(Path::new("m.gguf"), room.bytes + (1 << 30)).unwrap_err().to_string();
        assert!(err.contains("m.gguf") && err.contains(room.limit), "{err}");
    }
}
