//! `--chmod`: an octal mode (`0755`, at most `07777`) or chmod(1)'s symbolic clauses
//! (`u+x`, `go-w`, `a=r`, `u=rwX,g=u`), as BuildKit 0.12+ accepts them. An octal mode
//! replaces the permission and special bits; symbolic clauses edit each file's own mode.
//! Neither touches symlinks. Like BuildKit (tonistiigi/dchapes-mode), an omitted "who"
//! means `a` and the umask plays no part.

use super::FilesError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chmod {
    /// As written, for the cache key and messages.
    pub text: String,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    /// Bits of the classes named (`u` 0o4700 with setuid, `g` 0o2070, `o` 0o1007).
    who: u32,
    actions: Vec<(char, Perm)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Perm {
    /// `r`, `w`, `x`, `X`, `s`, `t` letters.
    Letters(String),
    /// `=u`, `+g`: copy the bits another class has.
    Copy(char),
}

const U: u32 = 0o4700;
const G: u32 = 0o2070;
const O: u32 = 0o1007;

impl Chmod {
    pub fn parse(text: &str) -> Result<Chmod, FilesError> {
        let err = |why: &str| FilesError::Chmod {
            value: text.to_string(),
            why: why.to_string(),
        };
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let mode = u32::from_str_radix(text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| err("it should be an octal string between 0 and 07777"))?;
            return Ok(Chmod {
                text: text.into(),
                kind: Kind::Octal(mode),
            });
        }
        let mut clauses = Vec::new();
        for clause in text.split(',') {
            let op_at = clause
                .find(['+', '-', '='])
                .ok_or_else(|| err("each clause needs +, - or ="))?;
            let mut who = 0;
            for c in clause[..op_at].chars() {
                who |= match c {
                    'u' => U,
                    'g' => G,
                    'o' => O,
                    'a' => U | G | O,
                    _ => return Err(err(&format!("unknown class {c:?} (use u, g, o or a)"))),
                };
            }
            if who == 0 {
                who = U | G | O;
            }
            let mut actions: Vec<(char, Perm)> = Vec::new();
            for c in clause[op_at..].chars() {
                match (c, actions.last_mut()) {
                    ('+' | '-' | '=', _) => actions.push((c, Perm::Letters(String::new()))),
                    ('r' | 'w' | 'x' | 'X' | 's' | 't', Some((_, Perm::Letters(l)))) => l.push(c),
                    ('u' | 'g' | 'o', Some((_, p))) if *p == Perm::Letters(String::new()) => {
                        *p = Perm::Copy(c)
                    }
                    _ => return Err(err(&format!("unexpected {c:?}"))),
                }
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Chmod {
            text: text.into(),
            kind: Kind::Symbolic(clauses),
        })
    }

    /// The new mode (permission and special bits) of a file whose mode is `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut m = mode & 0o7777;
        match &self.kind {
            Kind::Octal(octal) => *octal,
            Kind::Symbolic(clauses) => {
                for clause in clauses {
                    for (op, perm) in &clause.actions {
                        let bits = match perm {
                            Perm::Letters(letters) => letter_bits(letters, m, is_dir),
                            Perm::Copy(class) => copy_bits(*class, m),
                        } & clause.who;
                        m = match op {
                            '+' => m | bits,
                            '-' => m & !bits,
                            // `=` clears what the classes had (not the other classes' bits).
                            _ => (m & !(clause.who & 0o7777)) | bits,
                        };
                    }
                }
                m
            }
        }
    }
}

fn letter_bits(letters: &str, mode: u32, is_dir: bool) -> u32 {
    letters.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => 0o444,
            'w' => 0o222,
            'x' => 0o111,
            'X' if is_dir || mode & 0o111 != 0 => 0o111,
            's' => 0o6000,
            't' => 0o1000,
            _ => 0,
        }
    })
}

/// `g=u`: the rwx bits of one class, spread to all classes (masked by "who" later).
fn copy_bits(class: char, mode: u32) -> u32 {
    let rwx = match class {
        'u' => (mode >> 6) & 7,
        'g' => (mode >> 3) & 7,
        _ => mode & 7,
    };
    rwx * 0o111
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, mode: u32, dir: bool) -> u32 {
        Chmod::parse(text).unwrap().apply(mode, dir)
    }

    #[test]
    fn octal_replaces_all_bits() {
        assert_eq!(apply("755", 0o4644, false), 0o755);
        assert_eq!(apply("04755", 0o644, false), 0o4755);
        assert_eq!(apply("0", 0o777, true), 0);
        for bad in ["8", "17777", ""] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symbolic_clauses() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=r", 0o755, false), 0o444);
        assert_eq!(apply("+x", 0o600, false), 0o711);
        assert_eq!(apply("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(apply("u=rwX,go=rX", 0o600, true), 0o755);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        assert_eq!(apply("g=u", 0o740, false), 0o770);
        assert_eq!(apply("u+s,o+t", 0o755, true), 0o5755);
        assert_eq!(apply("o=", 0o777, false), 0o770);
        for bad in ["u", "z+x", "u+q", "u+x,", "+ux"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
