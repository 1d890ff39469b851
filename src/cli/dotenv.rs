//! The `.env` files `vault set --from-env-file` reads: `NAME=value` lines as shells and dotenv
//! libraries write them.

/// Parses a `.env`-style file: `NAME=value` lines, `#` comments, an optional `export `, values
/// unquoted (trimmed), in single quotes (literal) or double quotes (`\n`, `\"`, `\\` escapes;
/// may span lines).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (name, rest) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected NAME=value", i + 1))?;
        let name = name.trim().to_string();
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('"') {
            let mut raw = body.to_string();
            loop {
                if let Some(end) = closing_quote(&raw) {
                    raw.truncate(end);
                    break;
                }
                match lines.next() {
                    Some((_, more)) => {
                        raw.push('\n');
                        raw.push_str(more);
                    }
                    None => return Err(format!("line {}: unterminated \"", i + 1)),
                }
            }
            unescape(&raw)
        } else if let Some(body) = rest.strip_prefix('\'') {
            let end = body
                .find('\'')
                .ok_or_else(|| format!("line {}: unterminated '", i + 1))?;
            body[..end].to_string()
        } else {
            let v = match rest.find(" #") {
                Some(c) => &rest[..c],
                None => rest,
            };
            v.trim().to_string()
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Finds the unescaped closing double quote.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_like_dotenv() {
        let text = "# comment\nexport A=plain value # note\nB='single $x \"q\"'\nC=\"multi\nline \\\"q\\\" \\\\ ü\"\n\nD=\n";
        let got = parse(text).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".into(), "plain value".into()),
                ("B".into(), "single $x \"q\"".into()),
                ("C".into(), "multi\nline \"q\" \\ ü".into()),
                ("D".into(), String::new()),
            ]
        );
        assert!(parse("X=\"open").is_err());
        assert!(parse("no equals").is_err());
    }
}
