//! Parser tests: one per rule, and one per kind of error (with its location).

use super::*;

fn ok(text: &str) -> Dockerfile {
    parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"))
}

fn fails(text: &str) -> ParseError {
    parse("Dockerfile", text).expect_err("should not parse")
}

fn only(text: &str) -> Instruction {
    let mut d = ok(text);
    assert_eq!(d.instructions.len(), 1, "{:?}", d.instructions);
    d.instructions.remove(0)
}

#[test]
fn directives_at_the_top_only() {
    let d =
        ok("# syntax=docker/dockerfile:1\n#escape = `\n# check=skip=all\nFROM a\n# escape=\\\n");
    let names: Vec<_> = d
        .directives
        .iter()
        .map(|x| (x.name.as_str(), x.value.as_str(), x.line))
        .collect();
    assert_eq!(
        names,
        vec![
            ("syntax", "docker/dockerfile:1", 1),
            ("escape", "`", 2),
            ("check", "skip=all", 3)
        ]
    );
    assert_eq!(d.escape, '`');
    // A blank line, another comment or an unknown directive ends them.
    assert!(ok("\n# escape=`\nFROM a\n").directives.is_empty());
    assert!(ok("# hello\n# escape=`\nFROM a\n").directives.is_empty());
    assert!(ok("# foo=bar\n# escape=`\nFROM a\n").directives.is_empty());
}

#[test]
fn directive_errors() {
    let e = fails("# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!((e.line, e.column), (2, 1));
    assert!(e.message.contains("only one escape"), "{e}");
    let e = fails("# escape=x\nFROM a\n");
    assert_eq!((e.line, e.column), (1, 10));
    assert!(e.message.contains("invalid escape"), "{e}");
}

#[test]
fn keywords_are_case_insensitive_and_comments_skip() {
    let d = ok("from alpine AS Build\n  # indented comment\nrun echo hi # not a comment\n");
    assert_eq!(
        d.instructions[0].args,
        Args::From {
            image: "alpine".into(),
            stage: Some("build".into())
        }
    );
    assert_eq!(d.instructions[1].keyword, Keyword::Run);
    assert_eq!(d.instructions[1].line, 3);
    assert_eq!(
        d.instructions[1].args,
        Args::Command(Command::Shell("echo hi # not a comment".into()))
    );
}

#[test]
fn continuations_with_comments_and_the_backtick_escape() {
    let i = only("RUN apt-get update \\\n# comment inside\n  && apt-get install -y \\\n    curl\n");
    assert_eq!((i.line, i.end_line), (1, 4));
    assert_eq!(
        i.args,
        Args::Command(Command::Shell(
            "apt-get update   && apt-get install -y     curl".into()
        ))
    );
    let d = ok("# escape=`\nFROM windows\nRUN dir c:\\ `\n  && echo done\n");
    assert_eq!(
        d.instructions[1].args,
        Args::Command(Command::Shell("dir c:\\   && echo done".into()))
    );
}

#[test]
fn a_doubled_escape_at_the_end_is_no_continuation() {
    // BuildKit: the next line is a new instruction, and both escapes stay.
    let d = ok("FROM a\nENV C trailing\\\\\nRUN echo\n");
    assert_eq!(d.instructions.len(), 3);
    assert_eq!(
        d.instructions[1].args,
        Args::Pairs(vec![Pair {
            key: "C".into(),
            value: "trailing\\\\".into()
        }])
    );
    assert_eq!(
        (d.instructions[2].keyword, d.instructions[2].line),
        (Keyword::Run, 3)
    );
    let d = ok("# escape=`\nFROM a\nRUN a``\nRUN b\n");
    assert_eq!(d.instructions.len(), 3);
    assert_eq!(
        d.instructions[1].args,
        Args::Command(Command::Shell("a``".into()))
    );
    // Three escapes are no continuation either (the rule looks at the two last ones);
    // one still is.
    assert_eq!(ok("FROM a\nRUN a\\\\\\\nRUN b\n").instructions.len(), 3);
    assert_eq!(ok("FROM a\nRUN a\\\n  b\n").instructions.len(), 2);
    // With the backtick escape a doubled backslash is plain text before the backtick.
    let d = ok("# escape=`\nFROM a\nRUN dir c:\\\\`\n  /w\n");
    assert_eq!(
        d.instructions[1].args,
        Args::Command(Command::Shell("dir c:\\\\  /w".into()))
    );
}

#[test]
fn copy_add_expose_volume_and_from_split_on_whitespace_alone() {
    let paths = |i: Instruction| match i.args {
        Args::Paths {
            sources,
            destination,
            ..
        } => (sources, destination),
        other => panic!("{other:?}"),
    };
    // Quotes do not join words: the JSON form is the way to write a path with spaces.
    assert_eq!(
        paths(only(r#"COPY "a b" /d"#)),
        (vec!["\"a".to_string(), "b\"".to_string()], "/d".to_string())
    );
    assert_eq!(
        paths(only(r#"COPY ["a b", "/d"]"#)),
        (vec!["a b".to_string()], "/d".to_string())
    );
    // An escaped space does not join them either.
    assert_eq!(
        paths(only(r"ADD a\ b /d")),
        (vec![r"a\".to_string(), "b".to_string()], "/d".to_string())
    );
    // BuildKit's own test file: two words, the quote is unbalanced inside the first.
    assert_eq!(
        paths(only(r#"ADD \conf\\" /.znc"#)),
        (vec![r#"\conf\\""#.to_string()], "/.znc".to_string())
    );
    assert_eq!(
        only(r#"EXPOSE "80 443""#).args,
        Args::List(vec!["\"80".into(), "443\"".into()])
    );
    assert_eq!(
        only("VOLUME '/a b'").args,
        Args::List(vec!["'/a".into(), "b'".into()])
    );
    // `"a b"` is two words for FROM too, so FROM has the wrong arity, at the second.
    let e = fails("FROM \"a b\"\n");
    assert_eq!(e.column, 9, "{e}");
    // A single quoted source with no space in it stays one word.
    assert_eq!(
        paths(only(r#"COPY "a" /d"#)),
        (vec!["\"a\"".to_string()], "/d".to_string())
    );
}

#[test]
fn exec_form_and_the_fall_back_to_shell_form() {
    assert_eq!(
        only(r#"CMD ["sh", "-c", "echo \"$HOME\"\t"]"#).args,
        Args::Command(Command::Exec(vec![
            "sh".into(),
            "-c".into(),
            "echo \"$HOME\"\t".into()
        ]))
    );
    // Not valid JSON (single quotes): docker runs it as a shell command.
    assert_eq!(
        only("ENTRYPOINT ['sh', '-c']").args,
        Args::Command(Command::Shell("['sh', '-c']".into()))
    );
    assert_eq!(
        only("SHELL [\"pwsh\", \"-c\"]").args,
        Args::Shell(vec!["pwsh".into(), "-c".into()])
    );
    let e = fails("FROM a\nSHELL pwsh -c\n");
    assert!(e.message.contains("JSON form"), "{e}");
    // Valid JSON that is not all strings is no fall back: BuildKit refuses it.
    for (text, column) in [
        ("FROM a\nCMD [\"echo\", [\"nested\"]]\n", 5),
        ("FROM a\nCMD [\"a\", 1]\n", 5),
        ("FROM a\nRUN --network=none [\"a\", [\"b\"]]\n", 20),
        ("FROM a\nENTRYPOINT [null]\n", 12),
        ("FROM a\nSHELL [\"sh\", true]\n", 7),
        ("FROM a\nCOPY [\"a\", 2, \"/b\"]\n", 6),
        ("FROM a\nVOLUME [1]\n", 8),
        ("FROM a\nHEALTHCHECK CMD [\"a\", {}]\n", 17),
        ("FROM a\nONBUILD RUN [\"a\", 1]\n", 13),
    ] {
        let e = fails(text);
        assert_eq!((e.line, e.column), (2, column), "{e}");
        assert!(
            e.message
                .contains("arrays must be comprised of strings only"),
            "{e}"
        );
    }
    // Instructions without a JSON form take such text as it is.
    assert_eq!(only("EXPOSE [1]").args, Args::List(vec!["[1]".into()]));
}

#[test]
fn env_label_and_arg_forms() {
    let pairs = |i: Instruction| match i.args {
        Args::Pairs(p) => p.into_iter().map(|p| (p.key, p.value)).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        pairs(only(r#"ENV A=1 B="two words" C=three\ words"#)),
        vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into()),
            ("C".into(), "three\\ words".into())
        ]
    );
    assert_eq!(
        pairs(only("ENV PATH /usr/bin:/bin  extra")),
        vec![("PATH".into(), "/usr/bin:/bin  extra".into())]
    );
    assert_eq!(pairs(only(r#"LABEL "com.example.a"="x y" b=c"#)).len(), 2);
    assert_eq!(
        only("ARG A B=2 C=").args,
        Args::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some(String::new())
            },
        ])
    );
    let e = fails("FROM a\nENV A=1 B\n");
    assert_eq!((e.line, e.column), (2, 9));
    let e = fails("FROM a\nENV ONLYKEY\n");
    assert!(e.message.contains("needs a value"), "{e}");
}

#[test]
fn flags_are_checked() {
    let i = only(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npm --network=none make",
    );
    let mounts: Vec<_> = i.flags.iter().filter(|f| f.name == "mount").collect();
    assert_eq!(mounts.len(), 2);
    assert_eq!(i.flag("network").unwrap().value.as_deref(), Some("none"));
    let i = only(
        "COPY --from=build --chown=1:1 --chmod=755 --link --exclude=*.md --exclude=x src/ /app/",
    );
    assert_eq!(i.flag("link").unwrap().value, None);
    assert_eq!(i.flags.iter().filter(|f| f.name == "exclude").count(), 2);
    assert_eq!(
        i.args,
        Args::Paths {
            sources: vec!["src/".into()],
            destination: "/app/".into(),
            json: false
        }
    );
    only("ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.git /src");

    let e = fails("FROM a\nRUN --mout=type=cache echo\n");
    assert_eq!((e.line, e.column), (2, 5));
    assert!(e.message.contains("unknown flag --mout for RUN"), "{e}");
    assert!(e.message.contains("--mount"), "{e}");
    let e = fails("FROM a\nCOPY --from a b\n");
    assert!(e.message.contains("--from needs a value"), "{e}");
    let e = fails("FROM a\nCOPY --link=yes a b\n");
    assert!(e.message.contains("true or false"), "{e}");
    let e = fails("FROM a\nCOPY --from=a --from=b x y\n");
    assert_eq!(e.column, 15);
    let e = fails("FROM a\nWORKDIR --x /a\n");
    assert!(e.message.contains("WORKDIR takes no flags"), "{e}");
}

#[test]
fn heredocs() {
    let d = ok("FROM a\nRUN <<EOF\napt-get update\napt-get install -y curl\nEOF\nCMD x\n");
    let run = &d.instructions[1];
    assert_eq!((run.line, run.end_line), (2, 5));
    assert_eq!(
        run.heredocs[0].content,
        "apt-get update\napt-get install -y curl\n"
    );
    assert!(run.heredocs[0].expand);
    assert_eq!(d.instructions[2].line, 6);

    // Not the first word, two of them, quoted (no expansion), tab-stripped.
    let d = ok("FROM a\nRUN cat <<A > /a && cat <<-\"B\" > /b\n$HOME\nA\n\t\tx\n\tB\n");
    let h = &d.instructions[1].heredocs;
    assert_eq!(
        (h[0].name.as_str(), h[0].content.as_str(), h[0].expand),
        ("A", "$HOME\n", true)
    );
    assert_eq!(
        (h[1].name.as_str(), h[1].content.as_str(), h[1].expand),
        ("B", "x\n", false)
    );

    let d = ok("FROM a\nCOPY <<one.txt <<two.txt /dst/\n1\none.txt\n2\ntwo.txt\n");
    match &d.instructions[1].args {
        Args::Paths {
            sources,
            destination,
            ..
        } => {
            assert_eq!(
                sources,
                &vec!["<<one.txt".to_string(), "<<two.txt".to_string()]
            );
            assert_eq!(destination, "/dst/");
        }
        other => panic!("{other:?}"),
    }

    let e = fails("FROM a\nRUN <<EOF\necho\n");
    assert_eq!((e.line, e.column), (2, 5));
    assert!(e.message.contains("never closed"), "{e}");
    // JSON form has no heredocs.
    assert!(only(r#"RUN ["cat", "<<EOF"]"#).heredocs.is_empty());
}

#[test]
fn onbuild_healthcheck_and_the_rest() {
    let i = only("ONBUILD COPY --chown=1 . /src");
    match &i.args {
        Args::Onbuild(inner) => {
            assert_eq!(inner.keyword, Keyword::Copy);
            assert_eq!(inner.flag("chown").unwrap().value.as_deref(), Some("1"));
        }
        other => panic!("{other:?}"),
    }
    let e = fails("FROM a\nONBUILD ONBUILD RUN x\n");
    assert!(e.message.contains("ONBUILD isn't allowed"), "{e}");
    assert_eq!((e.line, e.column), (2, 9));

    let i =
        only("HEALTHCHECK --interval=5s --retries=3 CMD [\"curl\", \"-f\", \"http://localhost/\"]");
    assert_eq!(i.flag("interval").unwrap().value.as_deref(), Some("5s"));
    assert!(matches!(i.args, Args::Healthcheck(Some(Command::Exec(_)))));
    assert_eq!(only("HEALTHCHECK NONE").args, Args::Healthcheck(None));
    let e = fails("FROM a\nHEALTHCHECK RUN x\n");
    assert!(e.message.contains("CMD <command> or NONE"), "{e}");

    assert_eq!(
        only("EXPOSE 80/tcp 443").args,
        Args::List(vec!["80/tcp".into(), "443".into()])
    );
    assert_eq!(
        only("VOLUME [\"/a\", \"/b\"]").args,
        Args::List(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(only("USER app:app").args, Args::Text("app:app".into()));
    assert_eq!(
        only("STOPSIGNAL SIGTERM").args,
        Args::Text("SIGTERM".into())
    );
    assert_eq!(
        only("MAINTAINER Jane <j@example.com>").args,
        Args::Text("Jane <j@example.com>".into())
    );
}

#[test]
fn errors_say_where_and_what() {
    let e = fails("FROM a\n\nCOPPY x y\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("did you mean COPY?"), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("Dockerfile:3:1: unknown instruction COPPY"),
        "{shown}"
    );
    assert!(shown.ends_with("3 | COPPY x y\n  | ^"), "{shown}");

    let e = fails("FROM a\nCOPY onlyone\n");
    assert_eq!((e.line, e.column), (2, 6));
    let e = fails("FROM a b c d\n");
    assert_eq!(e.column, 8);
    let e = fails("FROM a AS 1bad\n");
    assert!(e.message.contains("invalid stage name"), "{e}");
    let e = fails("# just a comment\n\n");
    assert!(e.message.contains("no instructions"), "{e}");
    let e = fails("FROM a\nRUN\n");
    assert!(e.message.contains("RUN needs a command"), "{e}");
    // Columns count characters, not bytes.
    let e = fails("FROM a\nLABEL ünïcode=1 bad\n");
    assert_eq!(e.column, 17);
}

#[test]
fn json_output_shape() {
    let d = ok(
        "# syntax=docker/dockerfile:1\nFROM a AS b\nONBUILD RUN --network=none x\nRUN <<EOF\nhi\nEOF\n",
    );
    let v = d.to_json();
    assert_eq!(v["directives"][0]["name"], "syntax");
    assert_eq!(v["instructions"][0]["instruction"], "FROM");
    assert_eq!(v["instructions"][0]["stage"], "b");
    assert_eq!(v["instructions"][1]["trigger"]["instruction"], "RUN");
    assert_eq!(
        v["instructions"][1]["trigger"]["flags"][0]["name"],
        "network"
    );
    assert_eq!(v["instructions"][2]["heredocs"][0]["content"], "hi\n");
    assert_eq!(v["instructions"][2]["end_line"], 6);
}
