//! A task's UPID, as the file names under `/var/log/pve/tasks/` spell it:
//! `UPID:node:PID:PSTART:STARTTIME:type:id:user:` (pve-common's
//! `UPID.pm`; PID, PSTART and STARTTIME in hex). The task log's own text
//! never names the node it ran on; the UPID does, and its STARTTIME is
//! epoch seconds (UTC), which says what the node's local stamps meant.

/// The parts of a UPID the import uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Upid {
    /// The node the task ran on: the migration's source.
    pub node: String,
    /// When the task started, epoch seconds (UTC).
    pub start_s: i64,
    /// The task type (`qmigrate` for a VM's migration).
    pub kind: String,
    /// The task's object (the VM's id).
    pub id: String,
}

/// Reads a file name that is a UPID (a trailing `.log` or `.json` the user
/// may have added is ignored); `None` for any other name.
pub fn parse_upid(file_name: &str) -> Option<Upid> {
    let name = file_name
        .strip_suffix(".log")
        .or_else(|| file_name.strip_suffix(".json"))
        .unwrap_or(file_name);
    let fields: Vec<&str> = name.strip_prefix("UPID:")?.split(':').collect();
    let [node, pid, pstart, start, kind, id, user, ..] = fields[..] else {
        return None;
    };
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if node.is_empty() || !hex(pid) || !hex(pstart) || user.is_empty() {
        return None;
    }
    Some(Upid {
        node: node.to_string(),
        start_s: i64::from_str_radix(start, 16).ok()?,
        kind: kind.to_string(),
        id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn task_file_names_give_node_and_start() {
        let u = parse_upid("UPID:pve1:0003A2F1:0151C8A4:67D40126:qmigrate:100:root@pam:").unwrap();
        assert_eq!(u.node, "pve1");
        assert_eq!(u.start_s, 0x67D4_0126);
        assert_eq!((u.kind.as_str(), u.id.as_str()), ("qmigrate", "100"));
        let saved = parse_upid("UPID:pve-2:00001234:00ABCDEF:67D40126:qmigrate:101:a@pve:.log");
        assert_eq!(saved.unwrap().node, "pve-2");
    }

    #[test]
    fn other_names_are_no_upid() {
        for name in [
            "ok-local-disks.log",
            "UPID:",
            "UPID::0003A2F1:0151C8A4:67D40126:qmigrate:100:root@pam:",
            "UPID:pve1:xyz:0151C8A4:67D40126:qmigrate:100:root@pam:",
            "UPID:pve1:0003A2F1:0151C8A4:zz:qmigrate:100:root@pam:",
            "UPID:pve1:0003A2F1:0151C8A4:67D40126:qmigrate:100",
        ] {
            assert_eq!(parse_upid(name), None, "{name}");
        }
    }
}
