//! Docker's default capability set, the only capabilities a sandboxed process keeps.

/// (name, number) of each capability Docker grants by default (moby `caps.DefaultCapabilities`).
pub const DEFAULT: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// [`DEFAULT`] as a mask, as `/proc/self/status` shows it (`CapEff: 00000000a80425fb`).
pub fn default_mask() -> u64 {
    DEFAULT.iter().fold(0, |mask, &(_, cap)| mask | 1 << cap)
}

/// The (effective = permitted, inheritable) sets for a process running as `uid`. Root gets
/// the default set; any other user none (the kernel clears them on setuid, and docker
/// since 20.10 does not give them back). Inheritable stays empty, as in docker since the
/// fix for CVE-2022-24769. The bounding set is the default set for everyone.
pub fn sets_for(uid: u32) -> (u64, u64) {
    if uid == 0 {
        (default_mask(), 0)
    } else {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mask_is_dockers() {
        assert_eq!(default_mask(), 0x0000_0000_a804_25fb);
    }

    #[test]
    fn only_root_keeps_capabilities() {
        assert_eq!(sets_for(0), (0xa804_25fb, 0));
        assert_eq!(sets_for(1000), (0, 0));
    }
}
