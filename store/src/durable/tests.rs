use std::{fs, os::unix::fs::PermissionsExt};

use super::*;

/// The process's umask, read without changing it (`umask(2)` would race other tests).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Linux 4.7+ reports the umask");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn modes_are_those_a_plain_create_would_give() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, secret) = (dir.path().join("a.tar"), dir.path().join("config.json"));
    write_atomically(&archive, Readers::Everyone, b"tar").unwrap();
    write_atomically(&secret, Readers::Owner, b"{}").unwrap();
    assert_eq!(mode_of(&archive), 0o644 & !umask());
    assert_eq!(mode_of(&secret), 0o600 & !umask());
}

#[test]
fn a_secret_is_private_while_it_is_written_and_when_it_replaces_a_public_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("config.json");
    fs::write(&dest, b"old").unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o644)).unwrap();
    let mut file = DurableFile::create(&dest, Readers::Owner).unwrap();
    file.write_all(b"new").unwrap();
    let temp = dir.path().join(
        names(dir.path())
            .into_iter()
            .find(|n| n.starts_with(".kiln-config.json-"))
            .expect("the temporary file sits beside its target"),
    );
    assert_eq!(
        mode_of(&temp) & 0o077,
        0,
        "the temporary file is readable by others"
    );
    file.commit().unwrap();
    assert_eq!(mode_of(&dest) & 0o077, 0);
    assert_eq!(fs::read(&dest).unwrap(), b"new");
}

#[test]
fn nothing_is_visible_before_commit() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let mut file = DurableFile::create(&dest, Readers::Everyone).unwrap();
    // More than the buffer, so bytes reach the temporary file before commit.
    let bytes = vec![7u8; 3 * BUFFER + 5];
    file.write_all(&bytes).unwrap();
    assert!(!dest.exists(), "the target appeared before commit");
    assert_eq!(file.dest(), dest);
    file.commit().unwrap();
    assert_eq!(fs::read(&dest).unwrap(), bytes);
    assert_eq!(names(dir.path()), ["out.tar"], "a temporary file was left");
}

#[test]
fn a_dropped_file_leaves_nothing_and_the_old_content_stays() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("index.json");
    fs::write(&dest, b"old").unwrap();
    let mut file = DurableFile::create(&dest, Readers::Everyone).unwrap();
    file.write_all(&vec![1u8; 2 * BUFFER]).unwrap();
    drop(file);
    assert_eq!(names(dir.path()), ["index.json"]);
    assert_eq!(fs::read(&dest).unwrap(), b"old");
}

#[test]
fn a_failed_commit_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A rename cannot replace a non-empty directory.
    let dest = dir.path().join("taken");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("inside"), b"x").unwrap();
    let err = write_atomically(&dest, Readers::Everyone, b"bytes").unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(names(dir.path()), ["taken"]);
    assert_eq!(names(&dest), ["inside"]);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("no/such/dir/out.tar");
    let err = DurableFile::create(&dest, Readers::Everyone)
        .err()
        .expect("no directory to write in");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[test]
fn a_bare_file_name_is_written_in_the_working_directory() {
    assert_eq!(parent_of(Path::new("out.tar")), Path::new("."));
    assert_eq!(parent_of(Path::new("d/out.tar")), Path::new("d"));
}

/// The environment variable that makes `commit_fsyncs_the_file_then_renames_then_fsyncs_
/// the_directory` do the writing (run under strace) instead of checking.
const TRACED_CHILD: &str = "KILN_DURABLE_TRACED_CHILD";

/// Seen from the system calls: the temporary file is fsynced before the rename, and the
/// directory after it. The test runs itself again under strace to watch.
#[test]
fn commit_fsyncs_the_file_then_renames_then_fsyncs_the_directory() {
    if let Some(dest) = std::env::var_os(TRACED_CHILD) {
        let mut file = DurableFile::create(PathBuf::from(dest), Readers::Everyone).unwrap();
        file.write_all(b"durable").unwrap();
        file.commit().unwrap();
        return;
    }
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("strace is not installed: skipped (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let trace = dir.path().join("trace");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
        ])
        .arg("-o")
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durable::tests::commit_fsyncs_the_file_then_renames_then_fsyncs_the_directory",
            "--test-threads=1",
        ])
        .env(TRACED_CHILD, &dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let trace = fs::read_to_string(&trace).unwrap();
    let dir_name = dir.path().to_str().unwrap();
    let position = |what: &dyn Fn(&str) -> bool| {
        trace
            .lines()
            .position(what)
            .unwrap_or_else(|| panic!("not in the trace:\n{trace}"))
    };
    let file_sync = position(&|l| l.contains("fsync(") && l.contains(".kiln-out.tar-"));
    let rename =
        position(&|l| l.contains("rename") && l.contains(&format!("\"{}\"", dest.display())));
    let dir_sync = position(&|l| l.contains("fsync(") && l.contains(&format!("<{dir_name}>")));
    assert!(file_sync < rename && rename < dir_sync, "{trace}");
}
