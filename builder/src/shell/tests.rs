//! The expansion table: input, expected text, expected words — or the error — with one
//! environment, BuildKit's rules. Cases where sh and BuildKit agree were checked with sh.

use super::*;

const ENV: &[(&str, &str)] = &[
    ("HOME", "/root"),
    ("PWD", "/home"),
    ("EMPTY", ""),
    ("SPACED", "a b  c"),
    ("FILE", "archive.tar.gz"),
    ("PATHS", "/usr/local/bin:/usr/bin:/bin"),
    ("STAR", "*"),
    ("QUOTE", "\""),
    ("DOLLAR", "$x"),
    ("V", "1.2.3"),
    ("URL", "https://example.com/a/b"),
    ("_under", "u"),
    ("n9", "nine"),
];

/// (input, text, words); `text` None means "the same words joined by one space".
type Case = (&'static str, &'static str, &'static [&'static str]);

const CASES: &[Case] = &[
    // Plain text and whitespace.
    ("hello", "hello", &["hello"]),
    ("hello world", "hello world", &["hello", "world"]),
    ("  lead", "  lead", &["lead"]),
    ("trail  ", "trail  ", &["trail"]),
    ("a\tb", "a\tb", &["a", "b"]),
    ("", "", &[]),
    ("   ", "   ", &[]),
    // $NAME.
    ("$HOME", "/root", &["/root"]),
    ("$HOME/x", "/root/x", &["/root/x"]),
    ("$PWD$HOME", "/home/root", &["/home/root"]),
    ("x$HOME", "x/root", &["x/root"]),
    ("$UNSET", "", &[]),
    ("a$UNSET.b", "a.b", &["a.b"]),
    ("$EMPTY", "", &[]),
    ("$_under", "u", &["u"]),
    ("$n9", "nine", &["nine"]),
    ("$HOME-x", "/root-x", &["/root-x"]),
    ("$HOME.x", "/root.x", &["/root.x"]),
    ("$HOMEx", "", &[]),
    ("$", "$", &["$"]),
    ("a $ b", "a $ b", &["a", "$", "b"]),
    ("$/", "$/", &["$/"]),
    ("$1", "", &[]),
    ("$12x", "x", &["x"]),
    ("$@", "", &[]),
    ("$$", "", &[]),
    ("$#x", "x", &["x"]),
    // Expanded values split into words; quoted ones do not.
    ("$SPACED", "a b  c", &["a", "b", "c"]),
    ("x$SPACED", "xa b  c", &["xa", "b", "c"]),
    ("\"$SPACED\"", "a b  c", &["a b  c"]),
    ("'$SPACED'", "$SPACED", &["$SPACED"]),
    ("${SPACED}", "a b  c", &["a", "b", "c"]),
    ("\"${SPACED}\"x", "a b  cx", &["a b  cx"]),
    // ${NAME}.
    ("${HOME}", "/root", &["/root"]),
    ("${HOME}x", "/rootx", &["/rootx"]),
    ("${UNSET}", "", &[]),
    ("${EMPTY}y", "y", &["y"]),
    ("${_under}", "u", &["u"]),
    ("${n9}", "nine", &["nine"]),
    // ${V:-w} and ${V-w}.
    ("${UNSET:-def}", "def", &["def"]),
    ("${EMPTY:-def}", "def", &["def"]),
    ("${HOME:-def}", "/root", &["/root"]),
    ("${UNSET-def}", "def", &["def"]),
    ("${EMPTY-def}", "", &[]),
    ("${HOME-def}", "/root", &["/root"]),
    ("${UNSET:-}", "", &[]),
    ("${UNSET:-a b}", "a b", &["a", "b"]),
    ("${UNSET:-$HOME}", "/root", &["/root"]),
    ("${UNSET:-${PWD}/x}", "/home/x", &["/home/x"]),
    // BuildKit splits what a ${…} produced, quotes inside it or not (sh would not).
    ("${UNSET:-'q w'}", "q w", &["q", "w"]),
    ("${UNSET:-\"q w\"}", "q w", &["q", "w"]),
    ("${UNSET:-${ALSO:-deep}}", "deep", &["deep"]),
    ("${UNSET:-\\}}", "}", &["}"]),
    ("${UNSET:-a\\ b}", "a b", &["a", "b"]),
    // ${V:+w} and ${V+w}.
    ("${HOME:+set}", "set", &["set"]),
    ("${EMPTY:+set}", "", &[]),
    ("${UNSET:+set}", "", &[]),
    ("${HOME+set}", "set", &["set"]),
    ("${EMPTY+set}", "set", &["set"]),
    ("${UNSET+set}", "", &[]),
    ("${HOME:+$PWD}", "/home", &["/home"]),
    ("${HOME:+a b}", "a b", &["a", "b"]),
    ("x${UNSET:+y}z", "xz", &["xz"]),
    // ${V:?msg} and ${V?msg} that pass.
    ("${HOME:?missing}", "/root", &["/root"]),
    ("${HOME?missing}", "/root", &["/root"]),
    ("${EMPTY?missing}", "", &[]),
    // ${V#p} and ${V##p}.
    ("${FILE#*.}", "tar.gz", &["tar.gz"]),
    ("${FILE##*.}", "gz", &["gz"]),
    ("${FILE#archive}", ".tar.gz", &[".tar.gz"]),
    ("${FILE#nomatch}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE#}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE##}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE#*}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE##*}", "", &[]),
    ("${FILE#?}", "rchive.tar.gz", &["rchive.tar.gz"]),
    ("${FILE#??}", "chive.tar.gz", &["chive.tar.gz"]),
    ("${URL#*//}", "example.com/a/b", &["example.com/a/b"]),
    ("${URL##*/}", "b", &["b"]),
    ("${URL#*/}", "/example.com/a/b", &["/example.com/a/b"]),
    ("${PATHS#*:}", "/usr/bin:/bin", &["/usr/bin:/bin"]),
    ("${PATHS##*:}", "/bin", &["/bin"]),
    ("${UNSET#x}", "", &[]),
    ("${V#1.}", "2.3", &["2.3"]),
    ("${V#*.}", "2.3", &["2.3"]),
    ("${V##*.}", "3", &["3"]),
    ("${STAR#\\*}", "", &[]),
    ("${STAR#x}", "*", &["*"]),
    // ${V%p} and ${V%%p}.
    ("${FILE%.*}", "archive.tar", &["archive.tar"]),
    ("${FILE%%.*}", "archive", &["archive"]),
    ("${FILE%.gz}", "archive.tar", &["archive.tar"]),
    ("${FILE%nomatch}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE%}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE%*}", "archive.tar.gz", &["archive.tar.gz"]),
    ("${FILE%%*}", "", &[]),
    ("${FILE%?}", "archive.tar.g", &["archive.tar.g"]),
    ("${FILE%??}", "archive.tar.", &["archive.tar."]),
    (
        "${URL%/*}",
        "https://example.com/a",
        &["https://example.com/a"],
    ),
    ("${URL%%/*}", "https:", &["https:"]),
    (
        "${PATHS%:*}",
        "/usr/local/bin:/usr/bin",
        &["/usr/local/bin:/usr/bin"],
    ),
    ("${PATHS%%:*}", "/usr/local/bin", &["/usr/local/bin"]),
    ("${V%.*}", "1.2", &["1.2"]),
    ("${V%%.*}", "1", &["1"]),
    ("${UNSET%x}", "", &[]),
    ("${STAR%\\*}", "", &[]),
    // ${V/p/r} and ${V//p/r}.
    ("${V/./-}", "1-2.3", &["1-2.3"]),
    ("${V//./-}", "1-2-3", &["1-2-3"]),
    ("${V/x/y}", "1.2.3", &["1.2.3"]),
    ("${V//x/y}", "1.2.3", &["1.2.3"]),
    ("${V/./}", "12.3", &["12.3"]),
    ("${V//./}", "123", &["123"]),
    (
        "${PATHS//:/ }",
        "/usr/local/bin /usr/bin /bin",
        &["/usr/local/bin", "/usr/bin", "/bin"],
    ),
    (
        "${URL/https/http}",
        "http://example.com/a/b",
        &["http://example.com/a/b"],
    ),
    (
        "${URL/*:/ftp:}",
        "ftp://example.com/a/b",
        &["ftp://example.com/a/b"],
    ),
    ("${V/?/x}", "x.2.3", &["x.2.3"]),
    ("${V//?/x}", "xxxxx", &["xxxxx"]),
    ("${V/*/all}", "all", &["all"]),
    ("${V//*/all}", "all", &["all"]),
    ("${FILE/tar/zip}", "archive.zip.gz", &["archive.zip.gz"]),
    ("${UNSET/a/b}", "", &[]),
    ("${V/1/$HOME}", "/root.2.3", &["/root.2.3"]),
    (
        "${URL//\\//_}",
        "https:__example.com_a_b",
        &["https:__example.com_a_b"],
    ),
    ("${STAR/\\*/star}", "star", &["star"]),
    // Single quotes: everything literal.
    ("'a b'", "a b", &["a b"]),
    ("'$HOME'", "$HOME", &["$HOME"]),
    ("'\\'", "\\", &["\\"]),
    ("'a'\"b\"c", "abc", &["abc"]),
    ("x'y z'", "xy z", &["xy z"]),
    ("''", "", &[]),
    ("'${HOME:-x}'", "${HOME:-x}", &["${HOME:-x}"]),
    // Double quotes: variables expand, \ escapes only " $ and \.
    ("\"a b\"", "a b", &["a b"]),
    ("\"$HOME\"", "/root", &["/root"]),
    ("\"\\$HOME\"", "$HOME", &["$HOME"]),
    ("\"\\\"\"", "\"", &["\""]),
    ("\"\\\\\"", "\\", &["\\"]),
    ("\"\\n\"", "\\n", &["\\n"]),
    ("\"'\"", "'", &["'"]),
    ("\"$QUOTE\"", "\"", &["\""]),
    ("\"${UNSET:-a b}\"", "a b", &["a b"]),
    ("\"\"", "", &[]),
    ("\"a\"\"b\"", "ab", &["ab"]),
    ("\"$DOLLAR\"", "$x", &["$x"]),
    // The escape character outside quotes.
    ("\\$HOME", "$HOME", &["$HOME"]),
    ("a\\ b", "a b", &["a b"]),
    ("\\'x", "'x", &["'x"]),
    ("\\\"x", "\"x", &["\"x"]),
    ("\\\\", "\\", &["\\"]),
    ("x\\", "x", &["x"]),
    ("\\n", "n", &["n"]),
    ("$DOLLAR", "$x", &["$x"]),
    // Command substitution and backquotes are text.
    ("$(date)", "$(date)", &["$(date)"]),
    ("`date`", "`date`", &["`date`"]),
    ("a=$HOME", "a=/root", &["a=/root"]),
    ("--from=$PWD", "--from=/home", &["--from=/home"]),
];

/// (input, message fragment): errors.
const ERRORS: &[(&str, &str)] = &[
    ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${UNSET:?set it}", "UNSET: set it"),
    ("${EMPTY:?need a value}", "EMPTY: need a value"),
    ("${HOME", "missing '}'"),
    ("${HOME:-x", "missing '}'"),
    ("${", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:x}", "bad substitution"),
    ("${{x}}", "bad substitution"),
    ("${HOME:=x}", "unsupported modifier (:=)"),
    ("${HOME^^}", "unsupported modifier (^)"),
    ("${HOME:#x}", "unsupported modifier (:#)"),
    ("${HOME/x", "missing '/'"),
    ("${HOME/x/y", "missing '}'"),
    ("'open", "matching single-quote"),
    ("\"open", "matching double-quote"),
    ("\"a $HOME", "matching double-quote"),
];

#[test]
fn expansion_table() {
    let mut failures = Vec::new();
    for (input, text, words) in CASES {
        match expand(input, &ENV, '\\') {
            Ok(got) => {
                let got_words: Vec<&str> = got.words.iter().map(String::as_str).collect();
                if got.text != *text || got_words != *words {
                    failures.push(format!(
                        "{input:?}: got {:?} {:?}, want {text:?} {words:?}",
                        got.text, got_words
                    ));
                }
            }
            Err(e) => failures.push(format!("{input:?}: error {e}")),
        }
    }
    for (input, fragment) in ERRORS {
        match expand(input, &ENV, '\\') {
            Ok(got) => failures.push(format!(
                "{input:?}: expanded to {:?}, want an error",
                got.text
            )),
            Err(e) if !e.message.contains(fragment) => failures.push(format!(
                "{input:?}: error {:?}, want {fragment:?}",
                e.message
            )),
            Err(_) => {}
        }
    }
    assert!(
        CASES.len() + ERRORS.len() >= 150,
        "the table should hold at least 150 cases"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn backtick_escape_character() {
    let got = expand("a` b `$HOME c\\d", &ENV, '`').unwrap();
    assert_eq!(got.text, "a b $HOME c\\d");
    assert_eq!(got.words, vec!["a b", "$HOME", "c\\d"]);
    let got = expand("\"`\"x`\"\"", &ENV, '`').unwrap();
    assert_eq!(got.text, "\"x\"");
}

#[test]
fn reports_the_variables_read() {
    let got = expand("$HOME ${UNSET:-x} '$NOT' \"$PWD\"", &ENV, '\\').unwrap();
    assert_eq!(got.used, vec!["HOME", "UNSET", "PWD"]);
}

#[test]
fn hostile_input_stays_cheap() {
    // Many stars: the wildcard walk, not exponential backtracking.
    let env: &[(&str, &str)] = &[("A", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")];
    let pattern = format!("${{A#{}c}}", "*a".repeat(40));
    assert_eq!(expand(&pattern, &env, '\\').unwrap().text, env[0].1);
    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{}x{}", "${A:-".repeat(200), "}".repeat(200));
    let e = expand(&deep, &env, '\\').unwrap_err();
    assert!(e.message.contains("nest more than"), "{e}");
}
