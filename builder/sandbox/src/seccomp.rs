//! The seccomp filter every sandboxed process gets: Docker's default profile in spirit.
//!
//! Docker's profile is an allow list (about 350 calls, EPERM for the rest); what it leaves
//! out, apart from a few argument rules, is the list below. kiln writes the refusals down
//! instead: what is refused is readable here, and a call a newer kernel adds is allowed
//! (where Docker's list refuses it until listed) - the price of a short, auditable list.
//! Every refused call fails with EPERM, except `clone3`, which fails with ENOSYS so that
//! libc falls back to `clone`, whose flags a filter can read (Docker does the same);
//! `clone` is refused when it asks for a new namespace.
//!
//! Decided differently from Docker's list: `ptrace` is allowed (as Docker does on kernels
//! since 4.8, where seccomp cannot be bypassed through it); without `CAP_SYS_PTRACE` it
//! reaches only the sandbox's own processes of the same user.
//!
//! The numbers are the native ABI's. Processes of another ABI (32-bit x86 `int 0x80`) are
//! killed; x32 calls, which share x86_64's audit arch, are refused by their number's bit.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, sock_filter,
};

/// Calls refused on every architecture, with why.
const BLOCKED: &[(&str, i64)] = &[
    // Mounting and namespaces: the container's file system and isolation stay as built.
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    // The kernel keyring is not namespaced.
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // Kernel code and the machine itself.
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    // Tracing and kernel attack surface Docker keeps away from containers.
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    // Reading other processes' memory (Docker allows these only with CAP_SYS_PTRACE).
    ("kcmp", libc::SYS_kcmp),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    // Files by handle bypass path permissions (the "shocker" escape).
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    // The host's clock is not namespaced.
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    // NUMA placement (Docker: only with CAP_SYS_NICE).
    ("mbind", libc::SYS_mbind),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("move_pages", libc::SYS_move_pages),
    ("migrate_pages", libc::SYS_migrate_pages),
];

/// x86_64's legacy calls with the same concerns.
#[cfg(target_arch = "x86_64")]
const BLOCKED_ARCH: &[(&str, i64)] = &[
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("uselib", libc::SYS_uselib),
    ("_sysctl", libc::SYS__sysctl),
    ("nfsservctl", libc::SYS_nfsservctl),
];
#[cfg(not(target_arch = "x86_64"))]
const BLOCKED_ARCH: &[(&str, i64)] = &[];

/// The namespace flags `clone` may not carry (Docker's rule on `clone`'s first argument).
const CLONE_NAMESPACES: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The names of every call the filter refuses, for the README and error messages.
pub fn blocked_names() -> impl Iterator<Item = &'static str> {
    BLOCKED.iter().chain(BLOCKED_ARCH).map(|&(name, _)| name)
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xc000_00f3;

/// x32 calls on x86_64 carry this bit in their number and x86_64's audit arch.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[derive(Debug, thiserror::Error)]
#[error("building the seccomp filter: {0}")]
pub struct FilterError(#[from] seccompiler::BackendError);

/// The BPF program: a hand-written prefix (arch check, x32, `clone3`) and then seccompiler's
/// filter for the refused calls and the `clone` rule.
pub fn default_filter() -> Result<BpfProgram, FilterError> {
    let errno = |e: libc::c_int| SeccompAction::Errno(e as u32);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BLOCKED
        .iter()
        .chain(BLOCKED_ARCH)
        .map(|&(_, nr)| (nr, Vec::new()))
        .collect();
    let clone_rules = CLONE_NAMESPACES
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            let cond = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?;
            SeccompRule::new(vec![cond])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        errno(libc::EPERM),
        std::env::consts::ARCH.try_into()?,
    )?;
    let body: BpfProgram = filter.try_into()?;

    let mut program = prefix();
    program.extend(body);
    Ok(program)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Kill other ABIs, refuse x32 numbers, and answer `clone3` with ENOSYS.
fn prefix() -> BpfProgram {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const NR: u32 = 0; // offsetof(struct seccomp_data, nr)
    const ARCH: u32 = 4; // offsetof(struct seccomp_data, arch)
    let errno = |e: libc::c_int| libc::SECCOMP_RET_ERRNO | e as u32;
    vec![
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, errno(libc::EPERM)),
        jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1),
        stmt(RET_K, errno(libc::ENOSYS)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_builds_and_starts_with_the_arch_check() {
        let program = default_filter().unwrap();
        assert_eq!(program[0], stmt(0x20, 4));
        assert!(program.len() > BLOCKED.len() + CLONE_NAMESPACES.len());
        assert!(program.len() < 4096, "BPF_MAXINSNS");
    }

    #[test]
    fn names_cover_what_the_brief_names() {
        let names: Vec<_> = blocked_names().collect();
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "open_by_handle_at",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "settimeofday",
            "clock_settime",
            "userfaultfd",
        ] {
            assert!(names.contains(&name), "{name} not refused");
        }
    }

    /// Installs the filter in a forked child (no root needed: no_new_privs allows it) and
    /// checks what a few calls return. Only raw syscalls run after the fork.
    #[test]
    fn filter_refuses_and_allows_in_a_real_process() {
        let program = default_filter().unwrap();
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the child only makes raw system calls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = unsafe {
                let errno_of = |ret: libc::c_long| {
                    if ret == -1 {
                        *libc::__errno_location()
                    } else {
                        0
                    }
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(libc::SYS_seccomp, 1, 0, &fprog) != 0
                {
                    libc::_exit(10);
                }
                if errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS)) != libc::EPERM {
                    11
                } else if errno_of(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)) != libc::EPERM {
                    12
                } else if errno_of(libc::syscall(libc::SYS_clone3, 0, 0)) != libc::ENOSYS {
                    13
                } else if errno_of(libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_NEWUSER | libc::SIGCHLD,
                    0,
                    0,
                    0,
                    0,
                )) != libc::EPERM
                {
                    14
                } else if libc::syscall(libc::SYS_getpid) <= 0 {
                    15
                } else {
                    0
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child died: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "check number that failed");
    }
}
