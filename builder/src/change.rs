//! `apply_changes`: the Dockerfile instructions `kiln import --change` applies to a new
//! image's config. As docker does, the changes are read as one Dockerfile (after an
//! implicit `FROM scratch`), by kiln's own parser and planner, so quoting, JSON forms and
//! variable expansion (`ENV B=$A`) follow the same rules as a build; each instruction then
//! goes through [`crate::metadata::apply`]. The accepted set is docker import's.

use kiln_store::ImageConfig;

use crate::{
    dockerfile::{self, Keyword, ParseError},
    metadata::{self, StageState},
    plan::{self, NoImages, PlanOptions},
};

/// What `docker import --change` (and `docker commit --change`) accept: moby's
/// `validCommitCommands`. SHELL, STOPSIGNAL and MAINTAINER are not among them.
pub const ACCEPTED: [Keyword; 10] = [
    Keyword::Cmd,
    Keyword::Entrypoint,
    Keyword::Env,
    Keyword::Expose,
    Keyword::Healthcheck,
    Keyword::Label,
    Keyword::Onbuild,
    Keyword::User,
    Keyword::Volume,
    Keyword::Workdir,
];

#[derive(Debug, thiserror::Error)]
#[error("--change {input:?}: {reason}")]
pub struct ChangeError {
    pub input: String,
    pub reason: String,
}

/// Apply `changes`, in order, to `image`; on error `image` may be half changed (the
/// caller builds a new image from it only on success).
pub fn apply_changes(image: &mut ImageConfig, changes: &[String]) -> Result<(), ChangeError> {
    // Line 1 is the implicit FROM; change i starts on the line after change i-1 ends.
    let mut text = String::from("FROM scratch\n");
    let mut starts = Vec::with_capacity(changes.len());
    let mut line = 2;
    for change in changes {
        starts.push(line);
        line += change.matches('\n').count() + 1;
        text.push_str(change);
        text.push('\n');
    }
    // The change an error on `line` belongs to.
    let owner = |line: usize| -> &str {
        let i = starts.partition_point(|s| *s <= line).saturating_sub(1);
        changes.get(i).map_or("", String::as_str)
    };
    let error = |line: usize, reason: String| ChangeError {
        input: owner(line).to_string(),
        reason,
    };
    let from_parse = |e: ParseError| error(e.line, e.message);

    for (i, change) in changes.iter().enumerate() {
        if change.trim().is_empty() {
            return Err(error(
                starts[i],
                "expected an instruction and its arguments, e.g. CMD [\"sh\"]".into(),
            ));
        }
    }
    let dockerfile = dockerfile::parse("--change", &text).map_err(from_parse)?;
    for instruction in &dockerfile.instructions[1..] {
        let keyword = instruction.keyword;
        if !ACCEPTED.contains(&keyword) {
            let accepted: Vec<&str> = ACCEPTED.iter().map(|k| k.as_str()).collect();
            return Err(error(
                instruction.line,
                format!(
                    "{} cannot be changed on import (docker import accepts {})",
                    keyword.as_str(),
                    accepted.join(", ")
                ),
            ));
        }
    }
    let plan = plan::plan(&dockerfile, "--change", &PlanOptions::default(), &NoImages)
        .map_err(from_parse)?;
    let mut stage = StageState::default();
    for step in &plan.stages[0].steps {
        metadata::apply(image, &mut stage, &step.instruction)
            .map_err(|e| error(step.instruction.line, e.message))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_store::RunConfig;

    fn apply(changes: &[&str]) -> RunConfig {
        let mut image = ImageConfig::default();
        let changes: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        apply_changes(&mut image, &changes).unwrap();
        image.config.unwrap_or_default()
    }

    fn refused(change: &str) -> String {
        let mut image = ImageConfig::default();
        apply_changes(&mut image, &[change.to_string()])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn applies_every_accepted_instruction() {
        let c = apply(&[
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/init --flag",
            r#"ENV A=1 B="two words""#,
            "ENV LEGACY some value",
            "ENV A=3 C=$A-${B}",
            "EXPOSE 80 53/udp 8000-8002",
            r#"LABEL org.example.x="y z" k=v"#,
            "USER 1000:1000",
            "WORKDIR /app",
            "WORKDIR sub",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/",
            "ONBUILD RUN echo  hi",
        ]);
        // A CMD given before ENTRYPOINT in the same changes survives it.
        assert_eq!(c.cmd.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/init --flag"]);
        // ENV replaces a variable where it stands; expansion sees the earlier ENVs.
        assert_eq!(
            c.env.unwrap(),
            ["A=3", "B=two words", "LEGACY=some value", "C=1-two words"]
        );
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(
            ports,
            ["53/udp", "80/tcp", "8000/tcp", "8001/tcp", "8002/tcp"]
        );
        let labels = c.labels.unwrap();
        assert_eq!(labels["org.example.x"], "y z");
        assert_eq!(labels["k"], "v");
        assert_eq!(c.user.unwrap(), "1000:1000");
        assert_eq!(c.working_dir.unwrap(), "/app/sub");
        let volumes: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(volumes, ["/cache", "/data", "/logs"]);
        let check = c.extra["Healthcheck"].clone();
        assert_eq!(
            check,
            serde_json::json!({"Test": ["CMD-SHELL", "curl -f http://localhost/"],
                               "Interval": 30_000_000_000i64, "Retries": 3})
        );
        assert_eq!(c.extra["OnBuild"], serde_json::json!(["RUN echo  hi"]));
    }

    #[test]
    fn refuses_what_import_cannot_change_and_says_which_change() {
        for (bad, reason) in [
            ("RUN echo", "RUN cannot be changed on import"),
            (
                "STOPSIGNAL SIGTERM",
                "STOPSIGNAL cannot be changed on import",
            ),
            ("SHELL [\"/bin/bash\", \"-c\"]", "SHELL cannot be changed"),
            ("MAINTAINER me", "MAINTAINER cannot be changed"),
            ("FROM busybox", "FROM cannot be changed"),
            ("CMD", "CMD needs a command"),
            ("", "expected an instruction"),
            ("EXPOSE http", "invalid port \"http\""),
            ("EXPOSE 80/icmp", "invalid protocol \"icmp\""),
            ("ENV", "ENV needs KEY=VALUE"),
            ("ENV A", "ENV A needs a value"),
            ("LABEL =x", "expected KEY=VALUE in LABEL"),
            ("ENV A=\"open", "cannot expand"),
            ("VOLUME $NOPE", "VOLUME names an empty path"),
            ("CMD [\"a\", 1]", "arrays must be comprised of strings only"),
            (
                "HEALTHCHECK --interval=5 CMD true",
                "--interval=5: not a duration",
            ),
            ("HEALTHCHECK --timeout=10us CMD true", "at least 1ms"),
            ("HEALTHCHECK --retries=-1 CMD true", "cannot be negative"),
            ("BOGUS x", "unknown instruction BOGUS"),
        ] {
            let message = refused(bad);
            assert!(
                message.starts_with(&format!("--change {bad:?}: ")),
                "{bad:?}: {message}"
            );
            assert!(message.contains(reason), "{bad:?}: {message}");
        }
    }

    #[test]
    fn an_error_names_the_change_it_is_in() {
        let mut image = ImageConfig::default();
        let changes = ["ENV A=1\nENV B=2".to_string(), "EXPOSE nope".to_string()];
        let e = apply_changes(&mut image, &changes).unwrap_err();
        assert_eq!(e.input, "EXPOSE nope");
    }
}
