//! `apply_change`: the Dockerfile instructions `docker import --change` accepts (CMD,
//! ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL), applied to an image
//! config. Each string is one instruction with docker's JSON-or-shell forms and quoting,
//! read here on its own: a `--change` string has no parser directives, continuations,
//! heredocs or stages, so it does not go through the Dockerfile parser.

use std::collections::BTreeMap;

use kiln_store::RunConfig;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("--change {input:?}: {reason}")]
pub struct ChangeError {
    input: String,
    reason: String,
}

/// Apply one `--change` instruction to `config`.
pub fn apply_change(config: &mut RunConfig, input: &str) -> Result<(), ChangeError> {
    let err = |reason: &str| ChangeError {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = input.trim();
    let (keyword, args) = trimmed
        .split_once(char::is_whitespace)
        .map(|(k, a)| (k, a.trim()))
        .unwrap_or((trimmed, ""));
    if args.is_empty() {
        return Err(err(
            "expected an instruction and its arguments, e.g. CMD [\"sh\"]",
        ));
    }
    match keyword.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(command_form(args)),
        "ENTRYPOINT" => config.entrypoint = Some(command_form(args)),
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(args, "ENV").map_err(|r| err(&r))? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(args, "LABEL").map_err(|r| err(&r))? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for port in words(args).map_err(|r| err(&r))? {
                let (number, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                let valid_number = !number.is_empty()
                    && number
                        .split('-')
                        .all(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
                let proto = proto.to_ascii_lowercase();
                if !valid_number || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(err(&format!(
                        "{port:?} is not a port (NUMBER[/tcp|udp|sctp])"
                    )));
                }
                ports.insert(
                    format!("{number}/{proto}"),
                    Value::Object(Default::default()),
                );
            }
        }
        "USER" => config.user = Some(single(args, "USER").map_err(|r| err(&r))?),
        "WORKDIR" => {
            let dir = single(args, "WORKDIR").map_err(|r| err(&r))?;
            // Relative WORKDIRs build on the previous one, as in a Dockerfile.
            let dir = if dir.starts_with('/') {
                dir
            } else {
                let base = config.working_dir.clone().unwrap_or_else(|| "/".into());
                format!("{}/{dir}", base.trim_end_matches('/'))
            };
            config.working_dir = Some(dir);
        }
        "VOLUME" => {
            let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
            let list = match json_array(args) {
                Some(list) => list,
                None => words(args).map_err(|r| err(&r))?,
            };
            for v in list {
                volumes.insert(v, Value::Object(Default::default()));
            }
        }
        "STOPSIGNAL" => config.stop_signal = Some(single(args, "STOPSIGNAL").map_err(|r| err(&r))?),
        other => {
            return Err(err(&format!(
                "{other} cannot be changed on import (supported: CMD, ENTRYPOINT, ENV, \
                 EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL)"
            )));
        }
    }
    Ok(())
}

/// JSON exec form when the argument is a JSON array of strings, else shell form.
fn command_form(args: &str) -> Vec<String> {
    json_array(args).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), args.into()])
}

fn json_array(args: &str) -> Option<Vec<String>> {
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(args).ok()
}

fn single(args: &str, keyword: &str) -> Result<String, String> {
    let mut w = words(args)?;
    if w.len() != 1 {
        return Err(format!("{keyword} takes exactly one argument"));
    }
    Ok(w.remove(0))
}

/// `k=v k2="v 2"`, or the legacy `k v with spaces` form (one pair).
fn key_values(args: &str, keyword: &str) -> Result<Vec<(String, String)>, String> {
    let first = args.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = args
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{keyword} needs a value: {keyword} key=value"))?;
        return Ok(vec![(k.to_string(), unquote_all(v.trim())?)]);
    }
    words(args)?
        .into_iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("{w:?} is not key=value"))?;
            if k.is_empty() {
                return Err(format!("{w:?} has an empty key"));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn unquote_all(s: &str) -> Result<String, String> {
    Ok(words(s)?.join(" "))
}

/// Split on unquoted whitespace, removing quotes; backslash escapes the next character.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => current.push(c),
                            None => return Err("trailing backslash".into()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => current.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        out.push(current);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> RunConfig {
        let mut c = RunConfig::default();
        for ch in changes {
            apply_change(&mut c, ch).unwrap();
        }
        c
    }

    #[test]
    fn applies_every_supported_instruction() {
        let c = apply(&[
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/init --flag",
            r#"ENV A=1 B="two words""#,
            "ENV LEGACY some value",
            "ENV A=3",
            "EXPOSE 80 53/udp 8000-8010",
            r#"LABEL org.example.x="y z" k=v"#,
            "USER 1000:1000",
            "WORKDIR /app",
            "WORKDIR sub",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "STOPSIGNAL SIGTERM",
        ]);
        assert_eq!(c.cmd.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/init --flag"]);
        assert_eq!(c.env.unwrap(), ["B=two words", "LEGACY=some value", "A=3"]);
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000-8010/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["org.example.x"], "y z");
        assert_eq!(labels["k"], "v");
        assert_eq!(c.user.unwrap(), "1000:1000");
        assert_eq!(c.working_dir.unwrap(), "/app/sub");
        let volumes: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(volumes, ["/cache", "/data", "/logs"]);
        assert_eq!(c.stop_signal.unwrap(), "SIGTERM");
    }

    #[test]
    fn refuses_what_import_cannot_change() {
        for bad in [
            "RUN echo",
            "CMD",
            "EXPOSE http",
            "EXPOSE 80/icmp",
            "USER a b",
            "ENV",
            "LABEL =x",
            "ENV A=\"open",
        ] {
            let mut c = RunConfig::default();
            assert!(apply_change(&mut c, bad).is_err(), "{bad}");
        }
    }
}
