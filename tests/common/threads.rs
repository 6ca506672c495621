//! The server's threads, seen from /proc.

/// The ids of this process's threads under Linux's `SCHED_BATCH` policy:
/// a server's connection threads, unless `--batch-threads false`.
#[cfg(target_os = "linux")]
pub fn sched_batch_threads() -> Vec<u32> {
    /// `SCHED_BATCH` in `/proc/.../stat` (field 41, `policy`).
    const SCHED_BATCH: u32 = 3;
    let mut ids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // The fields after the command name, which is in parentheses and
        // may hold spaces: the first of them is field 3 (state).
        let after = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
        let policy: u32 = after
            .split(' ')
            .nth(41 - 3)
            .expect("a policy field")
            .parse()
            .expect("a number");
        if policy == SCHED_BATCH {
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a thread id");
            ids.push(id.parse().expect("a numeric thread id"));
        }
    }
    ids
}
