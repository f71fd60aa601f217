//! `ParseError`: what is wrong in a Dockerfile, where (file:line:column), shown on the
//! line itself with a caret under the spot, and what was expected there.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The physical line the error points into, as written.
    pub text: String,
    pub message: String,
}

impl std::error::Error for ParseError {}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        // Tabs would move the caret; show them as single spaces in both lines.
        let shown: String = self
            .text
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{number} | {shown}")?;
        write!(
            f,
            "{gutter} | {}^",
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_line_and_a_caret() {
        let e = ParseError {
            file: "Dockerfile".into(),
            line: 12,
            column: 5,
            text: "RUN --mout=type=cache echo".into(),
            message: "unknown flag --mout for RUN (expected one of --mount, --network, --security)"
                .into(),
        };
        assert_eq!(
            e.to_string(),
            "Dockerfile:12:5: unknown flag --mout for RUN (expected one of --mount, --network, --security)\n   |\n12 | RUN --mout=type=cache echo\n   |     ^"
        );
    }
}
