//! Heredocs in RUN, COPY and ADD: `<<EOF`, `<<-EOF` (leading tabs stripped), `<<"EOF"` or
//! `<<'EOF'` (no expansion), anywhere among the words (`RUN cat <<EOF > /x`), several per
//! instruction, their bodies read from the lines after the instruction in order.

use super::{Source, words::Word};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// Unquoted delimiter: variables in the body are expanded.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and the delimiter line.
    pub strip_tabs: bool,
    /// File descriptor written before `<<` (`3<<EOF`), if any.
    pub fd: Option<u32>,
}

/// A heredoc marker found among an instruction's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
    pub fd: Option<u32>,
    pub offset: usize,
}

/// The words that open a heredoc, in order.
pub fn markers(words: &[Word]) -> Vec<Marker> {
    words.iter().filter_map(marker).collect()
}

fn marker(word: &Word) -> Option<Marker> {
    let text = word.text.as_str();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let fd = text[..digits].parse().ok();
    let rest = text[digits..].strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (name, expand) = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => (rest.strip_prefix(q)?.strip_suffix(q)?, false),
        _ => (rest, true),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '"' | '\'' | '|' | ';' | '&'));
    valid.then(|| Marker {
        name: name.to_string(),
        expand,
        strip_tabs,
        fd,
        offset: word.offset,
    })
}

/// Read the bodies of `markers` from the lines after `after` (1-based): each runs to a line
/// holding only its delimiter. Returns the heredocs and the last line they used, or the
/// marker whose delimiter never came.
pub fn read_bodies(
    source: &Source<'_>,
    after: usize,
    markers: &[Marker],
) -> Result<(Vec<Heredoc>, usize), Marker> {
    let mut line = after;
    let mut heredocs = Vec::new();
    for marker in markers {
        let mut content = String::new();
        loop {
            line += 1;
            if line > source.len() {
                return Err(marker.clone());
            }
            let text = source.line(line);
            let text = if marker.strip_tabs {
                text.trim_start_matches('\t')
            } else {
                text
            };
            if text == marker.name {
                break;
            }
            content.push_str(text);
            content.push('\n');
        }
        heredocs.push(Heredoc {
            name: marker.name.clone(),
            content,
            expand: marker.expand,
            strip_tabs: marker.strip_tabs,
            fd: marker.fd,
        });
    }
    Ok((heredocs, line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::words::split_words;

    #[test]
    fn markers_anywhere_quoted_or_not() {
        let words = split_words(r#"cat <<EOF > /x && cat <<-"END" 3<<'raw' a<<b"#, 0, '\\');
        let found: Vec<_> = markers(&words)
            .into_iter()
            .map(|m| (m.name, m.expand, m.strip_tabs, m.fd))
            .collect();
        assert_eq!(
            found,
            vec![
                ("EOF".to_string(), true, false, None),
                ("END".to_string(), false, true, None),
                ("raw".to_string(), false, false, Some(3)),
            ]
        );
        assert!(markers(&split_words("echo << x <<", 0, '\\')).is_empty());
    }

    #[test]
    fn bodies_in_order_with_tab_stripping() {
        let text = "RUN cat <<A <<-B\nline 1\n  kept indent\nA\n\tstripped\n\tB\nCMD x\n";
        let source = Source::new("Dockerfile", text);
        let words = split_words("cat <<A <<-B", 4, '\\');
        let (docs, last) = read_bodies(&source, 1, &markers(&words)).unwrap();
        assert_eq!(last, 6);
        assert_eq!(docs[0].content, "line 1\n  kept indent\n");
        assert_eq!(docs[1].content, "stripped\n");
        let unterminated = Source::new("Dockerfile", "RUN <<EOF\necho\n");
        let m = markers(&split_words("<<EOF", 4, '\\'));
        assert_eq!(read_bodies(&unterminated, 1, &m).unwrap_err().name, "EOF");
    }
}
