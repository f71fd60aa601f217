//! `kiln-sandbox SPEC.json [OUTCOME.json]`: runs one sandbox spec and exits with the
//! command's code. For the crate's tests and for debugging; kiln itself calls the library.
//! Like `kiln`, it is also the helper it re-executes (`kiln-sandbox __sandbox-init ...`).

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == kiln_sandbox::INIT_ARG)
    {
        kiln_sandbox::init_main();
    }
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [spec_path, rest @ ..] = args.as_slice() else {
        eprintln!("usage: kiln-sandbox SPEC.json [OUTCOME.json]");
        return ExitCode::from(2);
    };
    let spec: kiln_sandbox::Spec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("kiln-sandbox: {}: {e}", spec_path.display());
            return ExitCode::from(2);
        }
    };
    let exe = PathBuf::from("/proc/self/exe");
    match kiln_sandbox::run(&spec, &exe) {
        Ok(outcome) => {
            if let Some(path) = rest.first() {
                let created: Vec<_> = outcome
                    .created
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let json = serde_json::json!({ "code": outcome.status.code(), "created": created });
                let _ = std::fs::write(path, json.to_string());
            }
            ExitCode::from(outcome.status.code() as u8)
        }
        Err(e) => {
            eprintln!("kiln-sandbox: {e}");
            ExitCode::from(125)
        }
    }
}
