//! `apply`: the one place where metadata instructions (ENV, LABEL, CMD, ENTRYPOINT, USER,
//! WORKDIR, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER) change an
//! image config, with BuildKit's rules (dockerfile2llb's `dispatch*`), and the history
//! entry BuildKit writes for each. `kiln import --change` and the build executor both go
//! through it; the instruction comes from the parser, expanded by the planner.

mod gofmt;
mod ports;

use kiln_store::{Healthcheck, ImageConfig, RunConfig};
use serde_json::Value;

use crate::dockerfile::{Args, Command, Instruction, Keyword};

/// The shell of shell-form CMD and ENTRYPOINT when the image sets no SHELL (Linux).
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The instructions [`apply`] handles.
pub const KEYWORDS: [Keyword; 13] = [
    Keyword::Env,
    Keyword::Label,
    Keyword::Cmd,
    Keyword::Entrypoint,
    Keyword::User,
    Keyword::Workdir,
    Keyword::Expose,
    Keyword::Volume,
    Keyword::Stopsignal,
    Keyword::Healthcheck,
    Keyword::Shell,
    Keyword::Onbuild,
    Keyword::Maintainer,
];

pub fn is_metadata(keyword: Keyword) -> bool {
    KEYWORDS.contains(&keyword)
}

/// What a stage remembers between its instructions besides the config itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageState {
    /// A CMD ran in this stage: a later ENTRYPOINT keeps it. (An inherited CMD is reset
    /// by ENTRYPOINT, as in BuildKit; a child stage starts with this false.)
    pub cmd_set: bool,
}

/// What applying an instruction means beyond the config change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The history entry's `created_by`, as BuildKit writes it; `None` where BuildKit
    /// writes no entry (ONBUILD).
    pub created_by: Option<String>,
    /// WORKDIR other than `/`: BuildKit creates the directory (owned by the USER), so the
    /// step has a layer. Every other instruction is an `empty_layer` step.
    pub mkdir: Option<String>,
}

impl Applied {
    pub fn empty_layer(&self) -> bool {
        self.mkdir.is_none()
    }

    fn history(created_by: String) -> Applied {
        Applied {
            created_by: Some(created_by),
            mkdir: None,
        }
    }
}

/// Why an instruction cannot apply; the caller says where it was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MetadataError {
    pub message: String,
}

fn fail<T>(message: impl Into<String>) -> Result<T, MetadataError> {
    Err(MetadataError {
        message: message.into(),
    })
}

/// Apply `instruction` (as the planner leaves it: variables expanded where BuildKit
/// expands them) to `image`.
pub fn apply(
    image: &mut ImageConfig,
    stage: &mut StageState,
    instruction: &Instruction,
) -> Result<Applied, MetadataError> {
    let keyword = instruction.keyword;
    if keyword == Keyword::Maintainer {
        let Args::Text(author) = &instruction.args else {
            return shape(instruction);
        };
        image.author = Some(author.clone());
        return Ok(Applied::history(format!("MAINTAINER {author}")));
    }
    let config = image.config.get_or_insert_with(RunConfig::default);
    match (keyword, &instruction.args) {
        (Keyword::Env, Args::Pairs(pairs)) => {
            let env = config.env.get_or_insert_with(Vec::new);
            let mut created_by = String::from("ENV");
            for pair in pairs {
                set_env(env, &pair.key, &pair.value);
                created_by.push_str(&format!(" {}={}", pair.key, pair.value));
            }
            Ok(Applied::history(created_by))
        }
        (Keyword::Label, Args::Pairs(pairs)) => {
            let labels = config.labels.get_or_insert_with(Default::default);
            let mut created_by = String::from("LABEL");
            for pair in pairs {
                labels.insert(pair.key.clone(), pair.value.clone());
                created_by.push_str(&format!(" {}={}", pair.key, pair.value));
            }
            Ok(Applied::history(created_by))
        }
        (Keyword::Cmd, Args::Command(command)) => {
            let argv = with_shell(config, command);
            stage.cmd_set = true;
            // BuildKit marks every CMD so (it matters to Windows images only).
            config.set_args_escaped(true);
            let created_by = format!("CMD {}", gofmt::quote_list(&argv));
            config.cmd = non_empty(argv);
            Ok(Applied::history(created_by))
        }
        (Keyword::Entrypoint, Args::Command(command)) => {
            let argv = with_shell(config, command);
            if !stage.cmd_set {
                config.cmd = None;
            }
            let created_by = format!("ENTRYPOINT {}", gofmt::quote_list(&argv));
            config.entrypoint = non_empty(argv);
            Ok(Applied::history(created_by))
        }
        (Keyword::User, Args::Text(user)) => {
            config.user = (!user.is_empty()).then(|| user.clone());
            Ok(Applied::history(format!("USER {user}")))
        }
        (Keyword::Workdir, Args::Text(path)) => {
            let dir = workdir(config.working_dir.as_deref().unwrap_or(""), path);
            config.working_dir = Some(dir.clone());
            Ok(Applied {
                created_by: Some(format!("WORKDIR {dir}")),
                mkdir: (dir != "/").then(|| dir.clone()),
            })
        }
        (Keyword::Expose, Args::List(specs)) => {
            let mut ports = Vec::new();
            for spec in specs {
                ports.extend(ports::parse(spec).map_err(|message| MetadataError { message })?);
            }
            let exposed = config.exposed_ports.get_or_insert_with(Default::default);
            for port in &ports {
                exposed.insert(port.clone(), Value::Object(Default::default()));
            }
            Ok(Applied::history(format!(
                "EXPOSE {}",
                gofmt::plain_list(&ports)
            )))
        }
        (Keyword::Volume, Args::List(paths)) => {
            if paths.iter().any(String::is_empty) {
                return fail("VOLUME names an empty path");
            }
            let volumes = config.volumes.get_or_insert_with(Default::default);
            for path in paths {
                volumes.insert(path.clone(), Value::Object(Default::default()));
            }
            Ok(Applied::history(format!(
                "VOLUME {}",
                gofmt::plain_list(paths)
            )))
        }
        (Keyword::Stopsignal, Args::Text(signal)) => {
            if !is_signal(signal) {
                return fail(format!(
                    "invalid signal {signal:?}: expected a name such as SIGTERM or TERM, or a number"
                ));
            }
            config.stop_signal = Some(signal.clone());
            Ok(Applied::history(format!("STOPSIGNAL {signal}")))
        }
        (Keyword::Healthcheck, Args::Healthcheck(command)) => {
            let check = healthcheck(instruction, command.as_ref())?;
            let created_by = format!("HEALTHCHECK {}", describe(&check));
            config.set_healthcheck(Some(check));
            Ok(Applied::history(created_by))
        }
        (Keyword::Shell, Args::Shell(argv)) => {
            config.set_shell(Some(argv.clone()));
            Ok(Applied::history(format!(
                "SHELL {}",
                gofmt::plain_list(argv)
            )))
        }
        (Keyword::Onbuild, Args::Onbuild(trigger)) => {
            let mut triggers = config.on_build();
            triggers.push(trigger.original.clone());
            config.set_on_build(triggers);
            Ok(Applied {
                created_by: None,
                mkdir: None,
            })
        }
        _ => shape(instruction),
    }
}

fn shape<T>(instruction: &Instruction) -> Result<T, MetadataError> {
    let name = instruction.keyword.as_str();
    if is_metadata(instruction.keyword) {
        fail(format!("{name} has arguments of an unexpected shape"))
    } else {
        fail(format!("{name} is not a metadata instruction"))
    }
}

/// Replace `key` where it is (its place in the list is kept), else append it.
fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// Exec form as written; shell form after the image's SHELL (or `/bin/sh -c`).
fn with_shell(config: &RunConfig, command: &Command) -> Vec<String> {
    match command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(text) => {
            let mut argv = config
                .shell()
                .unwrap_or_else(|| DEFAULT_SHELL.map(String::from).to_vec());
            argv.push(text.clone());
            argv
        }
    }
}

/// An empty list is left out of the config, as Go's `omitempty` does.
fn non_empty(argv: Vec<String>) -> Option<Vec<String>> {
    (!argv.is_empty()).then_some(argv)
}

/// BuildKit's `NormalizeWorkdir` on Linux: a relative path joins the current one and is
/// cleaned; an absolute one is kept as written; an empty one keeps the current one.
fn workdir(current: &str, requested: &str) -> String {
    let current = if current.is_empty() { "/" } else { current };
    if requested.starts_with('/') {
        return requested.to_string();
    }
    if requested.is_empty() && current.starts_with('/') {
        return current.to_string();
    }
    clean(&format!("/{current}/{requested}"))
}

/// Go's `path.Clean` for an absolute path.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// HEALTHCHECK's test and flags as BuildKit's parser reads them.
fn healthcheck(
    instruction: &Instruction,
    command: Option<&Command>,
) -> Result<Healthcheck, MetadataError> {
    let Some(command) = command else {
        return Ok(Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..Healthcheck::default()
        });
    };
    let test = match command {
        Command::Exec(argv) if argv.is_empty() => {
            return fail("HEALTHCHECK CMD needs a command");
        }
        Command::Exec(argv) => [vec!["CMD".to_string()], argv.clone()].concat(),
        Command::Shell(text) => vec!["CMD-SHELL".into(), text.clone()],
    };
    let duration = |name: &str| -> Result<Option<i64>, MetadataError> {
        let Some(text) = instruction.flag(name).and_then(|f| f.value.as_deref()) else {
            return Ok(None);
        };
        match gofmt::parse_duration(text) {
            None => fail(format!(
                "--{name}={text}: not a duration (e.g. 30s, 1m30s, 500ms)"
            )),
            Some(0) => Ok(None),
            Some(n) if n < 1_000_000 => fail(format!(
                "--{name}={text}: must be at least 1ms (or 0 for the default)"
            )),
            Some(n) => Ok(Some(n)),
        }
    };
    let retries = match instruction.flag("retries").and_then(|f| f.value.as_deref()) {
        None => None,
        Some(text) => match text.parse::<i32>() {
            Ok(n) if n < 0 => return fail(format!("--retries={text}: cannot be negative")),
            Ok(0) => None,
            Ok(n) => Some(i64::from(n)),
            Err(_) => return fail(format!("--retries={text}: not a whole number")),
        },
    };
    Ok(Healthcheck {
        test: Some(test),
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
        extra: Default::default(),
    })
}

/// `%+v` of BuildKit's HealthcheckConfig, as its history entry prints it.
fn describe(check: &Healthcheck) -> String {
    let d = |n: Option<i64>| gofmt::format_duration(n.unwrap_or(0));
    format!(
        "{{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        gofmt::plain_list(check.test.as_deref().unwrap_or_default()),
        d(check.interval),
        d(check.timeout),
        d(check.start_period),
        d(check.start_interval),
        check.retries.unwrap_or(0)
    )
}

/// Signal names Linux knows (with or without `SIG`, any case), or a non-zero number, as
/// moby's `signal.ParseSignal` accepts them.
fn is_signal(text: &str) -> bool {
    if let Ok(n) = text.parse::<i32>() {
        return n != 0;
    }
    const NAMES: [&str; 35] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
        "UNUSED",
    ];
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    // SIGRTMIN+1 … SIGRTMIN+15 and SIGRTMAX-14 … SIGRTMAX-1, as in moby's table.
    let realtime = |base: &str, sign: char, most: u8| {
        name.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix(sign).is_some_and(|n| {
                    !n.starts_with('0') && n.parse::<u8>().is_ok_and(|n| (1..=most).contains(&n))
                })
        })
    };
    NAMES.contains(&name) || realtime("RTMIN", '+', 15) || realtime("RTMAX", '-', 14)
}

#[cfg(test)]
mod tests;
