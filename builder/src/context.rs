//! The build context: `.dockerignore` with Docker's rules, and a walk of the context
//! directory that honours it. Patterns are anchored at the context root (a leading `/`
//! changes nothing), `*` and `?` stay within a path segment, `**` spans any number of
//! segments, `!` re-includes, the last matching pattern wins, and a pattern that matches
//! a directory matches everything under it. `Dockerfile.dockerignore` beside a Dockerfile
//! given with `-f` takes precedence over the context's `.dockerignore`.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    segments: Vec<String>,
    exclusion: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dockerignore {
    rules: Vec<Rule>,
}

/// A file or directory of the context, relative to its root, `/`-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub is_dir: bool,
    pub size: u64,
}

impl Dockerignore {
    pub fn parse(text: &str) -> Dockerignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                let (exclusion, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments = clean(pattern);
                (!segments.is_empty()).then_some(Rule {
                    segments,
                    exclusion,
                })
            })
            .collect();
        Dockerignore { rules }
    }

    /// The rules for a build: `<dockerfile>.dockerignore` beside the Dockerfile if there
    /// is one, else `<context>/.dockerignore`, else none.
    pub fn for_build(context: &Path, dockerfile: Option<&Path>) -> io::Result<Dockerignore> {
        Ok(Self::for_build_from(context, dockerfile)?.0)
    }

    /// `for_build`, and the file the rules came from (none when there was none).
    pub fn for_build_from(
        context: &Path,
        dockerfile: Option<&Path>,
    ) -> io::Result<(Dockerignore, Option<PathBuf>)> {
        let mut candidates = Vec::new();
        if let Some(file) = dockerfile {
            let mut name = file.as_os_str().to_owned();
            name.push(".dockerignore");
            candidates.push(PathBuf::from(name));
        }
        candidates.push(context.join(".dockerignore"));
        for path in candidates {
            match fs::read_to_string(&path) {
                Ok(text) => return Ok((Dockerignore::parse(&text), Some(path))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok((Dockerignore::default(), None))
    }

    /// Is `path` (relative to the context root) left out? The last rule matching the path
    /// or one of its parent directories decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        let segments = clean(path);
        let mut excluded = false;
        for rule in &self.rules {
            // Only a rule that could change the answer needs looking at.
            if rule.exclusion != excluded {
                continue;
            }
            let hit = (1..=segments.len()).any(|n| matches(&rule.segments, &segments[..n]));
            if hit {
                excluded = !rule.exclusion;
            }
        }
        excluded
    }

    /// Could a `!` rule re-include something inside this (excluded) directory?
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.rules
            .iter()
            .filter(|r| r.exclusion)
            .any(|r| prefix_may_match(&r.segments, &dir))
    }

    /// Every entry of the context that is not excluded, sorted by path. Excluded
    /// directories are not entered unless a `!` rule may re-include something in them.
    pub fn walk(&self, root: &Path) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.walk_dir(root, "", &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn walk_dir(&self, root: &Path, rel: &str, out: &mut Vec<Entry>) -> io::Result<()> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut names: Vec<_> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(root.join(&path))?;
            let excluded = self.is_excluded(&path);
            if meta.is_dir() {
                if !excluded {
                    out.push(Entry {
                        path: path.clone(),
                        is_dir: true,
                        size: 0,
                    });
                }
                if !excluded || self.may_reinclude_under(&path) {
                    self.walk_dir(root, &path, out)?;
                }
            } else if !excluded {
                out.push(Entry {
                    path,
                    is_dir: false,
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }
}

/// Docker's cleaning: `/` separators, no leading `/` or `./`, `.` and `..` resolved
/// (never above the root).
fn clean(pattern: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for segment in pattern.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

/// Does the pattern match exactly these path segments? `**` spans any number of them.
/// Dynamic programming over (pattern, path) positions: linear in their product.
fn matches(pattern: &[String], path: &[String]) -> bool {
    // reach[j]: the first i pattern segments can match the first j path segments.
    let mut reach = vec![false; path.len() + 1];
    reach[0] = true;
    for segment in pattern {
        let mut next = vec![false; path.len() + 1];
        if segment == "**" {
            let mut any = false;
            for j in 0..=path.len() {
                any |= reach[j];
                next[j] = any;
            }
        } else {
            for j in 1..=path.len() {
                next[j] = reach[j - 1] && glob(segment, &path[j - 1]);
            }
        }
        reach = next;
    }
    reach[path.len()]
}

/// Could the pattern match something below the directory `dir`?
fn prefix_may_match(pattern: &[String], dir: &[String]) -> bool {
    match (pattern.split_first(), dir.split_first()) {
        (_, None) => !pattern.is_empty(),
        (None, Some(_)) => false,
        (Some((p, _)), Some(_)) if p == "**" => true,
        (Some((p, prest)), Some((d, drest))) => glob(p, d) && prefix_may_match(prest, drest),
    }
}

/// One path segment against a glob: `*`, `?`, `[a-z]`, `[!x]`, `\\x`. The wildcard walk
/// backtracks only to the last `*`, so a pattern of many stars stays cheap.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi + 1..], t[ti]).map(|len| len + 1),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(2),
            Some(c) => (*c == t[ti]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ti += 1;
            }
            (None, Some((sp, st))) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A bracket expression after its `[`: the length up to and including `]` if `c` is in
/// it; `[` with no closing `]` is a literal.
fn class(rest: &[char], c: char) -> Option<usize> {
    let Some(close) = rest.iter().skip(1).position(|x| *x == ']').map(|i| i + 1) else {
        return (c == '[').then_some(0);
    };
    let (negate, members) = match rest[..close].split_first() {
        Some(('!' | '^', r)) => (true, r),
        _ => (false, &rest[..close]),
    };
    let mut hit = false;
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            hit |= members[i] <= c && c <= members[i + 2];
            i += 3;
        } else {
            hit |= members[i] == c;
            i += 1;
        }
    }
    (hit != negate).then_some(close + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &str, path: &str) -> bool {
        Dockerignore::parse(rules).is_excluded(path)
    }

    #[test]
    fn docker_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "docs/guide/README.md", true),
            ("**/*.md", "README.md", true),
            ("/build", "build", true),
            ("./build/", "build/out/x.o", true),
            ("build", "src/build", false),
            ("**/build", "src/build/x", true),
            ("node_modules", "node_modules/a/b/c.js", true),
            ("temp?", "temp1", true),
            ("temp?", "temp12", false),
            ("[a-c]*.txt", "b.txt", true),
            ("[!a-c]*.txt", "b.txt", false),
            ("docs/**/private", "docs/private", true),
            ("docs/**/private", "docs/a/b/private/x", true),
            ("a/../b", "b/x", true),
            ("# comment\n\n  x  ", "x", true),
            ("\\#literal", "#literal", true),
            // The last match wins; ! re-includes.
            ("*.log\n!keep.log", "keep.log", false),
            ("*.log\n!keep.log", "drop.log", true),
            ("!keep.log\n*.log", "keep.log", true),
            ("dir\n!dir/keep", "dir/keep", false),
            ("dir\n!dir/keep", "dir/drop", true),
            ("dir\n!dir/keep", "dir/keep/deep/file", false),
            ("dir/*\n!dir/keep\ndir/keep/secret", "dir/keep/secret", true),
            ("*\n!src\nsrc/*.tmp", "src/a.rs", false),
            ("*\n!src\nsrc/*.tmp", "src/a.tmp", true),
            ("*\n!src\nsrc/*.tmp", "Cargo.toml", true),
        ];
        for (rules, path, want) in cases {
            assert_eq!(
                excluded(rules, path),
                *want,
                "rules {rules:?}, path {path:?}"
            );
        }
    }

    #[test]
    fn many_stars_and_double_stars_stay_cheap() {
        let rules = format!("{}b\n{}/x", "*a".repeat(40), "**/".repeat(40));
        let ignore = Dockerignore::parse(&rules);
        assert!(!ignore.is_excluded(&"a".repeat(60)));
        assert!(ignore.is_excluded(&format!("{}x", "d/".repeat(60))));
    }

    #[test]
    fn walking_reincludes_inside_an_excluded_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a.txt",
            "logs/x.log",
            "logs/keep/important.log",
            "logs/keep/other.log",
            "src/main.rs",
            "src/tmp.tmp",
        ] {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"x").unwrap();
        }
        fs::write(
            root.join(".dockerignore"),
            "logs\n!logs/keep/important.log\n**/*.tmp\n.dockerignore\n",
        )
        .unwrap();
        let rules = Dockerignore::for_build(root, None).unwrap();
        let paths: Vec<String> = rules
            .walk(root)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            vec!["a.txt", "logs/keep/important.log", "src", "src/main.rs"]
        );

        // Dockerfile.dockerignore beside a -f Dockerfile wins over the context's.
        let df = root.join("ci/Dockerfile");
        fs::create_dir_all(df.parent().unwrap()).unwrap();
        fs::write(root.join("ci/Dockerfile.dockerignore"), "src\n").unwrap();
        let (rules, from) = Dockerignore::for_build_from(root, Some(&df)).unwrap();
        assert_eq!(from, Some(root.join("ci/Dockerfile.dockerignore")));
        assert!(rules.is_excluded("src/main.rs"));
        assert!(!rules.is_excluded("logs/x.log"));
    }
}
